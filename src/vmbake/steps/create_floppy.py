"""StepCreateFloppy: floppy_files and floppy_dirs are not supported by vmbake yet.

Reads config.floppy_files, floppy_dirs. A template that sets them fails here with a clear error
(before QEMU starts) rather than booting a guest that misses its files.
"""

from __future__ import annotations

from vmbake.errors import StepError
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import qemu_config


class StepCreateFloppy(Step):
    name = "StepCreateFloppy"

    def run(self, ctx: BuildContext) -> None:
        config = qemu_config(ctx, self.name)
        if config.floppy_files or config.floppy_dirs:
            raise StepError(
                self.name,
                "floppy_files and floppy_dirs are not supported by vmbake",
                hint="put the files on a CD instead with cd_files (and cd_label), or serve them with http_directory",
            )
