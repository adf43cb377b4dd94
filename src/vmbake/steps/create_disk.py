"""stepCreateDisk: create the VM's disks with qemu-img create.

Reads config.disk_size, disk_additional_size, format, disk_image, use_backing_file, qemu_img_args.create;
state.output_dir and state.iso_path (the backing file). Writes state.disk_paths: OUTPUT/VM_NAME first,
then OUTPUT/VM_NAME-1, -2, ... for the additional disks. With disk_image and no backing file, the main
disk is left to stepCopyDisk.
"""

from __future__ import annotations

from vmbake import qemu_img
from vmbake.errors import StepError, VmbakeError
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import output_dir, qemu_config, vm_name
from vmbake.units import size_text


class StepCreateDisk(Step):
    name = "stepCreateDisk"

    def run(self, ctx: BuildContext) -> None:
        config = qemu_config(ctx, self.name)
        base = output_dir(ctx) / vm_name(ctx)
        paths = [base] + [
            base.with_name(f"{base.name}-{i}") for i in range(1, len(config.disk_additional_size) + 1)
        ]
        sizes = [config.disk_size, *config.disk_additional_size]
        ctx.state.disk_paths = paths
        to_create = [
            i for i in range(len(paths)) if not (i == 0 and config.disk_image and not config.use_backing_file)
        ]
        if not to_create:
            return
        ctx.ui.say("Creating required virtual machine disks")
        for i in to_create:
            backing = None
            if i == 0 and config.disk_image and config.use_backing_file:
                if ctx.state.iso_path is None:
                    raise StepError(
                        self.name, "use_backing_file is set but there is no disk image to back the disk"
                    )
                backing = ctx.state.iso_path.resolve()
            argv = qemu_img.create_argv(
                paths[i],
                size_text(sizes[i]),
                fmt=config.format,
                backing_file=backing,
                extra=config.qemu_img_args.create,
            )
            try:
                qemu_img.run_qemu_img(argv, what="qemu-img create")
            except VmbakeError as err:
                raise StepError(self.name, f"Error creating hard drive: {err}", err.hint) from err
