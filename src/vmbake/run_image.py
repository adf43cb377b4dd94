"""`vmbake run IMAGE`: boot a baked image and use it, on the serial console or over SSH.

The image boots on a throw-away qcow2 overlay, so it is never written (`-persist` boots the image
itself). The serial console is on the terminal, raw, so keys such as Ctrl-C and Tab go to the guest;
Ctrl-] ends the VM, as in telnet and `virsh console`, and so does a poweroff in the guest. SSH is forwarded
to a free loopback port, printed as a ready `ssh` line. With `-ssh-key K` vmbake waits for the guest's
SSH server and opens a shell with the system's `ssh` client instead of the console; the VM is powered
off when the shell ends. BIOS or UEFI is read from the image's partition table (an EFI system partition
and no BIOS boot partition means UEFI), or set with `-firmware`. The accelerator is chosen as builds
choose it (KVM when it really works, else TCG). QEMU dies with vmbake, and the overlay is removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import selectors
import shutil
import signal
import socket
import struct
import sys
import tempfile
import termios
import time
import tty
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from vmbake import arch, procs, qemu_img
from vmbake.config.qemu import QemuConfig
from vmbake.errors import UsageError, VmbakeError
from vmbake.qmp import QmpError
from vmbake.state import BuildState
from vmbake.units import format_duration
from vmbake.vm import Vm, boot, check_socket_path

ESCAPE = b"\x1d"  # Ctrl-]
FIRMWARES = ("bios", "uefi")
SSH_TIMEOUT = 600.0  # TCG on a busy host: minutes to boot
POWERDOWN_GRACE = 60.0
SECTOR = 512
HEAD_BYTES = 1024 * 1024  # the MBR, the GPT header and a full 128-entry partition array fit in 1 MiB
TYPE_BIOS_BOOT = uuid.UUID("21686148-6449-6E6F-744E-656564454649")
TYPE_ESP = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
MBR_GPT_PROTECTIVE = 0xEE
MBR_ESP = 0xEF


@dataclass(frozen=True)
class RunOptions:
    image: Path
    persist: bool = False
    ssh_key: Path | None = None
    user: str = "root"
    firmware: str = ""  # "" = read from the image
    memory: int = 1024
    cpus: int = 0  # 0 = as builds: the host's CPUs, at most 4


def options_from(values: Mapping[str, object], args: list[str]) -> RunOptions:
    """RunOptions from the parsed command line (cli.parse_flags), every value checked."""
    if len(args) != 1:
        raise UsageError(
            f"'vmbake run' takes exactly one IMAGE argument, got {len(args)}",
            hint="vmbake run [-persist] IMAGE",
        )
    image = Path(args[0])
    if not image.is_file():
        raise UsageError(f"{image}: no such image file", hint="give the path of a disk image (qcow2 or raw)")
    firmware = str(values.get("firmware", ""))
    if firmware and firmware not in FIRMWARES:
        raise UsageError(
            f"invalid -firmware={firmware!r}", hint="use bios or uefi (or leave it out to detect)"
        )
    key = Path(str(values["ssh-key"])) if values.get("ssh-key") else None
    if key is not None and not key.is_file():
        raise UsageError(
            f"-ssh-key {key}: no such file", hint="give the private key the guest's user accepts"
        )
    memory, cpus = values.get("memory", 1024), values.get("cpus", 0)
    assert isinstance(memory, int) and isinstance(cpus, int)  # parse_flags made them ints
    if memory < 64 or cpus < 0:
        raise UsageError(
            "-memory must be at least 64 (MiB) and -cpus a positive number", hint="-memory 1024 -cpus 2"
        )
    user = str(values.get("user", "root")) or "root"
    return RunOptions(image, bool(values.get("persist")), key, user, firmware, memory, cpus)


# -- BIOS or UEFI, from the partition table ----------------------------------------------------------------
def read_head(image: Path, fmt: str, size: int = HEAD_BYTES) -> bytes:
    """The first `size` bytes of the disk the image holds (through qemu-img for qcow2 and the like)."""
    if fmt == "raw":
        with image.open("rb") as f:
            return f.read(size)
    with tempfile.TemporaryDirectory(prefix="vmbake-head-") as tmp:
        out = Path(tmp) / "head.raw"
        procs.run(
            ["qemu-img", "dd", "-U", "-f", fmt, "-O", "raw", f"bs={SECTOR}", f"count={size // SECTOR}",
             f"if={image}", f"of={out}"],
            what="qemu-img dd",
        )  # fmt: skip
        return out.read_bytes()


def partition_types(head: bytes) -> tuple[str, set[uuid.UUID | int]]:
    """("gpt"|"mbr"|"none", the partition type GUIDs (GPT) or type bytes (MBR)) from a disk's first bytes."""
    if len(head) < 2 * SECTOR or head[510:512] != b"\x55\xaa":
        return "none", set()
    mbr_types = {head[446 + 16 * i + 4] for i in range(4)} - {0}
    header = head[SECTOR : 2 * SECTOR]
    if MBR_GPT_PROTECTIVE in mbr_types and header[:8] == b"EFI PART":
        entries_lba, count, entry_size = struct.unpack_from("<QII", header, 72)
        found: set[uuid.UUID | int] = set()
        for i in range(min(count, 1024)):
            start = entries_lba * SECTOR + i * entry_size
            raw = head[start : start + 16]
            if len(raw) < 16:
                break
            guid = uuid.UUID(bytes_le=raw)
            if guid.int:
                found.add(guid)
        return "gpt", found
    return "mbr", set(mbr_types)


