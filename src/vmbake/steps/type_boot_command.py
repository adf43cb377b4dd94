"""Type the boot command into the VM: over VNC as Packer does, or over QMP (`boot_command_transport: qmp`).

The step waits `boot_wait`, fills the run-time placeholders ({{ .HTTPIP }}, {{ .HTTPPort }}, {{ .Name }},
{{ .SSHPublicKey }}: vmbake.placeholders), parses the boot command language (vmbake.bootcommand) and sends the key events.
A connection that drops half-way stops the build at once, saying how far typing got, instead of
leaving a half-typed installer line and an SSH timeout minutes later.
"""

from __future__ import annotations

import logging
import os
import secrets
import string
import time
from collections.abc import Callable
from typing import Protocol

from vmbake import placeholders
from vmbake.bootcommand import BootCommandError, KeyEvent, Wait, parse, strokes, to_events
from vmbake.config.qemu import QemuConfig
from vmbake.errors import BuildCancelled, StepError, VmbakeError
from vmbake.installer import kernel_boot_enabled
from vmbake.rfb import RfbClient, VncConnectionDropped, VncError, VncUnreachable
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.units import go_duration, parse_duration

log = logging.getLogger("vmbake.steps.type_boot_command")

KEY_INTERVAL_ENV = "PACKER_KEY_INTERVAL"
DEFAULT_KEY_INTERVAL = 0.1  # Packer's pause after each VNC key event
DEFAULT_QMP_INTERVAL = 0.02  # QMP sends a whole key stroke at once, then pauses this long
PACKER_DEFAULT_BOOT_WAIT = 10.0  # Packer turns a boot_wait of 0 into 10s; a negative one means none
VNC_CONNECT_TIMEOUT = 15.0


class _QmpKeys(Protocol):
    def send_keys(self, events: list[dict[str, object]]) -> None: ...

    def change_vnc_password(self, password: str) -> None: ...


class TypingStopped(VmbakeError):
    """Typing stopped half-way: `sent` key events went out before the connection at `where` failed."""

    def __init__(self, where: str, sent: int, cause: str) -> None:
        super().__init__(f"the connection to {where} dropped after {sent} key events ({cause})")
        self.where = where
        self.sent = sent
        self.cause = cause


def key_interval(configured: float | None, *, qmp: bool = False) -> float:
    """The pause after each key event: boot_key_interval, else $PACKER_KEY_INTERVAL, else the default.

    The variable is read only when boot_key_interval does not decide; a value that is not a duration
    is an error (Packer ignores it silently, and types at its default pace)."""
    if configured is not None and configured > 0:
        return configured
    interval = DEFAULT_QMP_INTERVAL if qmp else DEFAULT_KEY_INTERVAL
    env = os.environ.get(KEY_INTERVAL_ENV, "")
    if env:
        try:
            interval = parse_duration(env)
        except ValueError as exc:
            raise VmbakeError(
                f"{KEY_INTERVAL_ENV}={env!r} is not a duration: {exc}",
                hint=f"set it to a duration such as 10ms or 0.1s, or unset {KEY_INTERVAL_ENV}",
            ) from None
    return max(interval, 0.0)


def _pause(seconds: float, cancel: Callable[[], bool], alive: Callable[[], bool] | None = None) -> None:
    """Sleep `seconds`, returning early (with an error) on cancellation or when QEMU exits."""
    deadline = time.monotonic() + seconds
    while True:
        if cancel():
            raise BuildCancelled()
        if alive is not None and not alive():
            raise VmbakeError("QEMU exited while vmbake waited to type the boot command")
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.2))


def type_over_vnc(
    client: RfbClient, events: list[KeyEvent | Wait], interval: float, cancel: Callable[[], bool]
) -> None:
    """Send `events` one by one, pausing `interval` after each (Packer's VNC pacing)."""
    for event in events:
        if cancel():
            raise BuildCancelled()
        if isinstance(event, Wait):
            _settle(client, event.seconds, cancel)
            continue
        try:
            client.key_event(event.keysym, event.down)
            if interval:
                _settle(client, interval, cancel)
        except VncConnectionDropped as exc:
            raise TypingStopped(client.address, exc.sent, exc.cause) from exc


