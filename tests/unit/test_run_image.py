"""`vmbake run`: the exact QEMU argv, BIOS or UEFI read from real partition tables (sfdisk, qemu-img),
the flags, and the console loop between a terminal and the guest's serial port.

Booting real images under tmux is in tests/integration/test_run_image.py."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import cast

import pytest

from vmbake import procs
from vmbake.cli import main
from vmbake.errors import UsageError
from vmbake.qemu_argv import RunFacts, qemu_argv
from vmbake.run_image import (
    ESCAPE,
    RunOptions,
    RunPaths,
    console_session,
    firmware_of,
    options_from,
    read_head,
    run_config,
    run_state,
    ssh_argv,
)
from vmbake.vm import Vm

pytestmark = pytest.mark.host_tools("qemu-img", "sfdisk")

FACTS = RunFacts(vm_name="vmbake-run", accelerator="tcg", host_cpus=2)
BIOS_BOOT = "21686148-6449-6E6F-744E-656564454649"
ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"


def _argv(options: RunOptions, firmware: str, paths: RunPaths) -> list[str]:
    """The argv vm.boot() builds for `vmbake run`, with the ports it would have reserved."""
    state = run_state(paths)
    state.qmp_path, state.ssh_host_port, state.net_probe_port = paths.qmp, 40022, 40023
    return qemu_argv(run_config(options, "qcow2", firmware, paths), state, FACTS)


def test_console_argv_boots_the_overlay_paused_with_the_console_on_a_socket() -> None:
    w = Path("/w")
    paths = RunPaths(w / "overlay.qcow2", w / "qmp.sock", w / "console.log", w / "console.sock")
    argv = _argv(RunOptions(Path("/img/disk.qcow2"), cpus=1), "bios", paths)
    assert argv == [
        "qemu-system-x86_64", "-name", "vmbake-run", "-machine", "type=pc,accel=tcg", "-smp", "1",
        "-m", "1024M", "-boot", "c",
        "-drive", "file=/w/overlay.qcow2,if=virtio,cache=unsafe,discard=unmap,format=qcow2,detect-zeroes=unmap",
        "-device", "virtio-net,netdev=user.0",
        "-netdev", "user,id=user.0,hostfwd=tcp:127.0.0.1:40022-:22,hostfwd=tcp:127.0.0.1:40023-:1",
        "-display", "none", "-qmp", "unix:/w/qmp.sock,server=on,wait=off",
        "-serial", "chardev:console0",
        "-chardev", "socket,id=console0,path=/w/console.sock,server=on,wait=off,logfile=/w/console.log",
        "-S",
    ]  # fmt: skip


def test_ssh_argv_boots_uefi_with_the_console_in_a_file() -> None:
    w = Path("/w")
    paths = RunPaths(Path("/img/disk.raw"), w / "qmp.sock", w / "console.log", None, w / "efivars.fd")
    options = RunOptions(Path("/img/disk.raw"), persist=True, ssh_key=Path("/k"), memory=2048, cpus=2)
    state = run_state(paths)
    state.qmp_path, state.ssh_host_port, state.net_probe_port = paths.qmp, 40022, 40023
    argv = qemu_argv(run_config(options, "raw", "uefi", paths), state, FACTS)
    assert argv == [
        "qemu-system-x86_64", "-name", "vmbake-run", "-machine", "type=pc,accel=tcg", "-smp", "2",
        "-m", "2048M",
        "-drive", "file=/img/disk.raw,if=virtio,cache=writeback,discard=unmap,format=raw,detect-zeroes=unmap",
        "-drive", "file=/usr/share/OVMF/OVMF_CODE_4M.fd,if=pflash,unit=0,format=raw,readonly=on",
        "-drive", "file=/w/efivars.fd,if=pflash,unit=1,format=raw",
        "-device", "virtio-net,netdev=user.0",
        "-netdev", "user,id=user.0,hostfwd=tcp:127.0.0.1:40022-:22,hostfwd=tcp:127.0.0.1:40023-:1",
        "-display", "none", "-qmp", "unix:/w/qmp.sock,server=on,wait=off", "-serial", "file:/w/console.log",
    ]  # fmt: skip


def test_default_cpus_follow_the_builds() -> None:
    w = Path("/w")
    paths = RunPaths(w / "o.qcow2", w / "qmp.sock", w / "console.log", None)
    argv = _argv(RunOptions(Path("/i")), "bios", paths)
    assert argv[argv.index("-smp") + 1] == "2"  # FACTS.host_cpus, as a build with no cpus key


def test_ssh_client_argv() -> None:
    assert ssh_argv(40022, Path("/k/id"), "root") == [
        "ssh", "-i", "/k/id", "-p", "40022", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "root@127.0.0.1",
    ]  # fmt: skip


# -- BIOS or UEFI from real partition tables -------------------------------------------------------------
def _disk(tmp_path: Path, name: str, table: str) -> Path:
    image = tmp_path / name
    procs.run(["qemu-img", "create", "-f", "raw", str(image), "64M"])
    procs.run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(image)], input=table)
    return image


GPT = "label: gpt\n"


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (GPT + f"size=1MiB, type={BIOS_BOOT}\ntype={LINUX}\n", "bios"),
        (GPT + f"size=16MiB, type={ESP}\ntype={LINUX}\n", "uefi"),
        (GPT + f"size=1MiB, type={BIOS_BOOT}\nsize=16MiB, type={ESP}\ntype={LINUX}\n", "bios"),
        (GPT + f"type={LINUX}\n", "bios"),
        ("label: dos\nsize=16MiB, type=ef\ntype=83\n", "uefi"),
        ("label: dos\ntype=83, bootable\n", "bios"),
    ],
    ids=["gpt-bios-boot", "gpt-esp", "gpt-hybrid", "gpt-neither", "mbr-esp", "mbr-linux"],
)
def test_firmware_from_the_partition_table(tmp_path: Path, table: str, expected: str) -> None:
    image = _disk(tmp_path, "disk.raw", table)
    firmware, why = firmware_of(read_head(image, "raw"))
    assert firmware == expected, why


def test_firmware_of_a_qcow2_image_and_of_a_blank_disk(tmp_path: Path) -> None:
    raw = _disk(tmp_path, "disk.raw", GPT + f"size=16MiB, type={ESP}\ntype={LINUX}\n")
    qcow2 = tmp_path / "disk.qcow2"
    procs.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)])
    assert firmware_of(read_head(qcow2, "qcow2"))[0] == "uefi"
    blank = tmp_path / "blank.qcow2"
    procs.run(["qemu-img", "create", "-f", "qcow2", str(blank), "8M"])
    assert firmware_of(read_head(blank, "qcow2")) == ("bios", "the image has no partition table; trying BIOS")


# -- flags ----------------------------------------------------------------------------------------------------
def test_options_are_checked(tmp_path: Path) -> None:
    image = tmp_path / "disk.qcow2"
    image.write_bytes(b"")
    assert options_from({"cpus": 1, "persist": True}, [str(image)]) == RunOptions(image, persist=True, cpus=1)
    with pytest.raises(UsageError, match="exactly one IMAGE"):
        options_from({}, [])
    with pytest.raises(UsageError, match="no such image file"):
        options_from({}, [str(tmp_path / "missing.qcow2")])
    with pytest.raises(UsageError, match="invalid -firmware='efi'"):
        options_from({"firmware": "efi"}, [str(image)])
    with pytest.raises(UsageError, match=r"-ssh-key .*no such file"):
        options_from({"ssh-key": str(tmp_path / "nokey")}, [str(image)])


def test_cli_run_help_and_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["help", "run"]) == 0
    text = capsys.readouterr().out
    assert "Usage: vmbake run [options] IMAGE" in text and "Ctrl-]" in text and "-persist" in text
    assert main(["run", "-firmware=bogus", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Error:" in err and "Traceback" not in err


# -- the console loop -------------------------------------------------------------------------------------------
class StubVm:
    """Stands in for vm.Vm in the loop's tests: the loop only asks whether QEMU runs and presses power."""

    def __init__(self) -> None:
        self.alive = True
        self.powerdowns = 0

    def running(self) -> bool:
        return self.alive

    def wait_exit(self, timeout: float) -> bool:
        return not self.alive

    def powerdown(self) -> None:
        self.powerdowns += 1


