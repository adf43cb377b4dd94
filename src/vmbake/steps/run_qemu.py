"""stepRun: start QEMU and wait until its QMP socket answers.

What it reads and writes, and how a failed start is handled, is vm.BuildVm's: the whole config, the
state's disks and ports; it writes state.qemu, qmp, vm_watch, console_log. The cleanup stops QEMU: QMP
quit, then SIGTERM, then SIGKILL.
"""

from __future__ import annotations

from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import qemu_config
from vmbake.vm import BuildVm


class StepRun(Step):
    name = "stepRun"

    def __init__(self) -> None:
        self._vm = BuildVm(self.name)

    def run(self, ctx: BuildContext) -> None:
        self._vm.start(ctx, qemu_config(ctx, self.name))

    def cleanup(self, ctx: BuildContext) -> None:
        self._vm.stop(ctx)
