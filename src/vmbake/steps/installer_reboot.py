"""StepInstallerReboot: when the installer ends, start the VM again from its disk, not the installer kernel.

QEMU boots d-i's kernel with -kernel/-initrd/-append and -no-reboot, so the end of the installation, a
power-off (`d-i debian-installer/exit/poweroff boolean true`) or a reboot alike, makes QEMU exit. This
step waits for that exit, then starts QEMU again (vm.BuildVm, as stepRun does) with no installer kernel
and no installer CD: the guest can only boot the system just installed. Watching the process (not QMP) is
enough because nothing else ends QEMU while the installer runs, and it cannot miss an event that came
before the step started.
"""

from __future__ import annotations

import time

from vmbake.errors import BuildCancelled, StepError
from vmbake.installer import kernel_boot_enabled
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import qemu_config
from vmbake.units import format_duration
from vmbake.vm import BuildVm, stop_build_vm

POLL = 0.5


class StepInstallerReboot(Step):
    """Reads config.ssh_timeout (the installer's time limit, as when the boot command is typed),
    state.qemu and state.kernel_path. Clears state.kernel_path, initrd_path and iso_path, and replaces
    state.qemu and state.qmp with the VM started from its disk."""

    name = "StepInstallerReboot"

    def __init__(self) -> None:
        self._vm = BuildVm(self.name)

    def run(self, ctx: BuildContext) -> None:
        state = ctx.state
        if not kernel_boot_enabled(ctx.config) or state.kernel_path is None:
            return
        child = state.qemu
        if child is None:
            raise StepError(self.name, "the VM is not running", hint="this is a vmbake bug")
        limit = ctx.config.ssh_timeout
        ctx.ui.say("Waiting for the installer to finish and power off the VM...")
        started = time.monotonic()
        while (code := child.wait(POLL)) is None:
            if ctx.cancel.is_set():
                raise BuildCancelled()
            if time.monotonic() - started > limit:
                raise StepError(
                    self.name,
                    f"the installer did not finish within {format_duration(limit)} (ssh_timeout)",
                    hint="end the preseed with 'd-i debian-installer/exit/poweroff boolean true', raise"
                    f" ssh_timeout for a slow install, and read the console in {state.console_log}",
                )
        if code != 0:
            raise StepError(
                self.name,
                f"QEMU exited with status {code} while the installer ran",
                hint=f"read QEMU's messages with -debug and the console in {state.console_log}",
            )
        ctx.ui.say(f"The installer finished after {format_duration(time.monotonic() - started)}")
        stop_build_vm(ctx)
        state.kernel_path = None
        state.initrd_path = None
        state.iso_path = None  # the installer CD is not attached again
        self._vm.start(ctx, qemu_config(ctx, self.name))

    def cleanup(self, ctx: BuildContext) -> None:
        self._vm.stop(ctx)