def _loop(keys: bytes, persist: bool, guest_says: bytes = b"") -> tuple[str, bytes, bytes, StubVm]:
    guest, console = socket.socketpair()
    keys_r, keys_w = os.pipe()
    out_r, out_w = os.pipe()
    vm = StubVm()
    if guest_says:
        guest.sendall(guest_says)
    os.write(keys_w, keys)
    result: list[str] = []
    as_vm = cast(Vm, vm)
    thread = threading.Thread(
        target=lambda: result.append(console_session(as_vm, console, keys_r, out_w, persist))
    )
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "the console loop did not end"
    guest.settimeout(1)
    got = guest.recv(1024)
    os.close(out_w)
    shown = os.read(out_r, 65536)
    for fd in (keys_r, keys_w, out_r):
        os.close(fd)
    guest.close()
    console.close()
    return result[0], got, shown, vm


def test_ctrl_bracket_ends_the_console_and_keys_before_it_reach_the_guest() -> None:
    how, got, shown, vm = _loop(b"root\r\x03" + ESCAPE + b"never", persist=False, guest_says=b"login: ")
    assert how == "escape"
    assert got == b"root\r\x03"  # Ctrl-C (0x03) is the guest's, not vmbake's
    assert shown == b"login: " and vm.powerdowns == 0


def test_with_persist_the_first_ctrl_bracket_powers_down_and_the_second_ends() -> None:
    how, got, shown, vm = _loop(b"x" + ESCAPE + ESCAPE, persist=True)
    assert how == "escape" and got == b"x"
    assert vm.powerdowns == 1 and b"ACPI power-down sent" in shown
