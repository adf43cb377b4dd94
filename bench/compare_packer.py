"""Wall time of one template built by Packer 1.6.6 and by vmbake, alternately, and their ratio.

The template boots a ready-made bookworm disk (disk_image), waits for SSH, uploads and runs a script,
downloads a file, halts with shutdown_command and compacts: what the guest does is the same for both
tools, so the difference is what each tool controls (fixed waits, SSH polling, compaction).

    python bench/compare_packer.py [--runs 3] [--image DISK.qcow2 --key ID_ED25519]

Without --image, a disk is made first with the test helper (needs root and deb.debian.org).
Packer comes from Debian: apt-get install packer (1.6.6). Target: vmbake <= 0.75 x Packer.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from vmbake import procs  # noqa: E402

SCRIPT = """#!/bin/sh
set -e
echo "BEGIN{work}"
dd if=/dev/urandom of=/root/blob bs=1M count=16 2>/dev/null
sync
echo "END{work}"
echo "BEGIN{zero}"
dd if=/dev/zero of=/ZERO bs=1M count=64 2>/dev/null || true
rm -f /ZERO /root/blob
echo "END{zero}"
"""


def template(image: Path, key: Path, work: Path, size_mib: int) -> dict[str, object]:
    return {
        "builders": [
            {
                "type": "qemu",
                "iso_url": str(image),
                "iso_checksum": "none",
                "disk_image": True,
                "disk_size": f"{size_mib}M",
                "accelerator": "tcg",
                "headless": True,
                "memory": 512,
                "boot_wait": "1s",
                "output_directory": str(work / "output"),
                "vm_name": "bench.qcow2",
                "format": "qcow2",
                "disk_compression": True,
                "ssh_username": "root",
                "ssh_private_key_file": str(key),
                "ssh_timeout": "10m",
                "shutdown_command": "shutdown --poweroff now",
            }
        ],
        "provisioners": [
            {"type": "file", "source": str(work / "provision.sh"), "destination": "/tmp/"},
            {"type": "shell", "inline": ["sh /tmp/provision.sh"]},
            {
                "type": "file",
                "direction": "download",
                "source": "/etc/hostname",
                "destination": f"{work}/got/",
            },
        ],
    }


def vmbake_argv(template_path: Path) -> list[str]:
    """vmbake without its image report, so that it does the same work as Packer."""
    return [
        sys.executable,
        "-m",
        "vmbake",
        "build",
        "-force",
        "-color=false",
        "-report=false",
        str(template_path),
    ]


def commands(template_path: Path, packer: str = "packer") -> dict[str, list[str]]:
    """The two builds of `template_path`."""
    return {
        "packer": [procs.which(packer), "build", "-force", "-color=false", str(template_path)],
        "vmbake": vmbake_argv(template_path),
    }


def with_one_cpu(template_path: Path) -> Path:
    """The template with `cpus: 1`, Packer's default, written next to it: vmbake's own default gives the
    VM the host's CPUs (up to 4), and this variant shows how much of the difference that is."""
    spec = json.loads(template_path.read_text())
    spec["builders"][0]["cpus"] = 1
    path = template_path.with_name(template_path.stem + "-1cpu.json")
    path.write_text(json.dumps(spec, indent=2))
    return path


def timed(argv: list[str], work: Path, env: dict[str, str], log: Path) -> float:
    shutil.rmtree(work / "output", ignore_errors=True)
    started = time.monotonic()
    with log.open("w") as out:  # each line with the seconds since the start, to see where time went

        def write(line: str) -> None:
            out.write(f"{time.monotonic() - started:7.2f} {line}\n")

        result = procs.run(argv, check=False, on_line=write, env=env, cwd=work)
    took = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed (exit {result.returncode}); see {log}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--image", type=Path)
    parser.add_argument("--key", type=Path)
    parser.add_argument("--packer", default="packer")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vmbake-bench-"))
    if args.image is None:
        from tests.helpers.bootstrap_disk import build_bootstrapped_disk

        print("making a bookworm disk with the test helper...", flush=True)
        disk = build_bootstrapped_disk(work / "disk")
        args.image, args.key = disk.image, disk.private_key
    info = json.loads(procs.run(["qemu-img", "info", "--output=json", str(args.image)]).stdout)
    size_mib = int(info["virtual-size"]) // (1 << 20)
    (work / "provision.sh").write_text(SCRIPT)
    path = work / "bench.json"
    path.write_text(json.dumps(template(args.image, args.key, work, size_mib), indent=2))
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "PACKER_CACHE_DIR": str(work / "cache")}
    tools = {**commands(path, args.packer), "vmbake-1cpu": vmbake_argv(with_one_cpu(path))}
    times: dict[str, list[float]] = {name: [] for name in tools}
    for run in range(args.runs):
        for name, argv in tools.items():
            took = timed(argv, work, env, work / f"{name}-{run}.log")
            times[name].append(took)
            print(f"run {run + 1}: {name:11} {took:6.1f}s", flush=True)
    median = {name: statistics.median(values) for name, values in times.items()}
    print("median: " + ", ".join(f"{name} {value:.1f}s" for name, value in median.items()))
    print(f"ratio vmbake/packer: {median['vmbake'] / median['packer']:.2f} (target <= 0.75)")
    print(
        f"ratio vmbake-1cpu/packer: {median['vmbake-1cpu'] / median['packer']:.2f} (the VM with Packer's 1 CPU)"
    )
    print(f"logs in {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
