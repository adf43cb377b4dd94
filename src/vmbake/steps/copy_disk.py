"""stepCopyDisk: copy (or convert) a disk_image into the output directory as the main disk.

Reads config.disk_image, use_backing_file, format, skip_compaction, disk_compression,
qemu_img_args.convert; state.iso_path and state.disk_paths[0]. Does nothing unless disk_image is set
without use_backing_file. When the image's extension already names the output format (and no convert
arguments are given) the file is used as it is; otherwise qemu-img converts it, into a temporary file
renamed into place.

Used as it is means copied, as Packer does, unless stepConvertDisk will rewrite the disk at the end (a
qcow2 that is compacted or compressed). Then the main disk is a qcow2 overlay on the image instead: the
conversion writes a standalone image all the same, and the build neither copies the image nor waits for
the copy to reach the disk before qemu-img resize (about 0.5 s for a 300 MiB image here, more for larger
ones). The image must not change while the build runs; QEMU opens it read-only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from vmbake import qemu_img
from vmbake.config.qemu import QemuConfig
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
            if will_convert(config):
                self._overlay(ctx, source, target, config.format)
                return
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

    def _overlay(self, ctx: BuildContext, source: Path, target: Path, fmt: str) -> None:
        argv = qemu_img.create_argv(target, None, fmt=fmt, backing_file=source.resolve(), backing_format=fmt)
        ctx.ui.debug(f"the disk is an overlay on {source} until stepConvertDisk writes it out whole")
        try:
            qemu_img.run_qemu_img(argv, what="qemu-img create")
        except VmbakeError as err:
            raise StepError(self.name, f"Error creating hard drive: {err}", err.hint) from err


def will_convert(config: QemuConfig) -> bool:
    """Whether stepConvertDisk rewrites the main disk at the end of the build."""
    if config.format != "qcow2" or config.use_backing_file:
        return False
    return config.disk_compression or not config.skip_compaction
