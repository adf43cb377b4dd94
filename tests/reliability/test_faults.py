"""Faults injected into real builds (vmbake as a subprocess, real QEMU under TCG with a tiny guest that
never powers off, a real HTTP origin, a real tmpfs): each one exits non-zero with one message naming the
step and the cause, leaves no QEMU and no temporary file, and removes (cleanup) or marks (abort) the
output directory."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.faults import VmbakeRun, error_lines, wait_gone
from tests.helpers.origin import Route, origin_server
from tests.reliability.conftest import Rig

pytestmark = pytest.mark.integration


def assert_failed(code: int, output: str, step: str, *cause: str) -> str:
    """Exit status 1 and exactly one failure line, naming `step` and containing each `cause` text."""
    assert code == 1, output
    failures = [line for line in error_lines(output) if line.startswith("--> qemu: ")]
    assert len(failures) == 1, output
    line = failures[0]
    assert step in line, output
    for text in cause:
        assert text in output, f"{text!r} not in output:\n{output}"
    assert "Traceback" not in output
    return line


# 1. QEMU killed mid-build ---------------------------------------------------------------------------
@pytest.mark.parametrize("on_error", ["cleanup", "abort"])
def test_qemu_killed_mid_build(rig: Rig, on_error: str) -> None:
    run = rig.start(rig.template(), f"-on-error={on_error}")
    run.wait_for(r"==> qemu: Waiting for shutdown\.\.\.")
    pids = rig.qemu_pids()
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)
    code, output = run.finish(60)
    assert_failed(code, output, "stepShutdown", "QEMU", "signal 9")
    assert "Converting hard drive" not in output
    rig.assert_clean(output="removed" if on_error == "cleanup" else "incomplete")


# 2. QEMU failing to start --------------------------------------------------------------------------
def test_bad_qemuargs(rig: Rig) -> None:
    template = rig.template()
    template["builders"][0]["qemuargs"].append(["-no-such-option-here"])  # type: ignore[index]
    code, output = rig.build(template)
    assert_failed(code, output, "stepRun", "Qemu failed to start", "-no-such-option-here")
    rig.assert_clean()


# 6. a guest that never powers off (communicator none; the shutdown_command case is in test_ssh_faults)
def test_guest_never_powers_off(rig: Rig) -> None:
    """shutdown_timeout, then an ACPI power-down request, then QEMU stopped by force: each is said."""
    started = time.monotonic()
    code, output = rig.build(rig.template(shutdown_timeout="3s"))
    assert_failed(code, output, "stepShutdown", "did not power off within 3.0s")
    said = [line for line in output.splitlines() if line.startswith("==> qemu: ")]
    acpi = next(i for i, line in enumerate(said) if "sending an ACPI power-down request" in line)
    assert "stopping QEMU by force" in said[acpi + 1], output
    assert time.monotonic() - started < 60
    assert "Converting hard drive" not in output
    rig.assert_clean()


# 7. Ctrl-C in each step -----------------------------------------------------------------------------
AFTER_STEPS = [  # the steps of a communicator-none disk_image build that do something here
    "StepDownload",
    "stepPrepareOutputDir",
    "stepCopyDisk",
    "stepResizeDisk",
    "stepConfigureVNC",
    "stepRun",
    "StepTypeBootCommand",
]


@pytest.mark.parametrize("step", AFTER_STEPS)
def test_ctrl_c_after_each_step(rig: Rig, step: str) -> None:
    """-debug pauses after each step; Ctrl-C at the pause after `step` unwinds everything made so far."""
    run = VmbakeDebug(rig)
    run.answer_until(f"Pausing after run of step '{step}'")
    run.ctrl_c()
    code, output = run.run.finish(60)
    assert code == 130, output
    assert "Interrupt received. Cancelling build..." in output
    assert "Traceback" not in output
    rig.assert_clean()


class VmbakeDebug:
    """A -debug build driven through its pauses, as a user at the terminal would."""

    def __init__(self, rig: Rig) -> None:
        path = rig.write(rig.template())
        env = {"VMBAKE_CACHE_DIR": str(rig.cache)}
        self.run = VmbakeRun(["build", "-debug", str(path)], rig.base, env=env, stdin=subprocess.PIPE)
        rig.runs.append(self.run)

    def answer_until(self, text: str) -> None:
        while True:
            line = self.run.wait_for(r"Pausing (after run|before cleanup) of step '[^']*'", 60)
            if text in line:
                return
            assert self.run.proc.stdin is not None
            self.run.proc.stdin.write(b"\n")
            self.run.proc.stdin.flush()

    def ctrl_c(self) -> None:
        self.run.signal_group(signal.SIGINT)
        assert self.run.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.run.proc.stdin.close()  # every cleanup pause now reads end-of-input and goes on


@pytest.mark.parametrize("where", ["download", "boot_wait", "shutdown"])
def test_ctrl_c_during_long_steps(rig: Rig, where: str) -> None:
    """Ctrl-C while a step is busy: a stalled download, boot_wait, waiting for the guest to power off."""
    with origin_server({"/disk.qcow2": Route(data=b"x" * 4096, stall_after=100)}) as origin:
        if where == "download":
            template = rig.template(iso_url=origin.url("/disk.qcow2"))
            wait = r"==> qemu: Trying http://.*\?|Trying http"
        elif where == "boot_wait":
            template = rig.template(boot_wait="10m", boot_command=["<enter>"])
            wait = r"==> qemu: Waiting 10m0s for boot|Waiting 10m"
        else:
            template = rig.template()
            wait = r"==> qemu: Waiting for shutdown\.\.\."
        run = rig.start(template)
        run.wait_for(wait)
        started = time.monotonic()
        run.signal_group(signal.SIGINT)
        code, output = run.finish(60)
    assert code == 130, output
    assert time.monotonic() - started < 20, "cancelling took too long"
    assert "Traceback" not in output
    rig.assert_clean()


# 8. vmbake killed -----------------------------------------------------------------------------------
def test_sigterm_stops_the_vm(rig: Rig) -> None:
    run = rig.start(rig.template())
    run.wait_for(r"==> qemu: Waiting for shutdown\.\.\.")
    assert rig.qemu_pids()
    os.kill(run.pid, signal.SIGTERM)
    code, output = run.finish(60)
    assert code == 130, output
    assert "cancelled by SIGTERM" in output
    rig.assert_clean()


def test_sigkill_takes_the_vm_along(rig: Rig) -> None:
    """SIGKILL runs no cleanup: QEMU dies by its parent-death signal, and the output directory, which
    vmbake could not remove, still says it is incomplete."""
    run = rig.start(rig.template())
    run.wait_for(r"==> qemu: Waiting for shutdown\.\.\.")
    assert rig.qemu_pids()
    os.kill(run.pid, signal.SIGKILL)
    run.finish(30)
    assert wait_gone(rig.vm_name) == []
    assert (rig.output / "INCOMPLETE").is_file(), "an interrupted output dir must not look finished"


# 9. output disk full ---------------------------------------------------------------------------------
@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20M", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_output_disk_full(rig: Rig, small_fs: Path) -> None:
    big = rig.base / "big.qcow2"
    raw = rig.base / "big.raw"
    raw.write_bytes(os.urandom(32 << 20))
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(big)], check=True)
    raw.unlink()
    rig.output = small_fs / "output"
    template = rig.template(iso_url=str(big))
    code, output = rig.build(template)
    assert_failed(code, output, "stepCopyDisk", "No space left on device")
    rig.assert_clean()
    assert list(small_fs.iterdir()) == []


# 10. ISO checksum mismatch -------------------------------------------------------------------------
def test_checksum_mismatch_local(rig: Rig) -> None:
    template = rig.template(iso_checksum="sha256:" + "0" * 64)
    code, output = rig.build(template)
    assert_failed(code, output, "StepDownload", "checksum", "0" * 16)
    assert "Starting VM" not in output
    rig.assert_clean()


def test_checksum_mismatch_download_is_not_kept(rig: Rig) -> None:
    data = rig.guests.disk.read_bytes()
    with origin_server({"/disk.qcow2": Route(data=data)}) as origin:
        template = rig.template(iso_url=origin.url("/disk.qcow2"), iso_checksum="sha256:" + "1" * 64)
        code, output = rig.build(template)
    assert_failed(code, output, "StepDownload", "checksum")
    assert "Starting VM" not in output
    assert [p.name for p in rig.cache.glob("*") if not p.name.endswith(".lock")] == []
    rig.assert_clean()


# 11. 404 and a stalled server -----------------------------------------------------------------------
def test_iso_404(rig: Rig) -> None:
    with origin_server({}) as origin:
        code, output = rig.build(rig.template(iso_url=origin.url("/missing.iso")))
    assert_failed(code, output, "StepDownload", "404")
    rig.assert_clean()


@pytest.mark.parametrize("route", ["stall", "hang"])
def test_iso_server_stalls(rig: Rig, route: str) -> None:
    routes = {
        "/disk.qcow2": Route(data=b"q" * 100_000, stall_after=1000) if route == "stall" else Route(hang=True)
    }
    with origin_server(routes) as origin:
        started = time.monotonic()
        code, output = rig.build(
            rig.template(iso_url=origin.url("/disk.qcow2"), iso_checksum="sha256:" + "2" * 64),
            env={"VMBAKE_DOWNLOAD_TIMEOUT": "2s"},
            timeout=60,
        )
        took = time.monotonic() - started
    assert_failed(code, output, "StepDownload", "VMBAKE_DOWNLOAD_TIMEOUT")
    assert took < 30, f"a stalled download took {took:.0f}s to fail"
    rig.assert_clean()


# 12. port ranges fully taken -------------------------------------------------------------------------
@contextlib.contextmanager
def held_ports(count: int = 3) -> Iterator[tuple[int, int]]:
    """`count` consecutive loopback ports, all bound and listening by this test."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            low = int(probe.getsockname()[1])
        if low + count > 65535:
            continue
        socks = []
        try:
            for port in range(low, low + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("0.0.0.0", port))
                s.listen(1)
        except OSError:
            for s in socks:
                s.close()
            continue
        try:
            yield low, low + count - 1
        finally:
            for s in socks:
                s.close()
        return
    raise AssertionError("no run of free ports found")


