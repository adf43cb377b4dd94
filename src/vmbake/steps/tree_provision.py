"""StepTreeProvision: run the provisioners in a chroot of the image, before its first boot.

For the debian-bootstrap builder with provision_stage "tree". Reads state.raw_disk (the disk laid by
stepBootstrapDisk) and state.work_dir; ctx.provisioners through provisioners.sequence, which runs them exactly
as StepProvision does in a guest, over the chroot communicator (vmbake.comm.chroot) that this step puts in state.comm
while the tree is mounted. Then, when the report is on or a size_budget is set, it gathers the report's
facts that the files give (packages, filesystems, directories) from the provisioned tree, at the host's
speed rather than the guest's: writes state.report (StepCheckBoot adds the running system's facts).
state.comm is None again when the step ends.
"""

from __future__ import annotations

from vmbake.bootstrap.tree import RawDisk, image_tree
from vmbake.comm.chroot import ChrootCommunicator
from vmbake.errors import BuildCancelled, StepError, VmbakeError
from vmbake.provisioners.sequence import run_all
from vmbake.report.collect import collect_files, rename_sources
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import qemu_config
from vmbake.units import format_duration


def guest_devices(disk: RawDisk) -> dict[str, str]:
    """Mount point -> the partition's device as the guest names it (/dev/vda2), from the disk's layout."""
    return {p.mountpoint: f"{disk.guest_disk}{p.number}" for p in disk.plan if p.mountpoint.startswith("/")}


class StepTreeProvision(Step):
    name = "StepTreeProvision"

    def run(self, ctx: BuildContext) -> None:
        disk, work = ctx.state.raw_disk, ctx.state.work_dir
        if disk is None or work is None:
            raise StepError(self.name, "no image tree to provision", hint="this is a vmbake bug")
        report = ctx.options.report or qemu_config(ctx, self.name).size_budget is not None
        if not ctx.provisioners and not report:
            return
        if ctx.provisioners:
            ctx.ui.say("Provisioning the image tree in a chroot, before its first boot...")
        with image_tree(disk, work / "tree") as comm:
            comm.cancel = ctx.cancel
            ctx.state.comm = comm
            try:
                if ctx.provisioners:
                    run_all(ctx)  # as StepProvision runs them in a guest
            finally:
                ctx.state.comm = None
            if report:
                self.collect(ctx, comm, disk)

    def collect(self, ctx: BuildContext, comm: ChrootCommunicator, disk: RawDisk) -> None:
        ctx.ui.say("Collecting facts for the image report from the image tree...")
        try:
            facts = collect_files(comm)
        except BuildCancelled:
            raise
        except VmbakeError as err:
            ctx.ui.warn(f"could not collect the image report: {err}")
            return
        rename_sources(facts, guest_devices(disk))
        ctx.state.report = facts
        ctx.ui.message(
            f"{len(facts.packages)} packages, {len(facts.filesystems)} filesystems "
            f"(in {format_duration(facts.collect_seconds)})"
        )
