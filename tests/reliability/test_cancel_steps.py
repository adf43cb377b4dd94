"""SIGTERM during every step that runs an outside process: exit 130 after cleanup, reported as a cancel.

Each case sends SIGTERM to vmbake alone (as a service manager or `kill PID` does, not to its process group),
while the step's outside process runs, then checks what is left: no child of the build, no QEMU, no file in
TMPDIR, no output directory, and no line that calls the cancel a failure.

Some tools finish in milliseconds here (qemu-img on a 64 MiB image) or take minutes (mmdebstrap); to land
the signal while they run, a shim of the same name comes first on PATH: it writes a note, sleeps, then
execs the real tool. The signal lands in the sleep, so the cancel meets a live child that vmbake started
for that step. That shim is this module's one stand-in.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.faults import VmbakeRun, error_lines, wait_gone
from tests.reliability.conftest import Rig

pytestmark = pytest.mark.timeout(180)

_SHIM = """#!{python}
import os, sys, time
if {word!r} in sys.argv[1:] and ({armed!r} is None or os.path.exists({armed!r})):
    with open({note!r}, "w") as f:
        f.write(" ".join(sys.argv))
    time.sleep(60)
os.execv({real!r}, [{real!r}, *sys.argv[1:]])
"""


def shim(rig: Rig, tool: str, word: str, armed: Path | None = None) -> dict[str, str]:
    """The env that puts a slow `tool` first on PATH: it sleeps when its argv holds `word` (and, given
    `armed`, once that file exists: to let earlier runs of the same command through)."""
    real = shutil.which(tool)
    if real is None:
        pytest.skip(f"{tool} is not installed")
    directory = rig.base / "shim"
    directory.mkdir(exist_ok=True)
    path = directory / tool
    path.write_text(
        _SHIM.format(
            python=sys.executable,
            word=word,
            armed=None if armed is None else str(armed),
            note=str(rig.base / "shim-note"),
            real=real,
        )
    )
    path.chmod(0o755)
    return {"PATH": f"{directory}{os.pathsep}{os.environ['PATH']}"}


def template(rig: Rig, *, hanging: bool = True, **keys: object) -> dict[str, object]:
    built = rig.template(hanging=hanging)
    builders = built["builders"]
    assert isinstance(builders, list)
    builders[0].update(keys)
    return built


def wait_for_note(rig: Rig, run: VmbakeRun, timeout: float = 60) -> str:
    note = rig.base / "shim-note"
    deadline = time.monotonic() + timeout
    while not note.exists():
        assert run.proc.poll() is None, f"vmbake exited before the shim ran:\n{run.output}"
        assert time.monotonic() < deadline, f"the shim never ran:\n{run.output}"
        time.sleep(0.1)
    return note.read_text()


def assert_cancelled(rig: Rig, run: VmbakeRun, *, left: str = "", out_dir: str = "removed") -> str:
    """SIGTERM to vmbake only; then exit 130, a cancel message, no failure line, nothing left behind (the
    output directory as `out_dir` says, see Rig.assert_clean)."""
    started = time.monotonic()
    os.kill(run.pid, signal.SIGTERM)
    code, output = run.finish(60)
    assert code == 130, output
    assert time.monotonic() - started < 30, f"cancelling took too long:\n{output}"
    assert "cancelled by SIGTERM" in output, output
    # Packer's own summary lines stay ("Build 'qemu' errored after ...: build cancelled by SIGTERM"), but
    # each says cancelled, and no step wraps the cancel in its own "Error creating disk: ..." message.
    assert all("cancelled by SIGTERM" in line for line in error_lines(output)), output
    assert "Error" not in output and "Traceback" not in output and "internal error" not in output, output
    assert wait_gone(str(rig.base / "shim")) == [], "the step's tool is still running"
    if left:
        assert wait_gone(left) == [], f"{left} still running"
    rig.assert_clean(output=out_dir)
    return output


@pytest.mark.parametrize(
    ("tool", "word", "extra"),
    [
        ("qemu-img", "create", {"disk_image": False, "qemuargs": []}),  # StepCreateDisk
        # StepCopyDisk converts the disk_image into the output directory (a .qcow2 into qcow2 is copied
        # unless qemu_img_args.convert asks for options)
        ("qemu-img", "convert", {"qemu_img_args": {"convert": ["-W"]}}),
        ("qemu-img", "resize", {"disk_size": "128M"}),  # StepResizeDisk
    ],
    ids=["qemu-img-create", "qemu-img-convert-copy", "qemu-img-resize"],
)
def test_sigterm_while_a_tool_prepares_the_disk(
    rig: Rig, tool: str, word: str, extra: dict[str, object]
) -> None:
    run = rig.start(template(rig, **extra), env=shim(rig, tool, word))
    wait_for_note(rig, run)
    assert_cancelled(rig, run)


def test_sigterm_while_xorriso_makes_the_cd(rig: Rig) -> None:
    """StepCreateCD: cd_files become an ISO made by xorriso (shimmed, as it takes milliseconds)."""
    (rig.base / "meta-data").write_text("instance-id: x\n")
    run = rig.start(
        template(rig, cd_files=[str(rig.base / "meta-data")]), env=shim(rig, "xorriso", "mkisofs")
    )
    wait_for_note(rig, run)
    assert_cancelled(rig, run)


def test_sigterm_while_qemu_img_compacts_the_output(rig: Rig) -> None:
    """The guest powers off by itself; the compressing convert of StepConvertDisk is the one with -c."""
    run = rig.start(template(rig, hanging=False), env=shim(rig, "qemu-img", "-c"))
    wait_for_note(rig, run, timeout=120)
    assert_cancelled(rig, run)


def test_sigterm_while_waiting_for_ssh(rig: Rig) -> None:
    """QEMU runs a guest that never answers SSH: the cancel stops QEMU (the rig finds it by vm_name)."""
    template = rig.template(communicator="ssh", ssh_username="root", ssh_password="x", ssh_timeout="10m")
    run = rig.start(template)
    run.wait_for(r"Waiting for SSH")
    assert rig.qemu_pids()
    assert_cancelled(rig, run)


def test_sigterm_while_the_http_server_serves(rig: Rig) -> None:
    (rig.base / "http").mkdir()
    (rig.base / "http" / "preseed.cfg").write_text("d-i x\n")
    template = rig.template(http_directory=str(rig.base / "http"), boot_wait="10m", boot_command=["<enter>"])
    run = rig.start(template)
    line = run.wait_for(r"Starting HTTP server on port \d+")
    port = int(line.rsplit("port", 1)[1].split()[0])
    run.wait_for(r"Waiting 10m")
    socket.create_connection(("127.0.0.1", port), timeout=5).close()  # it serves
    assert_cancelled(rig, run)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_sigterm_during_a_shell_local_provisioner(rig: Rig) -> None:
    """The script's own child (a sleep with a unique argv) must go with it: vmbake kills the group."""
    template = rig.template()
    template["provisioners"] = [{"type": "shell-local", "inline": ["echo SHELL-LOCAL-UP", "sleep 61.25"]}]
    run = rig.start(template)
    run.wait_for(r"SHELL-LOCAL-UP")
    assert_cancelled(rig, run, left="sleep 61.25")


