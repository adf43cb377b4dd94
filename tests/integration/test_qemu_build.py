"""`vmbake build` end to end under TCG: a communicator-none disk_image template boots a tiny guest that
prints a marker on its serial console and powers itself off.

The guest is the Debian installer's netboot kernel with a one-program initramfs (tests/helpers/guests.py).
Every test runs the real CLI in a subprocess with its own TMPDIR, so it can check that no temporary file
and no qemu process is left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers.guests import (
    DEFAULT_MARKER,
    DI_KERNEL,
    make_data_disk,
    tiny_guest_qemuargs,
    tiny_guest_template,
    write_initramfs,
)
from vmbake import procs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def guest_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(initrd, disk image) shared by the tests of this module."""
    if not DI_KERNEL.exists():
        pytest.fail("debian-installer-12-netboot-amd64 is not installed")
    root = tmp_path_factory.mktemp("tiny-guest")
    return write_initramfs(root / "initrd.cpio"), make_data_disk(root / "base.qcow2")


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "tmp").mkdir()
    yield tmp_path
    # Only this test's QEMU counts (other builds may run on the machine): its argv names tmp_path.
    left = subprocess.run(["pgrep", "-af", f"qemu-system.*{tmp_path}"], capture_output=True, text=True).stdout
    assert not left.strip(), f"qemu processes left behind: {left}"


def leftovers(run_dir: Path) -> list[str]:
    """Temporary files left in the build's TMPDIR (the shared port-lock directory is meant to stay)."""
    return [p.name for p in (run_dir / "tmp").iterdir() if not p.name.startswith("vmbake-ports-")]


def write_template(run_dir: Path, guest_files: tuple[Path, Path], **extra: object) -> tuple[Path, Path]:
    initrd, disk = guest_files
    out = run_dir / "output"
    template = tiny_guest_template(disk, initrd, out, **extra)
    template["post-processors"] = [
        {"type": "checksum", "checksum_types": ["sha256"], "output": str(run_dir / "SHA256SUMS")},
        {"type": "manifest", "output": str(run_dir / "manifest.json")},
    ]
    path = run_dir / "tiny.json"
    path.write_text(json.dumps(template, indent=2))
    return path, out


def vmbake(run_dir: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(run_dir / "tmp"), "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "vmbake", *args],
        cwd=run_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_tiny_guest_build(run_dir: Path, guest_files: tuple[Path, Path]) -> None:
    template, out = write_template(run_dir, guest_files, accelerator="")
    proc = vmbake(run_dir, "build", str(template))
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    lines = output.splitlines()
    for expected in (
        "==> qemu: Starting VM, booting disk image",
        "==> qemu: Overriding defaults Qemu arguments with QemuArgs...",
        "==> qemu: Waiting for shutdown...",
        "==> qemu: Converting hard drive...",
        "==> Builds finished. The artifacts of successful builds are:",
        f"--> qemu: VM files in directory: {out}",
    ):
        assert expected in lines, output
    assert any(line.startswith("    qemu: Using accelerator ") for line in lines), output
    assert any(line.startswith("Build 'qemu' finished after ") for line in lines), output

    console = (out / "tiny.qcow2.console.log").read_text(errors="replace")
    assert DEFAULT_MARKER in console

    disk = out / "tiny.qcow2"
    info = json.loads(procs.run(["qemu-img", "info", "--output=json", str(disk)]).stdout)
    assert info["format"] == "qcow2" and info["virtual-size"] == 64 << 20
    assert disk.stat().st_size < guest_files[1].stat().st_size / 8  # zero clusters dropped, text compressed
    assert procs.run(["qemu-img", "compare", str(guest_files[1]), str(disk)]).returncode == 0

    sums = dict(reversed(line.split("\t")) for line in (run_dir / "SHA256SUMS").read_text().splitlines())
    assert sums["tiny.qcow2"] == hashlib.sha256(disk.read_bytes()).hexdigest()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    record = manifest["builds"][-1]
    files = {Path(f["name"]).name: f for f in record["files"]}
    assert files["tiny.qcow2"]["size"] == disk.stat().st_size
    assert files["tiny.qcow2"]["sha256"] == sums["tiny.qcow2"]
    steps = {s["step"]: s["seconds"] for s in record["step_times"]}
    assert steps["stepShutdown"] > 1 and "stepConvertDisk" in steps
    assert leftovers(run_dir) == []


def test_a_guest_kernel_panic_fails_the_build_at_once(run_dir: Path, guest_files: tuple[Path, Path]) -> None:
    """The kernel finds no init and no root file system and panics (panic=0: it then hangs, as a real
    guest does). Without the console watch the build would wait the whole shutdown_timeout (10 minutes)."""
    initrd, _ = guest_files
    qemuargs = tiny_guest_qemuargs(
        initrd, append="console=ttyS0 panic=0 rdinit=/vmbake-none root=/dev/vmbake-none"
    )
    template, _ = write_template(run_dir, guest_files, shutdown_timeout="10m", qemuargs=qemuargs)
    started = time.monotonic()
    proc = vmbake(run_dir, "build", "-color=false", str(template))
    output, _ = proc.communicate(timeout=400)
    took = time.monotonic() - started
    assert proc.returncode == 1, output
    assert "the guest's kernel panicked: Kernel panic - not syncing: VFS: Unable to mount root fs" in output
    assert "Waiting for shutdown" in output and took < 300, f"{took:.0f} s\n{output}"
    assert "Traceback" not in output
    assert leftovers(run_dir) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cancel_while_the_guest_runs(
    run_dir: Path, guest_files: tuple[Path, Path], sig: signal.Signals
) -> None:
    template, out = write_template(run_dir, guest_files)
    proc = vmbake(run_dir, "build", str(template))
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if "Waiting for shutdown..." in line:
                break
        else:
            pytest.fail("the build never reached the shutdown step:\n" + "".join(seen))
        started = time.monotonic()
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=60)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(seen) + rest
    assert proc.returncode not in (0, None), output
    assert took < 20, output
    assert "Build 'qemu' errored after" in output
    assert not out.exists(), output  # the output directory of a cancelled build is removed
    assert leftovers(run_dir) == []
    assert "Traceback" not in output


def test_qemu_dies_with_a_killed_vmbake(run_dir: Path, guest_files: tuple[Path, Path]) -> None:
    """SIGKILL leaves vmbake no chance to clean up; the kernel's parent-death signal still ends QEMU."""
    template, _ = write_template(run_dir, guest_files)
    proc = vmbake(run_dir, "build", str(template))
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "Waiting for shutdown..." in line:
                break
        else:
            pytest.fail("the build never reached the shutdown step")
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 10
    pattern = f"qemu-system.*{run_dir}"
    while subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "QEMU outlived the vmbake that started it"
        time.sleep(0.1)
