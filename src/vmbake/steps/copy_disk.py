"""stepCopyDisk: copy (or convert) a disk_image into the output directory as the main disk.

Reads config.disk_image, use_backing_file, format, qemu_img_args.convert; state.iso_path and
state.disk_paths[0]. Does nothing unless disk_image is set without use_backing_file. When the image's
extension already names the output format (and no convert arguments are given) the file is copied as
it is; otherwise qemu-img converts it, into a temporary file renamed into place.
"""

from __future__ import annotations

import shutil

from vmbake import qemu_img
from vmbake.errors import StepError, VmbakeError
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import main_disk, qemu_config


class StepCopyDisk(Step):
    name = "stepCopyDisk"

    def run(self, ctx: BuildContext) -> None:
        config = qemu_config(ctx, self.name)
        if not config.disk_image or config.use_backing_file:
            return
        source = ctx.state.iso_path
        if source is None:
            raise StepError(self.name, "disk_image is set but no image was downloaded", hint="set iso_url")
        target = main_disk(ctx)
        if source.suffix[1:] == config.format and not config.qemu_img_args.convert:
            ctx.ui.message(
                "File extension already matches desired output format. Skipping qemu-img convert step"
            )
            try:
                shutil.copyfile(source, target)
            except OSError as exc:
                raise StepError(self.name, f"Error copying {source} to {target}: {exc.strerror}") from exc
            return
        ctx.ui.say("Copying hard drive...")
        try:
            qemu_img.convert(source, target, fmt=config.format, extra=config.qemu_img_args.convert, ui=ctx.ui)
        except VmbakeError as err:
            raise StepError(self.name, f"Error creating hard drive: {err}", err.hint) from err