def firmware_of(head: bytes) -> tuple[str, str]:
    """(bios|uefi, why) for a disk: UEFI when it has an EFI system partition and no BIOS boot partition
    (a hybrid disk boots either way, and BIOS needs no OVMF); BIOS otherwise."""
    table, types = partition_types(head)
    if table == "none":
        return "bios", "the image has no partition table; trying BIOS"
    if table == "gpt":
        if TYPE_ESP in types and TYPE_BIOS_BOOT not in types:
            return "uefi", "the image has an EFI system partition and no BIOS boot partition"
        if TYPE_BIOS_BOOT in types:
            return "bios", "the image has a BIOS boot partition"
        return "bios", "the image's GPT has no EFI system partition"
    if MBR_ESP in types:
        return "uefi", "the image's MBR has an EFI system partition"
    return "bios", "the image has an MBR partition table"


def arch_of(head: bytes) -> str:
    """The Debian architecture of a disk, from its root partition's GPT type (the Discoverable Partitions
    Specification's, which vmbake's debian-bootstrap builder writes); amd64 when the disk does not say."""
    for found in partition_types(head)[1]:
        if isinstance(found, uuid.UUID) and str(found) in arch.BY_ROOT_TYPE:
            return arch.BY_ROOT_TYPE[str(found)].name
    return "amd64"


# -- the QEMU command line (pure) ------------------------------------------------------------------------
@dataclass(frozen=True)
class RunPaths:
    """Where this run's files are: the disk QEMU boots, the QMP socket, the console socket and log."""

    disk: Path
    qmp: Path
    console_log: Path
    console_socket: Path | None  # None: the console goes only to the log (the -ssh-key mode)
    efivars: Path | None = None


def run_config(
    options: RunOptions, disk_format: str, firmware: str, paths: RunPaths, architecture: str = "amd64"
) -> QemuConfig:
    """The machine: a build's defaults, the disk booted as it is, no display. With a console socket the
    VM starts paused (-S) so that the first line of the firmware reaches the terminal. An arm64 disk gets
    qemu-system-aarch64's virt machine with AAVMF (arch.machine_defaults)."""
    qemuargs: list[list[str]] = []
    if paths.console_socket is not None:
        chardev = (
            f"socket,id=console0,path={paths.console_socket},server=on,wait=off,logfile={paths.console_log}"
        )
        qemuargs = [["-chardev", chardev], ["-serial", "chardev:console0"], ["-S"]]
    config = QemuConfig(
        qemu_binary=arch.of(architecture).qemu_binary,
        disk_image=True,
        format=disk_format,
        headless=True,
        memory=options.memory,
        cpus=options.cpus,
        efi_boot=firmware == "uefi",
        # The overlay is thrown away, so its writes need no flush; the image itself (-persist) keeps them.
        disk_cache="writeback" if options.persist else "unsafe",
        qemuargs=qemuargs,
    )
    return arch.machine_defaults(config, {"efi_boot"})


