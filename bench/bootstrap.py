"""Benchmark the debian-bootstrap builder on bookworm: cold and warm build time, image size, and debvm.

Runs whole builds through the CLI (mmdebstrap, disk, boot under TCG, a one-line provisioner, shutdown,
zstd compaction) and prints figures and ratios; it never fails on a miss. Targets on a 2-core TCG host:
cold <= 150 s, warm <= 90 s, cloud-kernel image <= 100 MiB.

debvm-create (Debian package debvm) is measured on the same suite for comparison. Note that debvm makes
a bare ext4 filesystem image: no partition table, no bootloader (it boots with -kernel), no boot of the
guest during the build; its figures are a floor rather than a like-for-like build.

Usage (as root, with deb.debian.org reachable):  python bench/bootstrap.py [--skip-debvm] [--skip-generic]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 1 << 20
TARGETS = {"cold_s": 150.0, "warm_s": 90.0, "cloud_mib": 100.0}


def template(kernel: str, root_keys: tuple[str, ...] = (), architecture: str = "amd64") -> dict[str, object]:
    return {
        "builders": [
            {
                "type": "debian-bootstrap",
                "name": "bench",
                "suite": "bookworm",
                "architecture": architecture,
                "kernel": kernel,
                "disk_size": "2G",
                "accelerator": "tcg",
                "ssh_timeout": "30m",
                "cpus": 2,
                "disk_compression": True,
                "compression_type": "zstd",
                "output_directory": "output",
                "vm_name": "bench.qcow2",
                "root_ssh_keys": list(root_keys),
            }
        ],
        "provisioners": [{"type": "shell", "inline": ["echo BEGIN{bench}", "echo END{bench}"]}],
    }


def build(
    work: Path, cache: Path, kernel: str, root_keys: tuple[str, ...] = (), architecture: str = "amd64"
) -> tuple[float, float]:
    """(seconds, output MiB) of one whole build with the .deb cache in `cache`; `root_keys` may log in
    to the image as root afterwards."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "t.json").write_text(json.dumps(template(kernel, root_keys, architecture)))
    env = {**os.environ, "VMBAKE_CACHE_DIR": str(cache)}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "vmbake", "build", "t.json"], cwd=work, env=env, capture_output=True, text=True
    )
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"build failed:\n{(result.stdout + result.stderr)[-3000:]}")
    for line in result.stdout.splitlines():
        if "Package cache:" in line or "stepBootstrap" in line or "StepConnect" in line:
            print("   ", line.strip())
    return seconds, (work / "output" / "bench.qcow2").stat().st_size / MiB


def debvm(work: Path) -> tuple[float, float]:
    """(seconds, MiB as a zstd qcow2) of debvm-create for bookworm with its defaults."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    raw = work / "debvm.ext4"
    started = time.monotonic()
    subprocess.run(["debvm-create", "-r", "bookworm", "-o", str(raw)], check=True, capture_output=True)
    seconds = time.monotonic() - started
    qcow = work / "debvm.qcow2"
    subprocess.run(
        ["qemu-img", "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", str(raw), str(qcow)],
        check=True,
    )
    return seconds, qcow.stat().st_size / MiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-debvm", action="store_true")
    parser.add_argument("--skip-generic", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the debian-bootstrap builder needs loop devices and mount")
    base = Path(tempfile.mkdtemp(prefix="vmbake-bench-"))
    load = os.getloadavg()[0]
    try:
        cache = base / "cache"
        print("cold build (empty .deb cache), cloud kernel ...")
        cold_s, cloud_mib = build(base / "cold", cache, "linux-image-cloud-amd64")
        print("warm build (same cache), cloud kernel ...")
        warm_s, warm_mib = build(base / "warm", cache, "linux-image-cloud-amd64")
        generic_mib = None
        if not args.skip_generic:
            print("build with the generic kernel ...")
            _, generic_mib = build(base / "generic", cache, "linux-image-amd64")
        debvm_figures = None
        if not args.skip_debvm and shutil.which("debvm-create"):
            print("debvm-create (no cache of ours; bare ext4, no bootloader) ...")
            debvm_figures = debvm(base / "debvm")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print()
    print(f"host load average at start: {load:.1f} (on {os.cpu_count()} CPUs)")
    print(
        f"cold build          {cold_s:7.1f} s   target {TARGETS['cold_s']:.0f} s   ratio {cold_s / TARGETS['cold_s']:.2f}"
    )
    print(
        f"warm build          {warm_s:7.1f} s   target {TARGETS['warm_s']:.0f} s   ratio {warm_s / TARGETS['warm_s']:.2f}"
    )
    print(f"warm / cold         {warm_s / cold_s:7.2f}")
    print(f"cloud-kernel image  {cloud_mib:7.1f} MiB target {TARGETS['cloud_mib']:.0f} MiB ratio "
          f"{cloud_mib / TARGETS['cloud_mib']:.2f} (warm build: {warm_mib:.1f} MiB)")  # fmt: skip
    if generic_mib is not None:
        print(f"generic-kernel image{generic_mib:7.1f} MiB  generic / cloud {generic_mib / cloud_mib:.2f}")
    if debvm_figures is not None:
        d_s, d_mib = debvm_figures
        print(
            f"debvm-create        {d_s:7.1f} s, {d_mib:.1f} MiB (zstd qcow2; no bootloader, no partition table)"
        )
        print(
            f"vmbake / debvm      time cold {cold_s / d_s:.2f}, warm {warm_s / d_s:.2f}; size {cloud_mib / d_mib:.2f}"
        )


if __name__ == "__main__":
    main()
