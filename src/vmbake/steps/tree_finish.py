"""StepCheckBoot and StepTreeFinish: the end of a debian-bootstrap build with provision_stage "tree".

StepCheckBoot ends the check boot. The guest ran on a throw-away snapshot, booted from the provisioned
tree; this step checks it as `vmbake verify` does (systemd's state, the root filesystem read-write,
fstab against the disk's partitions) and fails the build when a check fails. It adds the running
system's facts (kernel, state, failed units) to the report StepTreeProvision gathered from the tree.
QEMU is then stopped at once rather than shut down: its writes are discarded anyway. Reads state.comm,
state.qemu, state.report; updates state.report; leaves state.comm None and QEMU stopped.

StepTreeFinish mounts the tree once more and, in the chroot, cleans cloud-init's state and takes the
build's key out (as stepBootstrapCleanCloudInit and stepBootstrapClearKey do in a guest) and runs
shutdown_command (which cleans up instead of powering off there), does the first boot's one-off work
if StepTreeProvision did not (steps._bootstrap.first_boot_work), discards the free space of the tree's
filesystems (fstrim: holes in the raw file where provisioning deleted files); then it unmounts and writes
the artifact: the raw disk converted to OUTPUT/VM_NAME in `format`, compressed with disk_compression (the
QEMU builder's compaction, in the same pass). Reads the BootstrapConfig and its QEMU view given at
construction, state.raw_disk, state.ssh_public_key, state.output_dir, state.work_dir. Writes
state.disk_paths (the artifact), removes the raw disk and sets ctx.config back to the view of the
artifact's format for the steps after it (report, budget, verify).
"""

from __future__ import annotations

from vmbake import procs, qemu_img
from vmbake.bootstrap.tree import image_tree, trim_argvs
from vmbake.comm import DISCONNECTED
from vmbake.config.bootstrap import BootstrapConfig
from vmbake.config.qemu import QemuConfig
from vmbake.errors import StepError, VmbakeError
from vmbake.report.collect import add_live_facts
from vmbake.report.guestcheck import check_guest
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._bootstrap import clean_cloud_init, clear_build_key, first_boot_work
from vmbake.steps._qemu import output_dir
from vmbake.vm import stop_build_vm


class StepCheckBoot(Step):
    name = "StepCheckBoot"

    def run(self, ctx: BuildContext) -> None:
        comm = ctx.state.comm
        if comm is None:
            raise StepError(self.name, "no connection to the check VM", hint="this is a vmbake bug")
        ctx.ui.say("Checking the booted image (as vmbake verify does)...")
        checks = check_guest(comm, say=ctx.ui.message)
        if ctx.state.report is not None:
            facts = ctx.state.report
            try:
                add_live_facts(comm, facts)
            except VmbakeError as err:
                ctx.ui.warn(f"could not ask the guest for the image report's running facts: {err}")
        comm.close()
        ctx.state.comm = None
        ctx.ui.say("Stopping the check VM (its writes went to a snapshot)...")
        stop_build_vm(ctx)
        ctx.state.shutdown_done = True
        failed = [c for c in checks if not c.ok]
        if failed:
            raise StepError(
                self.name,
                "the provisioned image failed its check boot: " + "; ".join(c.detail for c in failed),
                hint="the guest's console is in the output directory (*.console.log)",
            )


class StepTreeFinish(Step):
    name = "StepTreeFinish"

    def __init__(self, config: BootstrapConfig, artifact_view: QemuConfig) -> None:
        self.config = config
        self.view = artifact_view  # the QEMU builder's view of config (builders.bootstrap.qemu_view)

    def run(self, ctx: BuildContext) -> None:
        config, state = self.config, ctx.state
        disk, work = state.raw_disk, state.work_dir
        if disk is None or work is None:
            raise StepError(self.name, "no image tree to finish", hint="this is a vmbake bug")
        clear_key = config.communicator != "none"
        with image_tree(disk, work / "tree") as comm:
            comm.cancel = ctx.cancel
            state.comm = comm
            try:
                clean_cloud_init(ctx, config, self.name)  # nothing ran it yet; `clean` is cheap insurance
                if clear_key:
                    clear_build_key(ctx, config, self.name)
                if config.shutdown_command:
                    ctx.ui.say("Running shutdown_command in the image tree...")
                    status = comm.run(
                        config.shutdown_command,
                        on_stdout=ctx.ui.message,
                        on_stderr=ctx.ui.message,
                        timeout=config.shutdown_timeout,
                    )
                    if status not in (0, DISCONNECTED):
                        raise StepError(
                            self.name,
                            f"shutdown_command exited with status {status} in the image tree",
                            hint="see its output above; in the tree it runs in a chroot (VMBAKE_STAGE=tree)",
                        )
            finally:
                state.comm = None
            first_boot_work(ctx, comm, self.name)  # done by StepTreeProvision unless it had nothing to do
            for argv in trim_argvs(comm.root, disk.plan):
                procs.run(argv, what="fstrim", on_line=ctx.ui.debug)
        view = self.view
        target = output_dir(ctx) / (config.vm_name or f"packer-{ctx.name}")
        compress = view.format == "qcow2" and view.disk_compression
        ctx.ui.say("Converting hard drive..." if compress else f"Writing the {view.format} image...")
        try:
            qemu_img.convert(
                disk.path,
                target,
                fmt=view.format,
                compress=compress,
                compression_type=qemu_img.resolve_compression(view.compression_type) if compress else None,
                extra=["-f", "raw", *view.qemu_img_args.convert],
                ui=ctx.ui,
                cancelled=ctx.cancel.is_set,
            )
        except VmbakeError as err:
            raise StepError(self.name, f"Error converting hard drive: {err}", err.hint) from err
        disk.path.unlink(missing_ok=True)
        state.raw_disk = None
        state.disk_paths = [target]
        ctx.config = view