def run_state(paths: RunPaths) -> BuildState:
    return BuildState(
        work_dir=paths.qmp.parent,
        disk_paths=[paths.disk],
        console_log=paths.console_log,
        efivars_path=paths.efivars,
    )


# -- the console on the terminal ---------------------------------------------------------------------------
@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """The terminal in raw mode (every key to the guest) when `fd` is one; restored on the way out."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def console_session(vm: Vm, console: socket.socket, stdin: int, stdout: int, persist: bool) -> str:
    """Copy the guest's serial console to `stdout` and the keys from `stdin` to it, until QEMU exits
    ("poweroff") or Ctrl-] is typed ("escape"). With `persist`, the first Ctrl-] presses the ACPI power
    button, so that the guest writes its disk cleanly, and a second one (or POWERDOWN_GRACE) ends it."""
    selector = selectors.DefaultSelector()
    selector.register(console, selectors.EVENT_READ, "guest")
    selector.register(stdin, selectors.EVENT_READ, "keys")
    powerdown_until: float | None = None
    try:
        while True:
            if not vm.running():
                return "poweroff"
            if powerdown_until is not None and time.monotonic() > powerdown_until:
                return "escape"
            for key, _ in selector.select(0.5):
                if key.data == "guest":
                    data = console.recv(65536)
                    if not data:  # QEMU closed the console: it is exiting
                        return "poweroff" if vm.wait_exit(5.0) else "escape"
                    _write_all(stdout, data)
                    continue
                data = os.read(stdin, 4096)
                if not data:
                    selector.unregister(stdin)  # no more keys (stdin is not a terminal): the guest runs on
                    continue
                while data:
                    before, escape, data = data.partition(ESCAPE)
                    if before:
                        console.sendall(before)
                    if not escape:
                        break
                    if not persist or powerdown_until is not None:
                        return "escape"
                    _write_all(
                        stdout, b"\r\n[vmbake: ACPI power-down sent; Ctrl-] again stops the VM at once]\r\n"
                    )
                    powerdown_until = time.monotonic() + POWERDOWN_GRACE
                    with contextlib.suppress(QmpError):
                        vm.powerdown()
    finally:
        selector.close()


def connect_console(path: Path, vm: Vm, timeout: float = 10.0) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
            return sock
        except OSError as exc:
            sock.close()
            if not vm.running() or time.monotonic() > deadline:
                raise VmbakeError(f"cannot connect to the VM's console {path}: {exc}") from exc
        time.sleep(0.05)


def ssh_argv(port: int, key: Path, user: str) -> list[str]:
    """The system ssh client, to a guest whose host key is new at each boot (so not remembered)."""
    return [
        "ssh", "-i", str(key), "-p", str(port), "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"{user}@127.0.0.1",
    ]  # fmt: skip


# -- the command -----------------------------------------------------------------------------------------------
class _Hangup(KeyboardInterrupt):
    """SIGTERM or SIGHUP (the terminal closed): unwind, so that QEMU is stopped and the overlay removed."""


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    def handler(signum: int, _frame: FrameType | None) -> None:
        raise _Hangup(signal.Signals(signum).name)

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def prepare_disk(options: RunOptions, fmt: str, size: int, work: Path) -> tuple[Path, str]:
    """(the disk QEMU boots, its format): the image itself with -persist, else a qcow2 overlay on it."""
    image = options.image.resolve()
    if options.persist:
        return image, fmt
    overlay = work / "overlay.qcow2"
    # -u: the size is given, so qemu-img need not open (and lock) the image; QEMU opens it read-only.
    procs.run(
        qemu_img.create_argv(overlay, str(size), backing_file=image, backing_format=fmt, extra=["-u"]),
        what="qemu-img create (the overlay)",
    )
    return overlay, "qcow2"


def run(options: RunOptions, say: Callable[[str], None]) -> int:
    """Boot options.image and hand it to the user; 0 when the guest powered off or the user ended it."""
    with tempfile.TemporaryDirectory(prefix="vmbake-run-") as tmp, _signals_unwind():
        work = Path(tmp)
        image_fmt, size = qemu_img.image_info(options.image.resolve())
        disk, fmt = prepare_disk(options, image_fmt, size, work)
        head = read_head(options.image.resolve(), image_fmt)
        firmware, why = (options.firmware, "-firmware") if options.firmware else firmware_of(head)
        console_mode = options.ssh_key is None
        paths = RunPaths(
            disk=disk,
            qmp=work / "qmp.sock",
            console_log=work / "console.log",
            console_socket=work / "console.sock" if console_mode else None,
        )
        architecture = arch_of(head)
        config = run_config(options, fmt, firmware, paths, architecture)
        if config.efi_boot:
            paths = dataclasses.replace(paths, efivars=work / "efivars.fd")
            try:
                shutil.copyfile(config.efi_firmware_vars, work / "efivars.fd")
            except OSError as exc:
                raise VmbakeError(
                    f"cannot copy the UEFI vars template {config.efi_firmware_vars}: {exc.strerror}",
                    hint="install the UEFI firmware: apt-get install "
                    + (
                        "qemu-efi-aarch64"
                        if architecture == "arm64"
                        else "ovmf (or boot with -firmware bios)"
                    ),
                ) from exc
        if paths.console_socket is not None:
            check_socket_path(paths.console_socket, "TMPDIR")
        state = run_state(paths)
        what = (
            "the image itself (-persist)"
            if options.persist
            else "a throw-away overlay (the image is not changed)"
        )
        machine = (
            ""
            if architecture == "amd64"
            else f"{architecture} ({config.qemu_binary} -M {config.machine_type}), "
        )
        say(f"Booting {options.image} on {what}, {machine}{firmware.upper()} ({why})")
        with boot(config, state, vm_name="vmbake-run", work=work) as vm:
            if not options.persist:
                disk.unlink()  # QEMU holds it open: even a killed vmbake leaves no overlay behind
            if console_mode:
                return _console(vm, options, paths, say)
            return _ssh(vm, options, say)


def _console(vm: Vm, options: RunOptions, paths: RunPaths, say: Callable[[str], None]) -> int:
    assert paths.console_socket is not None
    console = connect_console(paths.console_socket, vm)
    try:
        vm.command("cont")  # started paused (-S), so that the console misses nothing
        say(f"Accelerator {vm.accelerator}; SSH to the guest with:")
        say(f"    ssh -p {vm.ssh_port} {options.user}@127.0.0.1")
        say("The serial console follows; Ctrl-] ends the VM, and so does a poweroff in the guest.")
        stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
        sys.stdout.flush()
        with raw_terminal(stdin):
            how = console_session(vm, console, stdin, stdout, options.persist)
    finally:
        console.close()
    sys.stdout.write("\r\n")  # the console's last line may have no end
    say("The guest powered off." if how == "poweroff" else "Ctrl-]: stopping the VM.")
    return 0


def _ssh(vm: Vm, options: RunOptions, say: Callable[[str], None]) -> int:
    assert options.ssh_key is not None and vm.ssh_port is not None
    started = time.monotonic()
    say(f"Waiting for SSH on 127.0.0.1:{vm.ssh_port} (accelerator {vm.accelerator})...")
    why = vm.wait_for_sshd(SSH_TIMEOUT)
    if why:
        tail = vm.console_tail()
        raise VmbakeError(
            why + (f"\nThe last lines of the guest's console:\n{tail}" if tail else ""),
            hint="boot without -ssh-key to watch the serial console",
        )
    say(
        f"SSH answered after {format_duration(time.monotonic() - started)}; the VM powers off when the shell ends"
    )
    status = procs.interactive(ssh_argv(vm.ssh_port, options.ssh_key, options.user))
    if not vm.running():
        return 0  # the guest powered off from the shell
    say("Powering off the VM...")
    with contextlib.suppress(QmpError):
        vm.powerdown()
    if not vm.wait_exit(POWERDOWN_GRACE):
        say(f"The guest did not power off within {format_duration(POWERDOWN_GRACE)}; stopping QEMU")
    return status if status != 255 else 1
