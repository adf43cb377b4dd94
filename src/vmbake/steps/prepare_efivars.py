"""stepPrepareEfivars: copy OVMF's vars template into the output directory (efi_boot).

Reads config.efi_boot, efi_firmware_vars; state.output_dir. Writes state.efivars_path
(OUTPUT/efivars.fd, the VM's writable EFI variable store). Removed again if the build fails.
"""

from __future__ import annotations

import contextlib
import shutil

from vmbake.errors import StepError
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import output_dir, qemu_config


class StepPrepareEfivars(Step):
    name = "stepPrepareEfivars"

    def run(self, ctx: BuildContext) -> None:
        config = qemu_config(ctx, self.name)
        if not config.efi_boot:
            return
        target = output_dir(ctx) / "efivars.fd"
        try:
            shutil.copyfile(config.efi_firmware_vars, target)
        except OSError as exc:
            raise StepError(
                self.name,
                f"failed to copy the EFI vars file {config.efi_firmware_vars}: {exc.strerror}",
                hint="install OVMF (apt-get install ovmf) or set efi_firmware_vars",
            ) from exc
        target.chmod(0o644)
        ctx.state.efivars_path = target

    def cleanup(self, ctx: BuildContext) -> None:
        if ctx.halted and ctx.state.efivars_path is not None:
            with contextlib.suppress(FileNotFoundError):
                ctx.state.efivars_path.unlink()
