"""A running VM: QEMU started from the pure argv, the host ports it holds, its QMP socket and its console.

`boot()` is the way in: it reserves the SSH forward's host ports, builds the argv with `qemu_argv`, starts
QEMU through procs and waits for its QMP socket; when QEMU finds a chosen port taken it chooses again. It
yields a `Vm`, which waits for SSH, reads the console's tail, presses the ACPI power button and stops
QEMU (QMP quit, then SIGTERM, then SIGKILL). Leaving the `with` block stops it, whatever happened.

`vmbake verify` and `vmbake run` use `boot()`. A build's VM is a `BuildVm`: stepRun starts it, and
StepInstallerReboot starts it again from the disk once the installer is done; it keeps the build's typed
state (state.qemu, state.qmp, state.vm_watch) and prints Packer's messages. Every wait for the guest's
SSH server, the build's (StepConnect) and verify's, is `wait_for_ssh`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vmbake import accel, procs
from vmbake.comm.probe import BannerProbe
from vmbake.comm.ssh import ConnectError, SshCommunicator, SshTarget, connect
from vmbake.config.qemu import QemuConfig
from vmbake.errors import BuildCancelled, StepError, VmbakeError
from vmbake.installer.console_watch import installer_console
from vmbake.ports import PortReservation, reserve_port
from vmbake.qemu_argv import RunFacts, host_cpus, output_dir_of, qemu_argv, vm_name_of
from vmbake.qmp import Qmp, QmpError
from vmbake.sshkeys import load_private_key
from vmbake.state import BuildContext, BuildState
from vmbake.units import format_duration
from vmbake.vmwatch import VmWatch

log = logging.getLogger("vmbake.vm")

FORWARD_HOST = "127.0.0.1"
QMP_TIMEOUT = 30.0
START_ATTEMPTS = 3
CONSOLE_LINES = 20
TRY_TIMEOUT = 5.0  # first login's limit (key exchange and authentication, once the server has answered)
MAX_TRY_TIMEOUT = 40.0
# The server answered but did not finish the key exchange in time: an sshd too slow (TCG on a busy host)
# for the limit. Each such try gets a longer limit, so that it is eventually given the time it needs.
SLOW_ANSWERS = ("banner timeout", "key exchange timeout")
AUTH_RETRY_INTERVAL = 2.0  # the guest may still be installing its authorized_keys
SSH_POLL = 1.0  # seconds between two probes of the guest's network (comm.probe)
AUTH_TRIES = 3  # verify's refused logins before it gives up
_UNIX_PATH_MAX = 108  # sun_path's size on Linux, with its terminating NUL
PORT_TAKEN = re.compile(r"Address already in use|host forwarding rule|Failed to find an available port")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NO_GTK = re.compile(r"Display 'gtk' is not available|gtk initialization failed")


# -- the host ports of the SSH forward -------------------------------------------------------------------
def host_port_range(config: QemuConfig) -> tuple[int, int]:
    low = config.ssh_host_port_min or config.host_port_min
    high = config.ssh_host_port_max or config.host_port_max
    return low, high


def reserve_ssh_port(config: QemuConfig) -> PortReservation:
    low, high = host_port_range(config)
    return reserve_port(FORWARD_HOST, low, high, keys=("host_port_min", "host_port_max"))


def reserve_vnc_port(config: QemuConfig) -> PortReservation:
    return reserve_port(
        config.vnc_bind_address,
        config.vnc_port_min,
        config.vnc_port_max,
        keys=("vnc_port_min", "vnc_port_max"),
    )


def reserve_forward_ports(config: QemuConfig) -> tuple[PortReservation, PortReservation]:
    """The host ports of the SSH forward and of the network probe's forward (comm.probe), both reserved."""
    ssh = reserve_ssh_port(config)
    try:
        return ssh, reserve_ssh_port(config)
    except VmbakeError:
        ssh.release()
        raise