def test_sigterm_during_mmdebstrap(rig: Rig) -> None:
    """The debian-bootstrap builder's mmdebstrap (shimmed: the real one would take minutes)."""
    if os.geteuid() != 0:
        pytest.skip("the debian-bootstrap builder needs root")
    template = {
        "builders": [
            {
                "type": "debian-bootstrap",
                "suite": "bookworm",
                "disk_size": "2G",
                "accelerator": "tcg",
                "output_directory": str(rig.output),
                "vm_name": rig.vm_name,
            }
        ]
    }
    run = rig.start(template, env=shim(rig, "mmdebstrap", "bookworm"))
    wait_for_note(rig, run)
    assert_cancelled(rig, run)


def test_sigterm_while_waiting_for_the_installer(rig: Rig) -> None:
    """installer_boot "kernel" on an ISO laid out like Debian's netinst whose initrd is the tiny guest that
    never ends (d-i itself would take minutes to boot under TCG): SIGTERM lands in the installer wait."""
    from tests.helpers.guests import DI_KERNEL
    from tests.helpers.installer import make_netinst_iso

    if not DI_KERNEL.is_file() or shutil.which("xorriso") is None:
        pytest.skip("needs debian-installer-12-netboot-amd64 and xorriso")
    iso = make_netinst_iso(rig.base / "netinst.iso", DI_KERNEL, rig.guests.hanging)
    built = template(rig, iso_url=str(iso), disk_image=False, installer_boot="kernel", qemuargs=[],
                     kernel_args="console=ttyS0 panic=-1 quiet")  # fmt: skip
    run = rig.start(built)
    run.wait_for(r"Waiting for the installer to finish")
    assert rig.qemu_pids()
    assert_cancelled(rig, run)


# Post-processors run after the builder's steps have finished and cleaned up: the guest powered off by
# itself, the output directory holds a finished image. What a cancel there does to that image follows
# Packer (packer/build.go, CoreBuild.Run): a chain whose first post-processor did not finish keeps
# nothing, so the build's artifact is deleted unless the first post-processor of some chain had already
# finished and kept it (checksum, manifest, shell-local and convert keep it; compress and vagrant do not).


def post_processed(rig: Rig, *chain: dict[str, object]) -> dict[str, object]:
    """The tiny guest that powers off by itself, followed by one post-processor chain."""
    built = template(rig, hanging=False, disk_compression=False)  # no compaction: not the point here
    built["post-processors"] = [list(chain)]
    return built


