"""`vmbake verify IMAGE`: boot a finished image on its own, with -snapshot, and check it is healthy.

The image boots under QEMU with the build's machine settings (or plain defaults from the command line),
with every write going to a throw-away snapshot. The checks: SSH answers and accepts the login,
`systemctl is-system-running` says running or degraded, / is mounted read-write, and every device that
/etc/fstab names exists and is the one mounted there. The verdict is PASS or FAIL with the reason and the
last lines of the guest's serial console.

Usage: vmbake verify [-ssh-key K] [-user root] [-password P] [-timeout 5m] [-efi] [-memory 1024] [-cpus 2]
                     [-accelerator tcg] IMAGE
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vmbake import accel, procs
from vmbake.comm.probe import BannerProbe
from vmbake.comm.ssh import ConnectError, SshCommunicator, SshTarget, connect
from vmbake.config.qemu import QemuConfig
from vmbake.errors import VmbakeError
from vmbake.qemu_argv import RunFacts, qemu_argv
from vmbake.qmp import Qmp, QmpError
from vmbake.report.guestcheck import Check, check_guest
from vmbake.sshkeys import load_private_key
from vmbake.state import BuildState
from vmbake.steps.forward_port import reserve_forward_ports
from vmbake.ui import BuildUi, Ui
from vmbake.units import format_duration, parse_duration

CONSOLE_LINES = 20
TRY_TIMEOUT = 5.0
AUTH_TRIES = 3
OVMF = "/usr/share/ovmf/OVMF.fd"
# Console lines that explain a boot that never reached SSH.
_BOOT_TROUBLE = re.compile(
    r"Timed out waiting for device|Dependency failed for|emergency mode|Kernel panic|Failed to start|"
    r"Cannot open root device|ALERT!|Failed to mount|No bootable device|grub rescue|Read-only file system",
    re.IGNORECASE,
)


class UsageError(VmbakeError):
    pass


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


def console_tail(path: Path | None, lines: int = CONSOLE_LINES) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_bytes()[-65536:].decode(errors="replace")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # colour and cursor codes
    kept = [line.rstrip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


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
    out = procs.run(["qemu-img", "info", "--output=json", "-U", str(image)], what="qemu-img info").stdout
    return str(json.loads(out).get("format", "raw"))


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


@contextlib.contextmanager
def booted(config: QemuConfig, image: Path, work: Path, efivars: Path | None = None) -> Iterator[BuildState]:
    """QEMU running `image` (snapshot), SSH forwarded to a free loopback port; stopped on the way out."""
    reservations = reserve_forward_ports(config)
    qmp_path = work / "verify-qmp.sock"
    state = BuildState(
        work_dir=work,
        disk_paths=[image],
        ssh_host_port=reservations[0].port,
        net_probe_port=reservations[1].port,
        qmp_path=qmp_path,
        console_log=work / "console.log",
        efivars_path=efivars,
    )
    if config.efi_boot and efivars is None:
        state.efivars_path = work / "efivars.fd"
        shutil.copyfile(config.efi_firmware_vars, state.efivars_path)
    choice = accel.choose(config.accelerator, config.qemu_binary)
    state.accelerator = choice.accelerator
    argv = qemu_argv(config, state, RunFacts(vm_name="vmbake-verify", accelerator=choice.accelerator))
    state.qemu_argv = argv
    log_path = work / "qemu.log"
    for reservation in reservations:
        reservation.release()
    with log_path.open("wb") as log:
        child = procs.spawn(argv, stdout=log, stderr=log)
    state.qemu = child
    try:
        try:
            state.qmp = Qmp.connect(qmp_path, timeout=30.0, alive=child.running)
        except QmpError as err:
            child.wait(2.0)
            lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
            raise VmbakeError(
                "QEMU did not start: " + ("\n".join(lines[-8:]) or str(err)),
                hint="check the image path and format, and the machine keys",
            ) from err
        yield state
    finally:
        if isinstance(state.qmp, Qmp):
            with contextlib.suppress(Exception):
                state.qmp.quit()
            child.wait(5.0)
            state.qmp.close()
        child.stop(grace=5.0)


def wait_for_login(
    state: BuildState, target: SshTarget, timeout: float, cancel: threading.Event | None
) -> tuple[SshCommunicator | None, str]:
    """(a logged-in communicator, "") or (None, why not): polls until `timeout` seconds have passed."""
    child = state.qemu
    deadline = time.monotonic() + timeout
    seen = "nothing yet"
    auth_failures = 0
    probe = BannerProbe(target.host, target.port, net_probe_port=state.net_probe_port)
    try:
        while True:
            if child is not None and not child.running():
                return None, f"QEMU exited (status {child.returncode}) before SSH answered; last seen: {seen}"
            if cancel is not None and cancel.is_set():
                return None, "cancelled"
            now = time.monotonic()
            if now >= deadline:
                return None, f"SSH did not answer within {format_duration(timeout)}; last seen: {seen}"
            sock = probe.poll(until=min(deadline, now + 1.0))
            if sock is None:
                seen = probe.seen
                continue
            try:
                return connect(target, timeout=max(0.5, min(TRY_TIMEOUT, deadline - now)), sock=sock), ""
            except ConnectError as exc:
                seen = exc.seen
                if exc.seen == "no credentials":
                    return None, "no credentials"
                if exc.seen == "authentication failure":
                    auth_failures += 1
                    if auth_failures >= AUTH_TRIES:
                        return None, f"auth: {exc.message}"
    finally:
        probe.close()


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
        with booted(config, image, work, efivars) as state:
            assert state.ssh_host_port is not None
            target = SshTarget("127.0.0.1", state.ssh_host_port, options.user, options.password, key)
            say(f"Waiting for SSH on 127.0.0.1:{state.ssh_host_port} (accelerator {state.accelerator})...")
            comm, why = wait_for_login(state, target, options.timeout, cancel)
            tail = console_tail(state.console_log)
            seconds = time.monotonic() - started
            if comm is None:
                if why == "no credentials" or (why.startswith("auth:") and options.login_optional):
                    say("SSH answers, but vmbake cannot log in: the checks inside the guest were skipped")
                    return VerifyResult(True, "SSH answers (no login: checks inside the guest skipped)",
                                        [Check("ssh", True, "the SSH server answered")], tail, seconds)  # fmt: skip
                if why.startswith("auth:"):
                    reason = f"SSH answers but the login failed: {why[5:].strip()}"
                else:
                    trouble = boot_trouble(state.console_log)
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
            tail = console_tail(state.console_log)
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
    config = QemuConfig(
        disk_image=True, accelerator=values.get("accelerator", ""), memory=memory, cpus=cpus, headless=True,
        firmware=OVMF if efi else "",
    )  # fmt: skip
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
