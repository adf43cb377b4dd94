"""stepShutdown: bring the guest down so its disk is complete before conversion.

Reads config.communicator, shutdown_command, shutdown_timeout; state.comm, state.qemu, state.qmp.
Writes state.shutdown_done.
- communicator 'none': wait up to shutdown_timeout for the guest to power off by itself.
- shutdown_command: run it over the communicator (the command may drop the connection), then wait.
- neither: press the ACPI power button through QMP and wait; only then stop QEMU by force.
  (Packer kills QEMU at once here, which can lose writes the guest had not flushed.)
"""

from __future__ import annotations

import time

from vmbake.comm import DISCONNECTED
from vmbake.errors import BuildCancelled, StepError, VmbakeError
from vmbake.procs import Child
from vmbake.qmp import QmpError
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import qemu_config
from vmbake.units import format_duration
from vmbake.vm import stop_build_vm

ACPI_GRACE = 30.0  # seconds the guest gets to honour an ACPI power-down after shutdown_timeout
SHUTDOWN_EVENT_WAIT = 0.5  # QEMU sends its SHUTDOWN event just before it exits


def wait_for_exit(ctx: BuildContext, child: Child, timeout: float) -> bool:
    """True when QEMU exited within `timeout` seconds; polls so that Ctrl-C and cancellation stay quick."""
    deadline = time.monotonic() + timeout
    while True:
        if ctx.cancel.is_set():
            raise BuildCancelled()
        if child.wait(min(0.5, max(0.0, deadline - time.monotonic()))) is not None:
            return True
        if time.monotonic() >= deadline:
            return False


class StepShutdown(Step):
    name = "stepShutdown"

    def run(self, ctx: BuildContext) -> None:
        config = qemu_config(ctx, self.name)
        child = ctx.state.qemu
        if child is None:
            raise StepError(self.name, "QEMU is not running", hint="this is a vmbake bug")
        timeout = config.shutdown_timeout
        if config.communicator == "none":
            ctx.ui.say("Waiting for shutdown...")
            if not wait_for_exit(ctx, child, timeout):
                self._escalate(ctx, child, timeout, "The guest")
                raise StepError(
                    self.name,
                    f"Failed to shutdown: the guest did not power off within {format_duration(timeout)}",
                    hint="with communicator 'none' the guest must power off by itself; raise shutdown_timeout",
                )
        elif config.shutdown_command:
            self._command(ctx, config.shutdown_command, child, timeout)
        else:
            self._powerdown(ctx, child, timeout)
        if ctx.state.qmp is not None:  # not after _powerdown had to stop QEMU itself
            self._check_exit(ctx, child)
        ctx.state.shutdown_done = True
        stop_build_vm(ctx)  # reaps QEMU and closes QMP; QEMU has exited by now

    def _command(self, ctx: BuildContext, command: str, child: Child, timeout: float) -> None:
        comm = ctx.state.comm
        if comm is None:
            raise StepError(self.name, "no connection to the guest to send shutdown_command over")
        ctx.ui.say("Gracefully halting virtual machine...")
        try:
            status = comm.run(command, on_stdout=ctx.ui.message, on_stderr=ctx.ui.message)
        except VmbakeError as err:
            if child.running():
                raise StepError(self.name, f"Failed to send shutdown command: {err}", err.hint) from err
            status = DISCONNECTED
        if status not in (0, DISCONNECTED):
            ctx.ui.message(f"The shutdown command exited with status {status}; waiting for the VM anyway")
        if not wait_for_exit(ctx, child, timeout):
            self._escalate(ctx, child, timeout, "shutdown_command")
            raise StepError(
                self.name,
                "Timeout while waiting for machine to shut down.",
                hint=f"shutdown_command did not power the guest off within {format_duration(timeout)}; "
                "check the command or raise shutdown_timeout",
            )

    def _powerdown(self, ctx: BuildContext, child: Child, timeout: float) -> None:
        qmp = ctx.state.qmp
        ctx.ui.say("Halting the virtual machine with an ACPI power-down request...")
        if qmp is not None:
            try:
                qmp.system_powerdown()
            except QmpError as err:
                ctx.ui.message(f"QEMU did not take the power-down request: {err}")
        if wait_for_exit(ctx, child, timeout):
            return
        ctx.ui.say(f"The guest did not power off within {format_duration(timeout)}; stopping QEMU")
        stop_build_vm(ctx)

    def _escalate(self, ctx: BuildContext, child: Child, timeout: float, what: str) -> None:
        """After shutdown_timeout: an ACPI power-down request, then QEMU stopped by force; each is said.
        The build still fails: the image may miss what the guest had not written yet."""
        grace = min(timeout, ACPI_GRACE)
        ctx.ui.say(
            f"{what} did not power off the VM within {format_duration(timeout)} (shutdown_timeout); "
            "sending an ACPI power-down request"
        )
        qmp = ctx.state.qmp
        if qmp is not None:
            try:
                qmp.system_powerdown()
            except QmpError as err:
                ctx.ui.message(f"QEMU did not take the power-down request: {err}")
        if wait_for_exit(ctx, child, grace):
            ctx.ui.say("The VM powered off after the ACPI request")
            return
        ctx.ui.say(f"The VM ignored the ACPI request for {format_duration(grace)}; stopping QEMU by force")
        stop_build_vm(ctx)

    def _check_exit(self, ctx: BuildContext, child: Child) -> None:
        """QEMU ended: make sure the guest powered off, rather than QEMU being killed or stopped."""
        code = child.returncode
        if code is not None and code < 0:
            raise StepError(
                self.name,
                f"QEMU was killed by signal {-code} before the guest powered off",
                hint="something outside vmbake stopped QEMU (the OOM killer, a user); the disk is incomplete",
            )
        if code:
            raise StepError(
                self.name,
                f"QEMU exited with status {code} instead of the guest powering off",
                hint="see the QEMU log in the work directory with -debug",
            )
        qmp = ctx.state.qmp
        event = qmp.wait_event("SHUTDOWN", SHUTDOWN_EVENT_WAIT) if qmp is not None else None
        reason = str((event or {}).get("data", {}).get("reason", ""))
        if reason.startswith("host-"):
            raise StepError(
                self.name,
                f"QEMU was stopped from outside ({reason}) before the guest powered off",
                hint="something outside vmbake stopped QEMU; the disk is incomplete",
            )
