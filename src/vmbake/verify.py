"""`vmbake verify IMAGE`: boot a finished image on its own, with -snapshot, and check it is healthy.

The image boots under QEMU with the build's machine settings (or plain defaults from the command line),
with every write going to a throw-away snapshot. The checks: SSH answers and accepts the login,
`systemctl is-system-running` says running or degraded, / is mounted read-write, and every device that
/etc/fstab names exists and is the one mounted there. The verdict is PASS or FAIL with the reason and the
last lines of the guest's serial console.

An arm64 image (its root partition has the aarch64 root type) boots under qemu-system-aarch64 -M virt
with AAVMF (UEFI).

Usage: vmbake verify [-ssh-key K] [-user root] [-password P] [-timeout 5m] [-efi] [-memory 1024] [-cpus 2]
                     [-accelerator tcg] IMAGE
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vmbake import arch, qemu_img
from vmbake.comm.ssh import SshTarget
from vmbake.config.qemu import QemuConfig
from vmbake.errors import UsageError, VmbakeError
from vmbake.report.guestcheck import Check, check_guest
from vmbake.run_image import arch_of, read_head
from vmbake.sshkeys import load_private_key
from vmbake.state import BuildState
from vmbake.ui import BuildUi, Ui
from vmbake.units import format_duration, parse_duration
from vmbake.vm import boot, console_tail

OVMF = "/usr/share/ovmf/OVMF.fd"
# Console lines that explain a boot that never reached SSH.
_BOOT_TROUBLE = re.compile(
    r"Timed out waiting for device|Dependency failed for|emergency mode|Kernel panic|Failed to start|"
    r"Cannot open root device|ALERT!|Failed to mount|No bootable device|grub rescue|Read-only file system",
    re.IGNORECASE,
)


@dataclass
class VerifyOptions:
    image: Path
    ssh_key: Path | None = None
    user: str = "root"
    password: str = ""
    timeout: float = 300.0
    key_passphrase: str = ""
    # When the only key is one the build removed from the guest, a refused login still proves SSH runs.
    login_optional: bool = False


@dataclass
class VerifyResult:
    ok: bool
    reason: str
    checks: list[Check] = field(default_factory=list)
    console_tail: str = ""
    seconds: float = 0.0


def boot_trouble(path: Path | None) -> list[str]:
    """The first console lines that say why a boot went wrong (failed units, missing devices, panics):
    the earliest failure is most often the cause of the later ones."""
    text = console_tail(path, 2000)
    found: list[str] = []
    for line in text.splitlines():
        line = re.sub(r"^\[\s*\d+\.\d+\]\s*", "", line.strip())
        if _BOOT_TROUBLE.search(line) and line not in found:
            found.append(line)
    return found[:4]


def image_format(image: Path) -> str:
    return qemu_img.image_info(image)[0]


def image_arch(image: Path) -> str:
    """amd64 or arm64, from the image's partition table (see run_image.arch_of)."""
    return arch_of(read_head(image, image_format(image)))


def boot_config(base: QemuConfig, image_fmt: str) -> QemuConfig:
    """The build's machine, booting the image as a disk, writes to a snapshot, no VNC, no display."""
    return dataclasses.replace(
        base,
        disk_image=True,
        format=image_fmt,
        headless=True,
        communicator="ssh",
        qemuargs=[*base.qemuargs, ["-snapshot"]],
    )


