"""stepConvertDisk: compact the main disk with qemu-img convert (-c with disk_compression).

Reads config.skip_compaction, disk_compression, compression_type, format, use_backing_file,
qemu_img_args.convert; state.disk_paths[0]. The image is written to a temporary file and renamed over
the original only when qemu-img succeeded. zstd clusters (compression_type zstd, or auto when this
qemu-img has them) are several times faster to write than zlib at about the same size.
"""

from __future__ import annotations

from vmbake import qemu_img
from vmbake.errors import StepError, VmbakeError
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import main_disk, qemu_config


class StepConvertDisk(Step):
    name = "stepConvertDisk"

    def run(self, ctx: BuildContext) -> None:
        config = qemu_config(ctx, self.name)
        if config.format != "qcow2" or config.use_backing_file:
            return  # Packer turns compaction off for raw disks and backing files
        if config.skip_compaction and not config.disk_compression:
            return
        disk = main_disk(ctx)
        compression = (
            qemu_img.resolve_compression(config.compression_type) if config.disk_compression else None
        )
        ctx.ui.say("Converting hard drive...")
        try:
            qemu_img.convert(
                disk,
                disk,
                fmt=config.format,
                compress=config.disk_compression,
                compression_type=compression,
                extra=config.qemu_img_args.convert,
                ui=ctx.ui,
                cancelled=ctx.cancel.is_set,
            )
        except VmbakeError as err:
            raise StepError(self.name, f"Error converting hard drive: {err}", err.hint) from err
