"""StepTreeProvision: run the provisioners in a chroot of the image, before its first boot.

For the debian-bootstrap builder with provision_stage "tree". Reads state.raw_disk (the disk laid by
stepBootstrapDisk) and state.work_dir; ctx.provisioners through provisioners.sequence, which runs them exactly
as StepProvision does in a guest, over the chroot communicator (vmbake.comm.chroot) that this step puts in state.comm
while the tree is mounted. Then, when the report is on or a size_budget is set, it gathers the report's
facts that the files give (packages, filesystems, directories) from the provisioned tree, at the host's
speed rather than the guest's: writes state.report (StepCheckBoot adds the running system's facts).
state.comm is None again when the step ends.

With state.kept_apt_lists (mmdebstrap left its package lists for the provisioners), the lists go after
provisioning unless a provisioner refreshed, replaced or removed them: the image then has the lists it
would have had without them. Last, the first boot's one-off work (ConditionNeedsUpdate units: hwdb,
ldconfig, the journal catalog, sysusers) is done in the tree, so neither the check boot nor the image's
first boot spends time on it (bootstrap.tree.first_boot_script).
"""

from __future__ import annotations

from vmbake.bootstrap.tree import RawDisk, apt_lists_state, drop_untouched_lists, image_tree
from vmbake.comm.chroot import ChrootCommunicator
from vmbake.errors import BuildCancelled, StepError, VmbakeError
from vmbake.provisioners.sequence import run_all
from vmbake.report.collect import collect_files, rename_sources
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._bootstrap import first_boot_work
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
            lists = apt_lists_state(comm.root) if ctx.state.kept_apt_lists else {}
            try:
                if ctx.provisioners:
                    run_all(ctx)  # as StepProvision runs them in a guest
            finally:
                ctx.state.comm = None
            if lists:
                if drop_untouched_lists(comm.root, lists):
                    ctx.ui.message("Removed the package lists that no provisioner used (as mmdebstrap would)")
                else:
                    ctx.ui.debug("the package lists stay as the provisioners left them")
            first_boot_work(ctx, comm, self.name)
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
