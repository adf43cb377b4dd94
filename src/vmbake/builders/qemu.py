"""The QEMU builder: Packer's steps, in Packer's order.

ISO, output directory, floppy and CD files, disks (create, or copy and resize a disk_image), HTTP
server, the communicator's host port, the VNC port, EFI vars, QEMU itself, the boot command, the
connection and provisioners, shutdown, and the disk conversion. vmbake adds the image report, the
size budget check and the optional verification boot at the end. Steps written by other parts of vmbake
are imported when the list is built, so a missing one is skipped (and said under -debug) rather than
breaking every build.
"""

from __future__ import annotations

import importlib
import logging

from vmbake.config.qemu import QemuConfig
from vmbake.errors import VmbakeError
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps.configure_vnc import StepConfigureVNC
from vmbake.steps.convert_disk import StepConvertDisk
from vmbake.steps.copy_disk import StepCopyDisk
from vmbake.steps.create_cd import StepCreateCD
from vmbake.steps.create_disk import StepCreateDisk
from vmbake.steps.create_floppy import StepCreateFloppy
from vmbake.steps.forward_port import StepPortForward
from vmbake.steps.prepare_efivars import StepPrepareEfivars
from vmbake.steps.prepare_output_dir import StepPrepareOutputDir
from vmbake.steps.resize_disk import StepResizeDisk
from vmbake.steps.run_qemu import StepRun
from vmbake.steps.shutdown import StepShutdown

log = logging.getLogger("vmbake.builders.qemu")

BUILDER_ID = "transcend.qemu"  # Packer's id for the QEMU builder's artifacts


def optional_step(module: str, cls: str) -> Step | None:
    """An instance of steps.<module>.<cls>, or None when that part of vmbake is not installed."""
    try:
        mod = importlib.import_module(f"vmbake.steps.{module}")
    except ImportError as exc:
        if exc.name is not None and not exc.name.startswith("vmbake"):
            raise
        log.debug("step module %s is missing: %s", module, exc)
        return None
    found = getattr(mod, cls, None)
    if not (isinstance(found, type) and issubclass(found, Step)):
        log.debug("step class %s.%s is missing", module, cls)
        return None
    return found()


def steps(ctx: BuildContext) -> list[Step]:
    """The ordered steps of one QEMU build."""
    config = ctx.config
    if not isinstance(config, QemuConfig):
        raise VmbakeError(f"build {ctx.name!r} is not a qemu build", hint="this is a vmbake bug")
    plan: list[Step | None] = [
        optional_step("download_iso", "StepDownload"),
        optional_step("installer_fetch_netboot", "StepFetchNetboot"),
        optional_step("installer_extract_kernel", "StepExtractInstallerKernel"),
        optional_step("installer_inject_preseed", "StepInjectPreseed"),
        StepPrepareOutputDir(),
        StepCreateFloppy(),
        StepCreateCD(),
        StepCreateDisk(),
        StepCopyDisk(),
        StepResizeDisk(),
        optional_step("ssh_key_pair", "StepSSHKeyPair"),
        optional_step("http_server", "StepHTTPServer"),
        StepPortForward(),
        StepConfigureVNC(),
        StepPrepareEfivars(),
        StepRun(),
        optional_step("type_boot_command", "StepTypeBootCommand"),
        optional_step("installer_reboot", "StepInstallerReboot"),
    ]
    if config.communicator != "none":
        plan += [optional_step("connect", "StepConnect")]
    # With communicator "none" the provisioners that need no guest (shell-local, breakpoint) still run.
    plan += [optional_step("provision", "StepProvision")]
    if config.communicator != "none":
        plan += [optional_step("collect_report", "StepCollectReport")]
    plan += [
        StepShutdown(),
        StepConvertDisk(),
        optional_step("write_report", "StepWriteReport"),
        optional_step("check_size_budget", "StepCheckSizeBudget"),
        optional_step("verify_image", "StepVerifyImage"),
    ]
    return [step for step in plan if step is not None]
