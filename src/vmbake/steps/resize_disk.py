"""stepResizeDisk: grow a disk_image's copy to disk_size with qemu-img resize.

Reads config.disk_image, skip_resize_disk, disk_size, format, qemu_img_args.resize; state.disk_paths[0].
Does nothing unless disk_image is set and skip_resize_disk is not.
"""

from __future__ import annotations

import os
import shutil

from vmbake import qemu_img
from vmbake.errors import StepError, VmbakeError
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import main_disk, qemu_config
from vmbake.units import size_text


class StepResizeDisk(Step):
    name = "stepResizeDisk"

    def run(self, ctx: BuildContext) -> None:
        config = qemu_config(ctx, self.name)
        if not config.disk_image or config.skip_resize_disk:
            return
        argv = qemu_img.resize_argv(
            main_disk(ctx),
            size_text(config.disk_size),
            fmt=config.format,
            extra=config.qemu_img_args.resize,
        )
        ctx.ui.say("Resizing hard drive...")
        try:
            qemu_img.run_qemu_img(argv, what="qemu-img resize")
        except VmbakeError as err:
            if argv and shutil.which(argv[0]) is None and not os.path.isabs(argv[0]):
                # the tool is missing: keep the hint naming its package
                raise StepError(self.name, f"Error resizing hard drive: {err}", err.hint) from err
            raise StepError(
                self.name,
                f"Error resizing hard drive: {err}",
                "disk_size must not be smaller than the image; set skip_resize_disk to keep its size",
            ) from err
