"""StepConnect: wait for the guest's SSH server and log in.

Reads config (communicator, ssh_* keys, pause_before_connecting, skip_nat_mapping), state.ssh_host_port,
state.net_probe_port, state.ssh_private_key_path, state.ssh_host_key, state.qemu and state.console_log.
Produces state.comm and state.ssh_host_key (pinned at the first connection). A BannerProbe watches the
guest's network come up and then tries its SSH port, and logs in on the first connection the guest's
sshd answers (vm.wait_for_ssh, with the target of vm.ssh_target); gives up early when QEMU exits, and
on timeout says what it last saw and shows the console log.
"""

from __future__ import annotations

from vmbake.comm.ssh import SshCommunicator, SshTarget
from vmbake.errors import BuildCancelled, StepError, VmbakeError
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.units import format_duration
from vmbake.vm import SshWaitFailed, console_tail, net_probe_port, ssh_target, wait_for_ssh


def _console_hint(ctx: BuildContext, advice: str) -> str:
    log = ctx.state.console_log
    if log is None:
        return advice
    tail = console_tail(log, 8)
    shown = f"; its last lines:\n{tail}" if tail else " (it is empty)"
    return f"{advice}; see the guest's console log {log}{shown}"


class StepConnect(Step):
    name = "StepConnect"

    def run(self, ctx: BuildContext) -> None:
        kind = ctx.config.communicator
        if kind == "none":
            return
        if kind != "ssh":
            raise StepError(self.name, f"communicator {kind!r} is not supported", hint="use 'ssh' or 'none'")
        target = ssh_target(ctx)
        ctx.ui.say(f"Using ssh communicator to connect: {target.host}")
        pause = ctx.config.pause_before_connecting
        if pause > 0:
            ctx.ui.say(f"Pausing {format_duration(pause)} before connecting...")
            if ctx.cancel.wait(pause):
                raise BuildCancelled()
        config = ctx.config
        timeout = config.ssh_timeout if config.ssh_wait_timeout is None else config.ssh_wait_timeout
        ctx.ui.say("Waiting for SSH to become available...")
        comm = self.wait(ctx, target, timeout, max(1, config.ssh_handshake_attempts))
        comm.cancel = ctx.cancel
        ctx.state.comm = comm
        ctx.state.ssh_host_key = comm.host_key
        ctx.ui.say("Connected to SSH!")

    def wait(self, ctx: BuildContext, target: SshTarget, timeout: float, attempts: int) -> SshCommunicator:
        qemu = ctx.state.qemu
        try:
            return wait_for_ssh(
                target,
                timeout,
                exited=lambda: None if qemu is None or qemu.running() else qemu.returncode,
                cancel=ctx.cancel,
                net_probe_port=net_probe_port(ctx),
                attempts=attempts,
                on_failed_login=lambda message: ctx.ui.debug(f"SSH not ready: {message}"),
            )
        except SshWaitFailed as exc:
            hint: str | None = exc.hint
            if exc.kind == "timeout":
                hint = _console_hint(ctx, "raise ssh_timeout if the guest is just slow")
            elif exc.kind == "exited":
                hint = _console_hint(ctx, "the guest powered off or crashed")
            raise StepError(self.name, exc.message, hint) from None

    def cleanup(self, ctx: BuildContext) -> None:
        comm = ctx.state.comm
        if comm is not None:
            try:
                comm.close()
            except VmbakeError:
                pass
            ctx.state.comm = None
