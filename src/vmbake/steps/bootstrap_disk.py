"""stepBootstrapDisk: lay the root filesystem onto a partitioned disk that boots by itself.

Reads the BootstrapConfig given at construction (disk_size, firmware, partitions, format, vm_name),
state.rootfs_tarball, state.output_dir and state.work_dir. Writes state.disk_paths (OUTPUT/VM_NAME, in
`format`) and removes the tarball once it is on the disk. With provision_stage "tree" the disk stays a
raw file in the work directory, and state.raw_disk says where and with which partitions, for the steps
that provision it as a tree and then make the artifact (StepTreeFinish). Needs root: loop devices,
mount, chroot.
"""

from __future__ import annotations

from pathlib import Path

from vmbake.bootstrap.pipeline import lay_raw, make_disk
from vmbake.bootstrap.tree import RawDisk
from vmbake.config.bootstrap import BootstrapConfig
from vmbake.errors import StepError
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.units import size_text


class StepBootstrapDisk(Step):
    name = "stepBootstrapDisk"

    def __init__(self, config: BootstrapConfig) -> None:
        self.config = config
        self._made: Path | None = None

    def run(self, ctx: BuildContext) -> None:
        config = self.config
        state = ctx.state
        if state.rootfs_tarball is None or state.work_dir is None:
            raise StepError(self.name, "no root filesystem to lay onto the disk", hint="this is a vmbake bug")
        out_dir = state.output_dir or Path(config.output_directory or f"output-{ctx.name}")
        disk = out_dir / (config.vm_name or f"packer-{ctx.name}")
        layout = (
            ", ".join(
                f"{p.mountpoint} {'rest' if p.size is None else size_text(p.size)}" for p in config.partitions
            )
            or "/ filling the disk"
        )
        ctx.ui.say(
            f"Creating partitioned disk ({size_text(config.disk_size)}, {config.firmware}; {layout})..."
        )
        self._made = disk
        debug = ctx.ui.message if ctx.ui.ui.debug else None
        work = state.work_dir / "bootstrap"
        if config.provision_stage == "tree":
            raw = self._made = work / "disk.raw"
            plan = lay_raw(config, state.rootfs_tarball, raw, work, ctx.ui.message, debug=debug)
            guest_disk = "/dev/vda" if config.disk_interface == "virtio" else "/dev/sda"
            state.raw_disk = RawDisk(raw, plan, guest_disk)
            disk = raw
        else:
            make_disk(config, state.rootfs_tarball, disk, work, ctx.ui.message, debug=debug)
        state.disk_paths = [disk]
        state.rootfs_tarball.unlink(missing_ok=True)
        state.rootfs_tarball = None

    def cleanup(self, ctx: BuildContext) -> None:
        raw = ctx.state.raw_disk
        if raw is not None:  # the tree's raw disk is scratch, whatever happened
            raw.path.unlink(missing_ok=True)
            ctx.state.raw_disk = None
        if ctx.halted and self._made is not None:
            self._made.unlink(missing_ok=True)
        self._made = None
