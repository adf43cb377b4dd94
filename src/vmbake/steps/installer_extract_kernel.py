"""StepExtractInstallerKernel: copy d-i's kernel and initrd out of the installer ISO (installer_boot 'kernel')."""

from __future__ import annotations

from vmbake.errors import StepError, VmbakeError
from vmbake.installer.iso_extract import extract_installer
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import qemu_config


class StepExtractInstallerKernel(Step):
    """Reads state.iso_path and state.work_dir; sets state.kernel_path and state.initrd_path.

    Does nothing unless installer_boot is 'kernel' with an ISO (iso_source 'iso'): netboot files come
    from StepFetchNetboot instead. The ISO stays attached as the CD-ROM, where d-i finds its packages.
    """

    name = "StepExtractInstallerKernel"

    def run(self, ctx: BuildContext) -> None:
        config = qemu_config(ctx, self.name)
        if config.installer_boot != "kernel" or config.iso_source != "iso":
            return
        if ctx.state.iso_path is None or ctx.state.work_dir is None:
            raise StepError(self.name, "no ISO was downloaded", hint="set iso_url (and iso_checksum)")
        ctx.ui.say("Reading the installer's kernel and initrd from the ISO...")
        try:
            kernel, initrd, found = extract_installer(ctx.state.iso_path, ctx.state.work_dir)
        except VmbakeError as err:
            raise StepError(self.name, err.message, err.hint) from err
        ctx.ui.message(f"Found {found.kernel} and {found.initrd} (named by {found.found_in})")
        ctx.state.kernel_path = kernel
        ctx.state.initrd_path = initrd

    def cleanup(self, ctx: BuildContext) -> None:
        work = ctx.state.work_dir
        if work is None:
            return
        for name in ("vmlinuz", "initrd.gz"):
            (work / name).unlink(missing_ok=True)