def _settle(client: RfbClient, seconds: float, cancel: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        if cancel():
            raise BuildCancelled()
        client.settle(min(left, 0.2))


def type_over_qmp(
    qmp: _QmpKeys, events: list[KeyEvent | Wait], interval: float, cancel: Callable[[], bool]
) -> None:
    """Send `events` through QMP input-send-event, one key stroke per command, pausing after each."""
    sent = 0
    for group in strokes(events):
        if cancel():
            raise BuildCancelled()
        if isinstance(group, Wait):
            _pause(group.seconds, cancel)
            continue
        payload: list[dict[str, object]] = [
            {"type": "key", "data": {"down": e.down, "key": {"type": "qcode", "data": e.qcode}}}
            for e in group
        ]
        try:
            qmp.send_keys(payload)
        except VmbakeError as exc:
            raise TypingStopped("QEMU", sent, str(exc)) from exc
        sent += len(group)
        if interval:
            _pause(interval, cancel)


def _typed_so_far(command: str, events: list[KeyEvent | Wait], sent: int) -> str:
    keys = [e for e in events if isinstance(e, KeyEvent)]
    end = keys[sent - 1].end if 0 < sent <= len(keys) else 0
    typed = command[:end]
    return typed if len(typed) <= 60 else "..." + typed[-60:]


class StepTypeBootCommand(Step):
    """Wait `boot_wait`, then type `boot_command` (or each of `boot_steps`) into the VM.

    Reads: config boot_command, boot_steps, boot_wait, boot_key_interval, boot_command_transport,
    vnc_bind_address, vnc_use_password, disable_vnc, installer_boot, vm_name; state.vnc_port,
    state.vnc_password, state.http_ip, state.http_port, state.ssh_public_key, state.qmp, state.qemu.
    Writes: state.vnc_password (a random one when vnc_use_password and none was set yet).
    """

    name = "StepTypeBootCommand"

    def run(self, ctx: BuildContext) -> None:
        config = ctx.config
        if not isinstance(config, QemuConfig) or kernel_boot_enabled(config):
            return  # the installer's kernel is booted directly: nothing to type
        steps = self._boot_steps(config)
        if not steps:
            return
        transport = config.boot_command_transport
        if transport == "vnc" and config.disable_vnc:
            raise StepError(
                self.name,
                "a boot command cannot be typed over VNC when disable_vnc is true",
                hint="set boot_command_transport to 'qmp', or remove disable_vnc",
            )
        # Every run-time value is known by now, so a command that cannot be typed fails before the wait.
        values = placeholders.of(ctx)
        fields = values.boot_command()
        rendered = [(self._render(values, command, fields), description) for command, description in steps]
        planned = [
            (command, description, self._events(command, transport)) for command, description in rendered
        ]
        try:
            interval = key_interval(config.boot_key_interval, qmp=transport == "qmp")
        except VmbakeError as exc:
            raise StepError(self.name, exc.message, exc.hint) from None
        self._boot_wait(ctx, config)
        if transport == "qmp":
            self._type_qmp(ctx, planned, interval)
        else:
            self._type_vnc(ctx, config, planned, interval)

    # -- preparing -------------------------------------------------------------------------------------
    @staticmethod
    def _boot_steps(config: QemuConfig) -> list[tuple[str, str]]:
        if config.boot_command:
            return [("".join(config.boot_command), "")]
        return [(step[0], step[1] if len(step) > 1 else "") for step in config.boot_steps if step]

    def _boot_wait(self, ctx: BuildContext, config: QemuConfig) -> None:
        seconds = config.boot_wait
        if seconds == 0:
            seconds = PACKER_DEFAULT_BOOT_WAIT
        if seconds < 0:
            return
        ctx.ui.say(f"Waiting {go_duration(seconds)} for boot...")
        qemu = ctx.state.qemu
        try:
            _pause(seconds, ctx.cancel.is_set, qemu.running if qemu is not None else None)
        except BuildCancelled:
            raise
        except VmbakeError as exc:
            raise StepError(self.name, str(exc), hint="see QEMU's output above or with -debug") from exc

    def _render(self, values: placeholders.RuntimeValues, command: str, fields: dict[str, str]) -> str:
        try:
            return values.render(command, fields)
        except VmbakeError as exc:
            raise StepError(self.name, f"cannot prepare the boot command: {exc}", hint=exc.hint) from exc

    def _events(self, command: str, transport: str) -> list[KeyEvent | Wait]:
        try:
            events = to_events(parse(command))
        except BootCommandError as exc:
            raise StepError(
                self.name, f"invalid boot command: {exc}", hint="see docs/boot-command.md"
            ) from exc
        if transport == "qmp":
            for event in events:
                if isinstance(event, KeyEvent) and event.qcode is None:
                    char = chr(event.keysym & 0xFFFFFF)  # only characters can lack a qcode
                    raise StepError(
                        self.name,
                        f"the boot command character {char!r} has no key on a US keyboard, which QMP types on",
                        hint="use boot_command_transport 'vnc' with QEMU's -k option for other layouts",
                    )
        return events

    # -- typing ----------------------------------------------------------------------------------------
    def _type_vnc(
        self,
        ctx: BuildContext,
        config: QemuConfig,
        planned: list[tuple[str, str, list[KeyEvent | Wait]]],
        interval: float,
    ) -> None:
        port = ctx.state.vnc_port
        if port is None:
            raise StepError(self.name, "no VNC port was chosen for this VM", hint="this is a bug in vmbake")
        host = config.vnc_bind_address or "127.0.0.1"
        password = self._vnc_password(ctx, config)
        ctx.ui.say(f"Connecting to VM via VNC ({host}:{port})")
        dial = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        client = self._connect_vnc(ctx, dial, port, password)
        with client:
            log.debug("connected to VNC desktop %r (RFB %d.%d)", client.desktop_name, *client.version)
            ctx.ui.say("Typing the boot command over VNC...")
            for command, description, events in planned:
                if description:
                    ctx.ui.say(f"Typing boot command for: {description}")
                self._type(
                    ctx,
                    "VNC",
                    command,
                    events,
                    lambda ev: type_over_vnc(client, ev, interval, ctx.cancel.is_set),
                )
                self._debug_pause(ctx, command, description)

    def _connect_vnc(self, ctx: BuildContext, host: str, port: int, password: str) -> RfbClient:
        deadline = time.monotonic() + VNC_CONNECT_TIMEOUT
        while True:
            try:
                return RfbClient.connect(host, port, password=password)
            except VncUnreachable as exc:
                qemu = ctx.state.qemu
                if (qemu is not None and not qemu.running()) or time.monotonic() >= deadline:
                    raise StepError(self.name, f"Error connecting to VNC: {exc}", hint=exc.hint) from exc
            except VncError as exc:
                raise StepError(self.name, f"Error handshaking with VNC: {exc}", hint=exc.hint) from exc
            _pause(0.2, ctx.cancel.is_set)

    def _vnc_password(self, ctx: BuildContext, config: QemuConfig) -> str:
        if not config.vnc_use_password:
            return ""
        password = ctx.state.vnc_password or config.vnc_password
        if not password:
            alphabet = string.ascii_letters + string.digits
            password = "".join(secrets.choice(alphabet) for _ in range(8))
        ctx.state.vnc_password = password
        ctx.ui.add_secret(password)
        qmp = ctx.state.qmp
        if qmp is not None:
            # Setting the same password twice is harmless, so this does not depend on run_qemu doing it.
            try:
                qmp.change_vnc_password(password)
            except VmbakeError as exc:
                raise StepError(self.name, f"cannot set the VNC password through QMP: {exc}") from exc
        return password

    def _type_qmp(
        self, ctx: BuildContext, planned: list[tuple[str, str, list[KeyEvent | Wait]]], interval: float
    ) -> None:
        qmp = ctx.state.qmp
        if qmp is None:
            raise StepError(self.name, "QMP is not connected, so the boot command cannot be typed over QMP")
        ctx.ui.say("Typing the boot command over QMP...")
        for command, description, events in planned:
            if description:
                ctx.ui.say(f"Typing boot command for: {description}")
            self._type(
                ctx, "QMP", command, events, lambda ev: type_over_qmp(qmp, ev, interval, ctx.cancel.is_set)
            )
            self._debug_pause(ctx, command, description)

    def _type(
        self,
        ctx: BuildContext,
        transport: str,
        command: str,
        events: list[KeyEvent | Wait],
        send: Callable[[list[KeyEvent | Wait]], None],
    ) -> None:
        try:
            send(events)
        except TypingStopped as exc:
            total = sum(1 for e in events if isinstance(e, KeyEvent))
            qemu = ctx.state.qemu
            why = ""
            # A dead QEMU closes its sockets a moment before it can be reaped: give it a second.
            code = qemu.wait(timeout=1.0) if qemu is not None else None
            if code is not None:
                why = f"; QEMU exited with status {code}"
            hint = "the boot command is incomplete, so the build stops here; check QEMU's log"
            if transport == "VNC":
                hint += ", and consider boot_command_transport 'qmp', which no VNC viewer can disturb"
            raise StepError(
                self.name,
                f"the {transport} connection to {exc.where} dropped while typing the boot command, after "
                f"{exc.sent} of {total} key events (typed up to {_typed_so_far(command, events, exc.sent)!r}): "
                f"{exc.cause}{why}",
                hint=hint,
            ) from exc

    @staticmethod
    def _debug_pause(ctx: BuildContext, command: str, description: str) -> None:
        if not ctx.options.debug:
            return
        if description:
            message = f'boot description: "{description}", command: {command}'
        else:
            message = f"boot_command: {command}"
        ctx.ui.ask(f"Pausing after run of step '{message}'. Press enter to continue.")