def verify_image(
    options: VerifyOptions,
    config: QemuConfig,
    *,
    say: Callable[[str], None],
    message: Callable[[str], None],
    efivars: Path | None = None,
    cancel: threading.Event | None = None,
) -> VerifyResult:
    """Boot options.image with `config`'s machine and run the checks; never raises for a bad guest."""
    started = time.monotonic()
    image = options.image.resolve()
    if not image.is_file():
        raise VmbakeError(
            f"{options.image}: no such image file", hint="give the path of a finished disk image"
        )
    key = load_private_key(options.ssh_key, options.key_passphrase) if options.ssh_key is not None else None
    config = boot_config(config, image_format(image))
    with tempfile.TemporaryDirectory(prefix="vmbake-verify-") as tmp:
        work = Path(tmp)
        say(f"Booting {image} with -snapshot (the image is not changed)...")
        state = BuildState(work_dir=work, disk_paths=[image], console_log=work / "console.log")
        state.efivars_path = efivars
        if config.efi_boot and efivars is None:
            state.efivars_path = work / "efivars.fd"
            shutil.copyfile(config.efi_firmware_vars, state.efivars_path)
        with boot(config, state, vm_name="vmbake-verify", work=work) as vm:
            assert vm.ssh_port is not None
            target = SshTarget("127.0.0.1", vm.ssh_port, options.user, options.password, key)
            say(f"Waiting for SSH on 127.0.0.1:{vm.ssh_port} (accelerator {vm.accelerator})...")
            comm, why = vm.wait_for_ssh(target, options.timeout, cancel)
            tail = vm.console_tail()
            seconds = time.monotonic() - started
            if comm is None:
                if why == "no credentials" or (why.startswith("auth:") and options.login_optional):
                    say("SSH answers, but vmbake cannot log in: the checks inside the guest were skipped")
                    return VerifyResult(True, "SSH answers (no login: checks inside the guest skipped)",
                                        [Check("ssh", True, "the SSH server answered")], tail, seconds)  # fmt: skip
                if why.startswith("auth:"):
                    reason = f"SSH answers but the login failed: {why[5:].strip()}"
                else:
                    trouble = boot_trouble(vm.console_log)
                    reason = why + ("; the console says: " + " | ".join(trouble) if trouble else "")
                return VerifyResult(False, reason, [Check("ssh", False, reason)], tail, seconds)
            say(
                f"Connected to SSH after {format_duration(time.monotonic() - started)}; checking the guest..."
            )
            try:
                comm.cancel = cancel
                checks = [Check("ssh", True, "logged in"), *check_guest(comm, message)]
            finally:
                comm.close()
            tail = vm.console_tail()
    failed = [c for c in checks if not c.ok]
    reason = "; ".join(f"{c.name}: {c.detail}" for c in failed) if failed else "all checks passed"
    return VerifyResult(not failed, reason, checks, tail, time.monotonic() - started)


def report_result(
    result: VerifyResult, image: Path, say: Callable[[str], None], out: Callable[[str], None]
) -> None:
    """The verdict, and the console's tail when something failed."""
    if result.ok:
        out(f"PASS: {image}: {result.reason} ({format_duration(result.seconds)})")
        return
    out(f"FAIL: {image}: {result.reason}")
    if result.console_tail:
        out(f"The last lines of the guest's console:\n{result.console_tail}")


def _parse(args: Sequence[str]) -> tuple[VerifyOptions, QemuConfig]:
    values: dict[str, str] = {}
    flags = {"ssh-key", "user", "password", "timeout", "memory", "accelerator", "cpus"}
    bools = {"efi"}
    images: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if not arg.startswith("-") or arg == "-":
            images.append(arg)
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        if name in bools:
            values[name] = value if eq else "true"
        elif name in flags:
            if not eq:
                if not rest:
                    raise UsageError(f"flag -{name} needs a value", hint=f"write -{name}=VALUE")
                value = rest.pop(0)
            values[name] = value
        else:
            raise UsageError(
                f"unknown flag {arg!r} for verify", hint="flags: -" + ", -".join(sorted(flags | bools))
            )
    if len(images) != 1:
        raise UsageError("verify needs exactly one IMAGE", hint="vmbake verify [-ssh-key K] IMAGE")
    try:
        timeout = parse_duration(values.get("timeout", "5m"))
        memory = int(values.get("memory", "1024"))
        cpus = int(values.get("cpus", "2"))
    except ValueError as exc:
        raise UsageError(f"bad flag value: {exc}", hint="-timeout takes 5m or 90s; -memory and -cpus numbers")
    efi = values.get("efi", "false") not in ("false", "0", "no")
    image = Path(images[0])
    architecture = image_arch(image) if image.is_file() else "amd64"
    config = QemuConfig(
        disk_image=True, accelerator=values.get("accelerator", ""), memory=memory, cpus=cpus, headless=True,
        firmware=OVMF if efi and architecture == "amd64" else "", qemu_binary=arch.of(architecture).qemu_binary,
    )  # fmt: skip
    # An arm64 disk (by its root partition's type) boots on qemu-system-aarch64's virt machine with AAVMF.
    config = arch.machine_defaults(config, set())
    key = Path(values["ssh-key"]) if values.get("ssh-key") else None
    if key is not None and not key.is_file():
        raise UsageError(f"-ssh-key {key}: no such file", hint="give the private key root logs in with")
    return VerifyOptions(
        Path(images[0]), key, values.get("user", "root"), values.get("password", ""), timeout
    ), config


def main(args: Sequence[str]) -> int:
    """The `vmbake verify` command: 0 on PASS, 1 on FAIL (errors in the arguments raise VmbakeError)."""
    if any(a in ("-h", "-help", "--help") for a in args):
        print("Usage: " + (__doc__ or "").split("Usage: ", 1)[1].strip())
        return 0
    options, config = _parse(args)
    ui = BuildUi(Ui(), "verify")
    result = verify_image(options, config, say=ui.say, message=ui.message)
    report_result(result, options.image, ui.say, ui.ui.say)
    return 0 if result.ok else 1
