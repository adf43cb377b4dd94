"""A running VM: QEMU started from the pure argv, the host ports it holds, its QMP socket and its console.

`boot()` is the way in: it reserves the SSH forward's host ports, builds the argv with `qemu_argv`, starts
QEMU through procs and waits for its QMP socket; when QEMU finds a chosen port taken it chooses again. It
yields a `Vm`, which waits for SSH, reads the console's tail, presses the ACPI power button and stops
QEMU (QMP quit, then SIGTERM, then SIGKILL). Leaving the `with` block stops it, whatever happened.

`vmbake verify` and `vmbake run` use `boot()`. The build's steps keep their typed state (state.qemu,
state.qmp) and their Packer messages, and take from here QEMU's start (`Vm.start`), the port reservation,
the console tail and the stop (`stop_qemu`).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vmbake import accel, procs
from vmbake.comm.probe import BannerProbe
from vmbake.comm.ssh import ConnectError, SshCommunicator, SshTarget, connect
from vmbake.config.qemu import QemuConfig
from vmbake.errors import VmbakeError
from vmbake.ports import PortReservation, reserve_port
from vmbake.qemu_argv import RunFacts, host_cpus, qemu_argv
from vmbake.qmp import Qmp, QmpError
from vmbake.state import BuildState
from vmbake.units import format_duration

FORWARD_HOST = "127.0.0.1"
QMP_TIMEOUT = 30.0
START_ATTEMPTS = 3
CONSOLE_LINES = 20
TRY_TIMEOUT = 5.0  # one login's limit, once the guest's sshd has answered
AUTH_TRIES = 3
_UNIX_PATH_MAX = 108  # sun_path's size on Linux, with its terminating NUL
PORT_TAKEN = re.compile(r"Address already in use|host forwarding rule|Failed to find an available port")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# -- the host ports of the SSH forward -------------------------------------------------------------------
def host_port_range(config: QemuConfig) -> tuple[int, int]:
    low = config.ssh_host_port_min or config.host_port_min
    high = config.ssh_host_port_max or config.host_port_max
    return low, high


def reserve_ssh_port(config: QemuConfig) -> PortReservation:
    low, high = host_port_range(config)
    return reserve_port(FORWARD_HOST, low, high, keys=("host_port_min", "host_port_max"))


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
        """(a logged-in communicator, "") or (None, why not), polling until `timeout` seconds have passed.
        Why not: "cancelled", "no credentials", "auth: ..." after AUTH_TRIES refused logins, or what was
        last seen when QEMU exited or the time ran out."""
        deadline = time.monotonic() + timeout
        seen = "nothing yet"
        auth_failures = 0
        probe = BannerProbe(target.host, target.port, net_probe_port=self.net_probe_port)
        try:
            while True:
                if not self.running():
                    return (
                        None,
                        f"QEMU exited (status {self.returncode}) before SSH answered; last seen: {seen}",
                    )
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
