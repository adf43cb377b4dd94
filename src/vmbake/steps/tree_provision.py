"""StepTreeProvision: run the provisioners in a chroot of the image, before its first boot.

For the debian-bootstrap builder with provision_stage "tree". Reads state.raw_disk (the disk laid by
stepBootstrapDisk) and state.work_dir; ctx.provisioners through StepProvision, which runs them exactly as
it does in a guest, over the chroot communicator (vmbake.comm.chroot) that this step puts in state.comm
while the tree is mounted. Writes nothing else: state.comm is None again when the step ends.
"""

from __future__ import annotations

from vmbake.bootstrap.tree import image_tree
from vmbake.errors import StepError
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps.provision import StepProvision


class StepTreeProvision(Step):
    name = "StepTreeProvision"

    def run(self, ctx: BuildContext) -> None:
        disk, work = ctx.state.raw_disk, ctx.state.work_dir
        if disk is None or work is None:
            raise StepError(self.name, "no image tree to provision", hint="this is a vmbake bug")
        if not ctx.provisioners:
            return
        ctx.ui.say("Provisioning the image tree in a chroot, before its first boot...")
        with image_tree(disk, work / "tree") as comm:
            comm.cancel = ctx.cancel
            ctx.state.comm = comm
            try:
                StepProvision().run(ctx)
            finally:
                ctx.state.comm = None
