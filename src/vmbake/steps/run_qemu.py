"""stepRun: start QEMU and wait until its QMP socket answers.

Reads the whole config and state.disk_paths, iso_path, cd_path, floppy_path, efivars_path, kernel_path,
initrd_path, http_ip/http_port, ssh_host_port, vnc_port/vnc_password, output_dir, work_dir.
Writes state.accelerator, qmp_path, console_log, qemu_argv, qemu (the Child), qmp (a vmbake.qmp.Qmp) and
vm_watch (a vmbake.vmwatch.VmWatch, which fails the build when QEMU stops the VM on a disk error, or
when the installer, booted directly or by a typed boot command, stops at a dialog).
When QEMU exits early its own error is reported; when it finds a chosen port taken, new ports are chosen
and QEMU is started again. The cleanup stops QEMU: QMP quit, then SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shlex
import threading
from pathlib import Path

from vmbake import accel
from vmbake.config.qemu import QemuConfig
from vmbake.errors import BuildCancelled, StepError
from vmbake.installer.console_watch import installer_console
from vmbake.ports import PortReservation
from vmbake.qemu_argv import RunFacts, host_cpus, qemu_argv
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import output_dir, qemu_config, stop_vm, vm_name
from vmbake.steps.configure_vnc import reserve_vnc_port
from vmbake.vm import PORT_TAKEN, QMP_TIMEOUT, Vm, VmStartError, reserve_forward_ports
from vmbake.vmwatch import VmWatch

START_ATTEMPTS = 3
_UNIX_PATH_MAX = 108  # sun_path's size on Linux, with its terminating NUL
_NO_GTK = re.compile(r"Display 'gtk' is not available|gtk initialization failed")


class ConsoleTail:
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


class StepRun(Step):
    name = "stepRun"

    def __init__(self) -> None:
        self._reservations: list[PortReservation] = []
        self._tail: ConsoleTail | None = None

    def run(self, ctx: BuildContext) -> None:
        config = qemu_config(ctx, self.name)
        state = ctx.state
        if state.work_dir is None:
            raise StepError(self.name, "no work directory", hint="this is a vmbake bug")
        choice = accel.choose(config.accelerator, config.qemu_binary)
        state.accelerator = choice.accelerator
        if not config.accelerator:
            ctx.ui.message(f"Using accelerator {choice.accelerator}: {choice.reason}")
        state.qmp_path = (
            Path(config.qmp_socket_path) if config.qmp_socket_path else state.work_dir / "qmp.sock"
        )
        if len(os.fsencode(state.qmp_path)) >= _UNIX_PATH_MAX:
            raise StepError(
                self.name,
                f"the QMP socket path {state.qmp_path} is too long for a unix socket",
                hint="set qmp_socket_path to a shorter path, or TMPDIR to a shorter directory",
            )
        state.console_log = output_dir(ctx) / f"{vm_name(ctx)}.console.log"
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
            vm_name=vm_name(ctx),
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
                self._choose_ports_again(ctx)
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
                self.name,
                "Error launching VM: Qemu failed to start" + (f":\n{error}" if error else ""),
                hint="see the QEMU command line with -debug",
            )
        if state.vnc_password and state.qmp is not None:
            state.qmp.change_vnc_password(state.vnc_password)
        if state.qmp is not None:
            installer = installer_console(config, state.kernel_path, state.iso_path)
            state.vm_watch = VmWatch(
                ctx, state.qmp, installer_console=state.console_log if installer else None
            )
        if ctx.ui.ui.debug and state.console_log is not None:
            self._tail = ConsoleTail(ctx, state.console_log)

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

    def _choose_ports_again(self, ctx: BuildContext) -> None:
        config = qemu_config(ctx, self.name)
        if ctx.state.vnc_port is not None:
            reservation = reserve_vnc_port(config)
            self._reservations.append(reservation)
            ctx.state.vnc_port = reservation.port
        if ctx.state.ssh_host_port is not None and not config.skip_nat_mapping:
            ssh, probe = reserve_forward_ports(config)
            self._reservations += [ssh, probe]
            ctx.state.ssh_host_port, ctx.state.net_probe_port = ssh.port, probe.port
            ctx.ui.say(f"Found port for communicator (SSH, WinRM, etc): {ssh.port}.")

    def cleanup(self, ctx: BuildContext) -> None:
        stop_vm(ctx)
        if self._tail is not None:
            self._tail.stop()
            self._tail = None
        qmp_path = ctx.state.qmp_path
        if qmp_path is not None and isinstance(ctx.config, QemuConfig) and ctx.config.qmp_socket_path:
            with contextlib.suppress(FileNotFoundError):
                qmp_path.unlink()
        for reservation in self._reservations:
            reservation.release()
        self._reservations.clear()
