"""StepCreateCD: put cd_files and cd_content on an extra CD image (for example a cloud-init 'cidata' disk).

Reads config.cd_files, cd_content, cd_label; state.work_dir. Writes state.cd_path (an ISO 9660 image
with Joliet and Rock Ridge names, made by xorriso, in the private work dir). A directory in cd_files
is copied with its contents; a glob adds every match.
"""

from __future__ import annotations

import glob
import shutil
from pathlib import Path

from vmbake import procs
from vmbake.errors import StepError, VmbakeError
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import qemu_config


class StepCreateCD(Step):
    name = "StepCreateCD"

    def run(self, ctx: BuildContext) -> None:
        config = qemu_config(ctx, self.name)
        if not config.cd_files and not config.cd_content:
            return
        work = ctx.state.work_dir
        if work is None:
            raise StepError(self.name, "no work directory", hint="this is a vmbake bug")
        ctx.ui.say("Creating CD disk...")
        root = work / "cd-root"
        root.mkdir(exist_ok=True)
        for pattern in config.cd_files:
            matches = sorted(glob.glob(pattern)) or [pattern]
            for match in matches:
                source = Path(match)
                if not source.exists():
                    raise StepError(
                        self.name, f"cd_files: {match} does not exist", hint="fix the path in cd_files"
                    )
                ctx.ui.message(f"Adding file: {match}")
                if source.is_dir():
                    shutil.copytree(source, root / source.name, dirs_exist_ok=True)
                else:
                    shutil.copy2(source, root / source.name)
        for name, text in sorted(config.cd_content.items()):
            target = root / name.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            ctx.ui.message(f"Adding content: {name}")
        image = work / "cd.iso"
        argv = ["xorriso", "-as", "mkisofs", "-quiet", "-J", "-R", "-V", config.cd_label or "packer",
                "-o", str(image), str(root)]  # fmt: skip
        try:
            procs.run(argv, what="xorriso")
        except VmbakeError as err:
            raise StepError(self.name, f"Error creating CD: {err}", err.hint) from err
        ctx.state.cd_path = image

    def cleanup(self, ctx: BuildContext) -> None:
        if ctx.state.cd_path is not None:
            ctx.state.cd_path.unlink(missing_ok=True)
            ctx.state.cd_path = None