def assert_output_kept(rig: Rig, *names: str) -> None:
    """The build's output directory stayed, finished (no INCOMPLETE marker), with `names` in it."""
    kept = sorted(p.name for p in rig.output.iterdir())
    assert "INCOMPLETE" not in kept, kept
    for name in names:
        assert name in kept, kept


def test_sigterm_during_a_shell_local_post_processor(rig: Rig) -> None:
    """The only chain's first post-processor is cancelled: the build's artifact goes, as in Packer."""
    built = post_processed(rig, {"type": "shell-local", "inline": ["echo PP-UP", "sleep 61.5"]})
    run = rig.start(built)
    run.wait_for(r"PP-UP", timeout=120)
    assert rig.output.is_dir()  # the finished image was there while the command ran
    output = assert_cancelled(rig, run, left="sleep 61.5")
    assert "Deleting original artifact" in output, output


def test_sigterm_after_the_first_post_processor_kept_the_artifact(rig: Rig) -> None:
    """checksum finished first and keeps its input: the cancel of the next one leaves the image and the sums."""
    sums = rig.base / "sums.md5"
    built = post_processed(
        rig,
        {"type": "checksum", "output": str(sums)},
        {"type": "shell-local", "inline": ["echo PP-UP", "sleep 61.75"]},
    )
    run = rig.start(built)
    run.wait_for(r"PP-UP", timeout=120)
    output = assert_cancelled(rig, run, left="sleep 61.75", out_dir="any")
    assert "Deleting original artifact" not in output, output
    assert_output_kept(rig, rig.vm_name)
    assert rig.vm_name in sums.read_text()


def leftovers(rig: Rig) -> list[str]:
    """Files a post-processor may have written beside the template or into the output dir."""
    found = [
        p.name for p in rig.base.iterdir() if p.is_file() and p.name not in ("template.json", "shim-note")
    ]
    if rig.output.is_dir():
        found += [p.name for p in rig.output.iterdir()]
    return sorted(found)


def test_sigterm_while_zstd_compresses(rig: Rig) -> None:
    """compress to .tar.zst: a tar, then zstd (shimmed). Neither the tar nor a partial archive stays."""
    built = post_processed(rig, {"type": "compress", "output": str(rig.base / "image.tar.zst")})
    run = rig.start(built, env=shim(rig, "zstd", "-T0"))
    wait_for_note(rig, run, timeout=120)
    assert_cancelled(rig, run)
    assert leftovers(rig) == []


def test_sigterm_while_compress_writes_in_process(rig: Rig) -> None:
    """compress to .tar.xz runs inside vmbake (no outside process): the signal lands in Python code. The
    output holds noise that xz cannot shrink (written by a provisioner) so the archive takes seconds."""
    built = post_processed(
        rig, {"type": "compress", "output": str(rig.base / "image.tar.xz"), "compression_level": 9}
    )
    built["provisioners"] = [
        {"type": "shell-local", "inline": [f"head -c 12000000 /dev/urandom > {rig.output}/noise.bin"]}
    ]
    run = rig.start(built)
    run.wait_for(r"Running post-processor: compress", timeout=120)
    deadline = time.monotonic() + 30
    while not any(p.name.endswith(".tmp") for p in rig.base.iterdir()):
        assert run.proc.poll() is None, f"compress finished before the signal:\n{run.output}"
        assert time.monotonic() < deadline, run.output
        time.sleep(0.05)
    assert_cancelled(rig, run)
    assert leftovers(rig) == []


@pytest.mark.parametrize(
    ("fmt", "word"),
    [("vmdk", "subformat=streamOptimized"), ("vpc", "subformat=fixed,force_size=on")],
    ids=["convert-vmdk", "convert-vhd-create"],
)
def test_sigterm_while_qemu_img_converts_for_another_hypervisor(rig: Rig, fmt: str, word: str) -> None:
    """vmbake's convert post-processor: qemu-img convert (vmdk) or qemu-img create (the fixed VHD)."""
    built = post_processed(rig, {"type": "convert", "formats": [fmt]})
    run = rig.start(built, env=shim(rig, "qemu-img", word))
    wait_for_note(rig, run, timeout=120)
    assert_cancelled(rig, run)
    assert leftovers(rig) == []


def test_sigterm_while_vagrant_reads_the_disk(rig: Rig) -> None:
    """vagrant asks qemu-img for the disk's format first. The builder's report asks the same, so the shim
    is armed by a shell-local post-processor that runs first (and keeps the image, as in Packer)."""
    armed = rig.base / "armed"
    built = post_processed(
        rig,
        {"type": "shell-local", "inline": [f"touch {armed}"]},
        {"type": "vagrant", "output": str(rig.base / "image.box")},
    )
    run = rig.start(built, env=shim(rig, "qemu-img", "info", armed=armed))
    wait_for_note(rig, run, timeout=120)
    assert_cancelled(rig, run, out_dir="any")
    assert_output_kept(rig, rig.vm_name)
    assert leftovers(rig) == sorted(["armed", *(p.name for p in rig.output.iterdir())])