# -- the serial console ------------------------------------------------------------------------------------
def console_tail(path: Path | None, lines: int = CONSOLE_LINES) -> str:
    """The last `lines` non-blank lines of a console log, without colour and cursor codes ("" if none)."""
    if path is None or not path.exists():
        return ""
    text = path.read_bytes()[-65536:].decode(errors="replace")
    text = _ANSI.sub("", text)
    kept = [line.rstrip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def check_socket_path(path: Path, key: str = "qmp_socket_path") -> None:
    if len(os.fsencode(path)) >= _UNIX_PATH_MAX:
        raise VmbakeError(
            f"the socket path {path} is too long for a unix socket",
            hint=f"set {key} to a shorter path, or TMPDIR to a shorter directory",
        )


def stop_qemu(child: procs.Child | None, qmp: Qmp | None, quit_timeout: float = 5.0) -> None:
    """Stop QEMU if it runs: ask it to quit over QMP, then SIGTERM, then SIGKILL; reaps its process group
    and closes QMP. Safe to call again."""
    if child is not None and child.running() and qmp is not None:
        qmp.quit()
        child.wait(quit_timeout)
    if child is not None:
        child.stop(grace=5.0)  # also reaps anything left in QEMU's process group
    if qmp is not None:
        qmp.close()


# -- the build's guest over SSH -------------------------------------------------------------------------------
def _direct(ctx: BuildContext) -> bool:
    """True when vmbake reaches the guest's SSH port itself, not through QEMU's port forward."""
    config = ctx.config
    return bool(config.ssh_host) or config.skip_nat_mapping or (ctx.state.ssh_host_port is None)


def net_probe_port(ctx: BuildContext) -> int | None:
    """The forward that tells when the guest's network is up (comm.probe), when SSH goes through QEMU's."""
    return None if _direct(ctx) else ctx.state.net_probe_port


def ssh_target(ctx: BuildContext) -> SshTarget:
    """Where and how to log in to this build's guest, from its config and state (StepConnect's rule, and
    the ansible provisioner's)."""
    config = ctx.config
    ssh_host = config.ssh_host
    port = config.ssh_port if _direct(ctx) else ctx.state.ssh_host_port
    key = None
    if ctx.state.ssh_private_key_path is not None:
        key = load_private_key(ctx.state.ssh_private_key_path, config.ssh_key_passphrase)
    return SshTarget(
        host=ssh_host or "127.0.0.1",
        port=int(port or 22),
        username=config.ssh_username or "root",
        password=config.ssh_password,
        key=key,
        agent=config.ssh_agent_auth,
        keep_alive=config.ssh_keep_alive_interval,
        read_write_timeout=config.ssh_read_write_timeout,
        transfer=config.ssh_file_transfer_method or "sftp",
        pinned_host_key=ctx.state.ssh_host_key,
        progress=lambda name, size: ctx.ui.progress(name, size),
    )


# -- the wait for SSH -----------------------------------------------------------------------------------------
class SshWaitFailed(VmbakeError):
    """The wait for SSH ended without a login. `kind`: "timeout", "exited" (QEMU ended: `status`), "auth"
    (`attempts` logins refused) or "refused" (a failure that trying again cannot mend, as "no credentials");
    `seen` is what the guest's port showed last, `last` the last login's own error."""

    def __init__(
        self,
        kind: str,
        message: str,
        hint: str | None = None,
        *,
        seen: str = "",
        status: int | None = None,
        last: str = "",
    ) -> None:
        super().__init__(message, hint)
        self.kind = kind
        self.seen = seen
        self.status = status
        self.last = last or message


def wait_for_ssh(
    target: SshTarget,
    timeout: float,
    *,
    exited: Callable[[], int | None] = lambda: None,
    cancel: threading.Event | None = None,
    net_probe_port: int | None = None,
    attempts: int = 10,
    on_failed_login: Callable[[str], None] = lambda message: None,
) -> SshCommunicator:
    """Log in to the guest's SSH server as soon as it answers; polls its port (and the network probe's,
    see comm.probe) until `timeout` seconds have passed. `exited` gives QEMU's exit status once it ended.
    Raises SshWaitFailed, or BuildCancelled when `cancel` is set."""
    started = time.monotonic()
    deadline = started + timeout
    seen = "nothing yet"
    auth_failures = 0
    handshake_timeout = TRY_TIMEOUT
    not_before = started  # after an authentication failure, the next login waits a little
    stop = cancel if cancel is not None else threading.Event()
    probe = BannerProbe(target.host, target.port, interval=SSH_POLL, net_probe_port=net_probe_port)
    try:
        while True:
            status = exited()
            if status is not None:
                raise SshWaitFailed(
                    "exited",
                    f"QEMU exited (status {status}) before SSH became available on {target.address}",
                    seen=seen,
                    status=status,
                )
            now = time.monotonic()
            if now >= deadline:
                raise SshWaitFailed(
                    "timeout",
                    f"timeout waiting for SSH after {format_duration(now - started)} ({target.address}); "
                    f"last seen: {seen}",
                    seen=seen,
                )
            if now < not_before:
                if stop.wait(min(not_before, deadline) - now):
                    raise BuildCancelled()
                continue
            sock = probe.poll(until=min(deadline, now + SSH_POLL))
            if stop.is_set():
                if sock is not None:
                    sock.close()
                raise BuildCancelled()
            if sock is None:
                if probe.seen != seen:
                    log.debug("SSH at %.1fs: %s", time.monotonic() - started, probe.seen)
                seen = probe.seen
                continue
            tried_at = time.monotonic()
            try:
                return connect(
                    target, timeout=max(0.5, min(handshake_timeout, deadline - tried_at)), sock=sock
                )
            except ConnectError as exc:
                if not exc.retry:
                    raise SshWaitFailed("refused", exc.message, exc.hint, seen=exc.seen) from None
                seen = exc.seen
                log.debug(
                    "SSH login at %.1fs failed after %.1fs: %s",
                    tried_at - started,
                    time.monotonic() - tried_at,
                    exc.message,
                )
                on_failed_login(exc.message)
                if seen in SLOW_ANSWERS:
                    handshake_timeout = min(handshake_timeout * 1.5, MAX_TRY_TIMEOUT)
                if seen == "authentication failure":
                    auth_failures += 1
                    if auth_failures >= attempts:
                        raise SshWaitFailed(
                            "auth",
                            f"{exc.message}; gave up after {auth_failures} attempts (ssh_handshake_attempts)",
                            exc.hint,
                            seen=seen,
                            last=exc.message,
                        ) from None
                    not_before = tried_at + AUTH_RETRY_INTERVAL
                else:
                    auth_failures = 0
    finally:
        probe.close()


class VmStartError(VmbakeError):
    """QEMU exited (or never answered on QMP) while starting; `output` is the end of what it printed."""

    def __init__(self, output: str) -> None:
        super().__init__(
            "QEMU did not start" + (f":\n{output}" if output else ""),
            hint="check the image path and format, and the machine settings",
        )
        self.output = output


@dataclass
class Vm:
    """One running QEMU. `stop()` is idempotent; a Vm used as a context manager is stopped on exit."""

    child: procs.Child
    qmp: Qmp | None
    argv: list[str]
    log_path: Path
    console_log: Path | None = None
    ssh_port: int | None = None
    net_probe_port: int | None = None
    accelerator: str = ""
    _stopped: bool = field(default=False, repr=False)

    @classmethod
    def start(
        cls,
        argv: list[str],
        qmp_path: Path,
        log_path: Path,
        *,
        alive: Callable[[], bool] = lambda: True,
        qmp_timeout: float = QMP_TIMEOUT,
    ) -> Vm:
        """Spawn `argv` (whose -qmp is `qmp_path`), its output to `log_path`, and connect to QMP.
        Raises VmStartError with QEMU's own last lines when it does not come up."""
        check_socket_path(qmp_path)
        with contextlib.suppress(FileNotFoundError):
            qmp_path.unlink()
        with log_path.open("wb") as log:
            child = procs.spawn(argv, stdout=log, stderr=log)
        try:
            qmp = Qmp.connect(qmp_path, timeout=qmp_timeout, alive=lambda: child.running() and alive())
        except QmpError as err:
            child.wait(2.0 if alive() else 0.0)  # an exiting QEMU's last words; none when cancelled
            child.stop()
            lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
            raise VmStartError("\n".join(lines[-12:]) or str(err)) from err
        except BaseException:
            child.stop()
            raise
        return cls(child, qmp, argv, log_path)

    def __enter__(self) -> Vm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- watching it ------------------------------------------------------------------------------------
    def running(self) -> bool:
        return self.child.running()

    @property
    def returncode(self) -> int | None:
        return self.child.returncode

    def wait_exit(self, timeout: float, cancel: threading.Event | None = None) -> bool:
        """True when QEMU exited within `timeout` seconds; polls so that a cancel is seen within 0.5 s."""
        deadline = time.monotonic() + timeout
        while True:
            if cancel is not None and cancel.is_set():
                return False
            if self.child.wait(min(0.5, max(0.0, deadline - time.monotonic()))) is not None:
                return True
            if time.monotonic() >= deadline:
                return False

    def console_tail(self, lines: int = CONSOLE_LINES) -> str:
        return console_tail(self.console_log, lines)

    def wait_for_ssh(
        self, target: SshTarget, timeout: float, cancel: threading.Event | None = None
    ) -> tuple[SshCommunicator | None, str]:
        """(a logged-in communicator, "") or (None, why not), through `wait_for_ssh`. Why not: "cancelled",
        "no credentials", "auth: ..." after AUTH_TRIES refused logins, or what was last seen when QEMU
        exited or the time ran out."""
        try:
            return wait_for_ssh(
                target,
                timeout,
                exited=lambda: None if self.running() else self.returncode,
                cancel=cancel,
                net_probe_port=self.net_probe_port,
                attempts=AUTH_TRIES,
            ), ""
        except BuildCancelled:
            return None, "cancelled"
        except SshWaitFailed as exc:
            if exc.kind == "exited":
                return None, f"QEMU exited (status {exc.status}) before SSH answered; last seen: {exc.seen}"
            if exc.kind == "timeout":
                return None, f"SSH did not answer within {format_duration(timeout)}; last seen: {exc.seen}"
            if exc.seen == "no credentials":
                return None, "no credentials"
            return None, f"auth: {exc.last}"

    def wait_for_sshd(self, timeout: float, cancel: threading.Event | None = None) -> str:
        """ "" as soon as the guest's SSH server sends its version line (no login), else why not."""
        if self.ssh_port is None:
            return "the guest's SSH port is not forwarded"
        deadline = time.monotonic() + timeout
        probe = BannerProbe(FORWARD_HOST, self.ssh_port, net_probe_port=self.net_probe_port)
        try:
            while True:
                if not self.running():
                    return (
                        f"QEMU exited (status {self.returncode}) before SSH answered; last seen: {probe.seen}"
                    )
                if cancel is not None and cancel.is_set():
                    return "cancelled"
                now = time.monotonic()
                if now >= deadline:
                    return f"SSH did not answer within {format_duration(timeout)}; last seen: {probe.seen}"
                sock = probe.poll(until=min(deadline, now + 1.0))
                if sock is not None:
                    sock.close()
                    return ""
        finally:
            probe.close()

    # -- ending it ------------------------------------------------------------------------------------------
    def command(self, name: str) -> None:
        """A QMP command without arguments (cont, system_powerdown, ...); QmpError when QEMU refuses it."""
        if self.qmp is None:
            raise QmpError(f"no QMP connection to send {name!r} over")
        self.qmp.execute(name)

    def powerdown(self) -> None:
        """Press the ACPI power button: the guest decides to shut down (QmpError when QEMU refuses)."""
        self.command("system_powerdown")

    def stop(self, quit_timeout: float = 5.0) -> None:
        """Stop QEMU if it runs: QMP quit, then SIGTERM, then SIGKILL; reaps its process group."""
        if self._stopped:
            return
        self._stopped = True
        stop_qemu(self.child, self.qmp, quit_timeout)


@contextlib.contextmanager
def boot(
    config: QemuConfig,
    state: BuildState,
    *,
    vm_name: str,
    work: Path,
    forward_ssh: bool = True,
) -> Iterator[Vm]:
    """Start `config`'s machine on `state` (disks, console log, EFI vars set by the caller), with QMP at
    work/qmp.sock and, with `forward_ssh`, the guest's SSH port forwarded to a free loopback port. The
    accelerator is chosen as builds choose it. QEMU is stopped and the ports released on the way out."""
    choice = accel.choose(config.accelerator, config.qemu_binary)
    state.accelerator = choice.accelerator
    state.qmp_path = work / "qmp.sock"
    facts = RunFacts(vm_name=vm_name, accelerator=choice.accelerator, host_cpus=host_cpus())
    output = ""
    for _attempt in range(START_ATTEMPTS):
        reservations: list[PortReservation] = []
        if forward_ssh:
            reservations = list(reserve_forward_ports(config))
            state.ssh_host_port, state.net_probe_port = reservations[0].port, reservations[1].port
        argv = qemu_argv(config, state, facts)
        state.qemu_argv = argv
        try:
            vm = Vm.start(argv, state.qmp_path, work / "qemu.log")
        except VmStartError as err:
            output = err.output
            if PORT_TAKEN.search(output):
                continue  # taken between the check and QEMU's bind: choose again
            raise
        finally:
            for reservation in reservations:
                reservation.release()
        vm.console_log, vm.accelerator = state.console_log, choice.accelerator
        vm.ssh_port, vm.net_probe_port = state.ssh_host_port, state.net_probe_port
        state.qemu, state.qmp = vm.child, vm.qmp
        with vm:
            yield vm
        return
    raise VmStartError(output)


# -- a build's VM ---------------------------------------------------------------------------------------------
def stop_build_vm(ctx: BuildContext, *, quit_timeout: float = 5.0) -> None:
    """Stop the build's QEMU if it runs (stop_qemu: QMP quit, SIGTERM, SIGKILL). Idempotent."""
    if ctx.state.vm_watch is not None:
        ctx.state.vm_watch.stop()  # first: stopping QEMU is no failure of the VM
        ctx.state.vm_watch = None
    stop_qemu(ctx.state.qemu, ctx.state.qmp, quit_timeout)
    ctx.state.qmp = None


class ConsoleFollower:
    """Under -debug, show the guest's serial console lines as they are written."""

    def __init__(self, ctx: BuildContext, path: Path) -> None:
        self._ctx = ctx
        self._path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-tail", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        position = 0
        pending = b""
        while not self._stop.wait(0.5):
            try:
                with self._path.open("rb") as f:
                    f.seek(position)
                    data = f.read()
            except FileNotFoundError:
                continue
            position += len(data)
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace").rstrip("\r")
                if text.strip():
                    self._ctx.ui.debug(f"console: {text}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def vnc_connection_message(headless: bool, address: str, password: str) -> str:
    if not headless:
        return ""
    if password:
        return (
            "The VM will be run headless, without a GUI. If you want to\n"
            f"view the screen of the VM, connect via VNC to vnc://{address}\nwith the password: {password}"
        )
    return (
        "The VM will be run headless, without a GUI. If you want to\n"
        f"view the screen of the VM, connect via VNC without a password to\nvnc://{address}"
    )


class BuildVm:
    """A build's QEMU, with Packer's messages: started by stepRun, and again from the installed disk by
    StepInstallerReboot. Reads the whole config and state.disk_paths, iso_path, cd_path, floppy_path,
    efivars_path, kernel_path, initrd_path, http_ip/http_port, ssh_host_port, vnc_port/vnc_password,
    output_dir, work_dir. Writes state.accelerator, qmp_path, console_log, qemu_argv, qemu, qmp and vm_watch
    (which fails the build when QEMU stops the VM on a disk error, or when the installer stops at a dialog).
    When QEMU exits early its own error is reported; when it finds a chosen port taken, new ports are
    chosen and QEMU is started again. `stop` stops QEMU (QMP quit, then SIGTERM, then SIGKILL)."""

    def __init__(self, step: str) -> None:
        self.step = step  # the step that started it, named in its errors
        self._reservations: list[PortReservation] = []
        self._follower: ConsoleFollower | None = None

    def start(self, ctx: BuildContext, config: QemuConfig) -> None:
        state = ctx.state
        if state.work_dir is None:
            raise StepError(self.step, "no work directory", hint="this is a vmbake bug")
        choice = accel.choose(config.accelerator, config.qemu_binary)
        state.accelerator = choice.accelerator
        if not config.accelerator:
            ctx.ui.message(f"Using accelerator {choice.accelerator}: {choice.reason}")
        state.qmp_path = (
            Path(config.qmp_socket_path) if config.qmp_socket_path else state.work_dir / "qmp.sock"
        )
        if len(os.fsencode(state.qmp_path)) >= _UNIX_PATH_MAX:
            raise StepError(
                self.step,
                f"the QMP socket path {state.qmp_path} is too long for a unix socket",
                hint="set qmp_socket_path to a shorter path, or TMPDIR to a shorter directory",
            )
        name = vm_name_of(config, ctx.name)
        out = state.output_dir if state.output_dir is not None else output_dir_of(config, ctx.name)
        state.console_log = out / f"{name}.console.log"
        if state.kernel_path is not None:
            ctx.ui.say("Starting VM, booting the installer's kernel directly")
        elif config.disk_image or state.iso_path is None:  # the latter: again after the installer
            ctx.ui.say("Starting VM, booting disk image")
        else:
            ctx.ui.say("Starting VM, booting from CD-ROM")
        if choice.accelerator == "none":
            ctx.ui.message(
                "WARNING: The VM will be started with no hardware acceleration.\n"
                "The installation may take considerably longer to finish.\n"
            )
        if state.vnc_port is not None:
            address = f"{config.vnc_bind_address}:{state.vnc_port}"
            message = vnc_connection_message(config.headless, address, state.vnc_password)
            for line in message.splitlines():
                ctx.ui.message(line)
        if config.qemuargs:
            ctx.ui.say("Overriding defaults Qemu arguments with QemuArgs...")
        facts = RunFacts(
            vm_name=name,
            accelerator=choice.accelerator,
            display_available=bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")),
            host_cpus=host_cpus(),
        )
        for attempt in range(1, START_ATTEMPTS + 1):
            argv = qemu_argv(config, state, facts)
            state.qemu_argv = argv
            ctx.ui.debug("Executing " + shlex.join(argv))
            error = self._start(ctx, argv)
            if error is None:
                break
            if PORT_TAKEN.search(error) and attempt < START_ATTEMPTS:
                ctx.ui.message("A chosen port was taken before QEMU could bind it; choosing again")
                self._choose_ports_again(ctx, config)
                continue
            if (
                _NO_GTK.search(error)
                and facts.display_available
                and not config.display
                and attempt < START_ATTEMPTS
            ):
                # vmbake chose gtk because a graphical session seems to be there, but QEMU cannot open it.
                ctx.ui.warn(
                    "QEMU cannot open a GTK window (is qemu-system-gui installed?); running without one"
                )
                facts = dataclasses.replace(facts, display_available=False)
                continue
            raise StepError(
                self.step,
                "Error launching VM: Qemu failed to start" + (f":\n{error}" if error else ""),
                hint="see the QEMU command line with -debug",
            )
        if state.qmp is not None:
            if state.vnc_password:
                state.qmp.change_vnc_password(state.vnc_password)
            installer = installer_console(config, state.kernel_path, state.iso_path)
            state.vm_watch = VmWatch(
                ctx,
                state.qmp,
                installer_console=state.console_log if installer else None,
                console_log=state.console_log,
            )
        if ctx.ui.ui.debug and state.console_log is not None:
            self._follower = ConsoleFollower(ctx, state.console_log)

    def _start(self, ctx: BuildContext, argv: list[str]) -> str | None:
        """Start QEMU; None when QMP answers, else QEMU's error output."""
        state = ctx.state
        assert state.qmp_path is not None and state.work_dir is not None
        try:
            vm = Vm.start(
                argv,
                state.qmp_path,
                state.work_dir / "qemu.log",
                alive=lambda: not ctx.cancel.is_set(),
                qmp_timeout=QMP_TIMEOUT,
            )
        except VmStartError as err:
            if ctx.cancel.is_set():
                raise BuildCancelled() from err
            return err.output
        state.qemu, state.qmp = vm.child, vm.qmp
        return None

    def _choose_ports_again(self, ctx: BuildContext, config: QemuConfig) -> None:
        if ctx.state.vnc_port is not None:
            reservation = reserve_vnc_port(config)
            self._reservations.append(reservation)
            ctx.state.vnc_port = reservation.port
        if ctx.state.ssh_host_port is not None and not config.skip_nat_mapping:
            ssh, probe = reserve_forward_ports(config)
            self._reservations += [ssh, probe]
            ctx.state.ssh_host_port, ctx.state.net_probe_port = ssh.port, probe.port
            ctx.ui.say(f"Found port for communicator (SSH, WinRM, etc): {ssh.port}.")

    def stop(self, ctx: BuildContext) -> None:
        """Stop QEMU, the console follower, and release the ports chosen again. Idempotent."""
        stop_build_vm(ctx)
        if self._follower is not None:
            self._follower.stop()
            self._follower = None
        qmp_path = ctx.state.qmp_path
        if qmp_path is not None and isinstance(ctx.config, QemuConfig) and ctx.config.qmp_socket_path:
            with contextlib.suppress(FileNotFoundError):
                qmp_path.unlink()
        for reservation in self._reservations:
            reservation.release()
        self._reservations.clear()