def test_http_port_range_taken(rig: Rig) -> None:
    (rig.base / "http").mkdir()
    with held_ports() as (low, high):
        template = rig.template(http_directory=str(rig.base / "http"), http_port_min=low, http_port_max=high)
        code, output = rig.build(template)
    line = assert_failed(code, output, "StepHTTPServer", f"no free port between {low} and {high}")
    assert "http_port_min" in output
    assert "Starting VM" not in output, line
    rig.assert_clean()


def test_vnc_port_range_taken(rig: Rig) -> None:
    with held_ports() as (low, high):
        template = rig.template(vnc_port_min=low, vnc_port_max=high)
        code, output = rig.build(template)
    assert_failed(code, output, "stepConfigureVNC", f"no free port between {low} and {high}", "vnc_port_max")
    assert "Starting VM" not in output
    rig.assert_clean()


# 13. qemu-img missing ------------------------------------------------------------------------------
def test_qemu_img_missing(rig: Rig) -> None:
    bin_dir = rig.base / "bin"
    bin_dir.mkdir()
    for tool in ("qemu-system-x86_64",):
        (bin_dir / tool).symlink_to(subprocess.check_output(["which", tool], text=True).strip())
    code, output = rig.build(rig.template(), env={"PATH": str(bin_dir)})
    assert_failed(code, output, "qemu-img", "apt-get install qemu-utils")
    assert "Starting VM" not in output
    rig.assert_clean()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
