"""StepConnect: wait for the guest's SSH server and log in.

Reads config (communicator, ssh_* keys, pause_before_connecting, skip_nat_mapping), state.ssh_host_port,
state.net_probe_port, state.ssh_private_key_path, state.ssh_host_key, state.qemu and state.console_log.
Produces state.comm and state.ssh_host_key (pinned at the first connection). A BannerProbe watches the
guest's network come up and then tries its SSH port twice a second, and logs in on the first connection
the guest's sshd answers; gives up early when QEMU exits, and on timeout says what it last saw and shows
the console log.
"""

from __future__ import annotations

import logging
import time

from vmbake.comm.probe import BannerProbe
from vmbake.comm.ssh import ConnectError, SshCommunicator, SshTarget, connect
from vmbake.errors import BuildCancelled, StepError, VmbakeError
from vmbake.sshkeys import load_private_key
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.units import format_duration, parse_duration
from vmbake.vm import console_tail

log = logging.getLogger("vmbake.steps.connect")

POLL_INTERVAL = 1.0  # seconds between two probes of the guest's network (comm.probe)
TRY_TIMEOUT = 5.0  # first login's limit (key exchange and authentication, once the server has answered)
MAX_TRY_TIMEOUT = 40.0
# The server answered but did not finish the key exchange in time: an sshd too slow (TCG on a busy host)
# for the limit. Each such try gets a longer limit, so that it is eventually given the time it needs.
SLOW_ANSWERS = ("banner timeout", "key exchange timeout")
AUTH_RETRY_INTERVAL = 2.0  # the guest may still be installing its authorized_keys


def _seconds(text: str, default: float) -> float:
    if not text:
        return default
    try:
        return parse_duration(text)
    except ValueError:
        return default


def _direct(ctx: BuildContext) -> bool:
    """True when vmbake reaches the guest's SSH port itself, not through QEMU's port forward."""
    config = ctx.config
    return bool(config.ssh_host) or config.skip_nat_mapping or (ctx.state.ssh_host_port is None)


def net_probe_port(ctx: BuildContext) -> int | None:
    """The forward that tells when the guest's network is up (comm.probe), when SSH goes through QEMU's."""
    return None if _direct(ctx) else ctx.state.net_probe_port


def ssh_target(ctx: BuildContext) -> SshTarget:
    """Where and how to log in to this build's guest, from its config and state."""
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
        keep_alive=_seconds(config.ssh_keep_alive_interval, 5.0),
        transfer=config.ssh_file_transfer_method or "sftp",
        pinned_host_key=ctx.state.ssh_host_key,
        progress=lambda name, size: ctx.ui.progress(name, size),
    )


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
        pause = _seconds(ctx.config.pause_before_connecting, 0.0)
        if pause > 0:
            ctx.ui.say(f"Pausing {format_duration(pause)} before connecting...")
            if ctx.cancel.wait(pause):
                raise BuildCancelled()
        config = ctx.config
        timeout = _seconds(config.ssh_wait_timeout or config.ssh_timeout, 300.0)
        ctx.ui.say("Waiting for SSH to become available...")
        comm = self.wait(ctx, target, timeout, max(1, config.ssh_handshake_attempts))
        comm.cancel = ctx.cancel
        ctx.state.comm = comm
        ctx.state.ssh_host_key = comm.host_key
        ctx.ui.say("Connected to SSH!")

    def wait(self, ctx: BuildContext, target: SshTarget, timeout: float, attempts: int) -> SshCommunicator:
        started = time.monotonic()
        deadline = started + timeout
        seen = "nothing yet"
        auth_failures = 0
        handshake_timeout = TRY_TIMEOUT
        not_before = started  # after an authentication failure, the next login waits a little
        probe = BannerProbe(
            target.host, target.port, interval=POLL_INTERVAL, net_probe_port=net_probe_port(ctx)
        )
        try:
            while True:
                self._check_qemu(ctx, target)
                now = time.monotonic()
                if now >= deadline:
                    raise StepError(
                        self.name,
                        f"timeout waiting for SSH after {format_duration(now - started)} "
                        f"({target.address}); last seen: {seen}",
                        hint=_console_hint(ctx, "raise ssh_timeout if the guest is just slow"),
                    )
                if now < not_before:
                    if ctx.cancel.wait(min(not_before, deadline) - now):
                        raise BuildCancelled()
                    continue
                sock = probe.poll(until=min(deadline, now + POLL_INTERVAL))
                if ctx.cancel.is_set():
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
                        raise StepError(self.name, exc.message, exc.hint) from None
                    seen = exc.seen
                    log.debug(
                        "SSH login at %.1fs failed after %.1fs: %s",
                        tried_at - started,
                        time.monotonic() - tried_at,
                        exc.message,
                    )
                    ctx.ui.debug(f"SSH not ready: {exc.message}")
                    if seen in SLOW_ANSWERS:
                        handshake_timeout = min(handshake_timeout * 1.5, MAX_TRY_TIMEOUT)
                    if seen == "authentication failure":
                        auth_failures += 1
                        if auth_failures >= attempts:
                            raise StepError(
                                self.name,
                                f"{exc.message}; gave up after {auth_failures} attempts (ssh_handshake_attempts)",
                                exc.hint,
                            ) from None
                        not_before = tried_at + AUTH_RETRY_INTERVAL
                    else:
                        auth_failures = 0
        finally:
            probe.close()

    def _check_qemu(self, ctx: BuildContext, target: SshTarget) -> None:
        qemu = ctx.state.qemu
        if qemu is not None and not qemu.running():
            raise StepError(
                self.name,
                f"QEMU exited (status {qemu.returncode}) before SSH became available on {target.address}",
                hint=_console_hint(ctx, "the guest powered off or crashed"),
            )

    def cleanup(self, ctx: BuildContext) -> None:
        comm = ctx.state.comm
        if comm is not None:
            try:
                comm.close()
            except VmbakeError:
                pass
            ctx.state.comm = None
