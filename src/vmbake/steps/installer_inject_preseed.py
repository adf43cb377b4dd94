"""StepInjectPreseed: append preseed_file to the installer initrd as /preseed.cfg (no HTTP server needed)."""

from __future__ import annotations

from pathlib import Path

from vmbake.errors import StepError, VmbakeError
from vmbake.installer.preseed_inject import append_preseed
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import qemu_config

INITRD_NAME = "initrd-preseed.gz"


class StepInjectPreseed(Step):
    """Reads config.preseed_file, state.initrd_path and state.work_dir; points state.initrd_path at a copy
    of the initrd that carries the preseed. The original (maybe cached) initrd is never changed."""

    name = "StepInjectPreseed"

    def run(self, ctx: BuildContext) -> None:
        preseed = qemu_config(ctx, self.name).preseed_file
        if not preseed:
            return
        if ctx.state.initrd_path is None or ctx.state.work_dir is None:
            raise StepError(
                self.name,
                "preseed_file needs the installer's kernel booted directly",
                hint="set installer_boot to 'kernel' or iso_source to 'debian-netboot'",
            )
        ctx.ui.say(f"Adding {preseed} to the installer's initrd as /preseed.cfg...")
        try:
            ctx.state.initrd_path = append_preseed(
                ctx.state.initrd_path, Path(preseed), ctx.state.work_dir / INITRD_NAME
            )
        except VmbakeError as err:
            raise StepError(self.name, err.message, err.hint) from err

    def cleanup(self, ctx: BuildContext) -> None:
        if ctx.state.work_dir is not None:
            (ctx.state.work_dir / INITRD_NAME).unlink(missing_ok=True)
