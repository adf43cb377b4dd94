"""The QEMU builder: Packer's steps, in Packer's order.

ISO, output directory, floppy and CD files, disks (create, or copy and resize a disk_image), HTTP
server, the communicator's host port, the VNC port, EFI vars, QEMU itself, the boot command, the
connection and provisioners, shutdown, and the disk conversion. vmbake adds the image report, the
size budget check and the optional verification boot at the end.
"""

from __future__ import annotations

from vmbake.config.qemu import QemuConfig
from vmbake.errors import VmbakeError
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps.check_size_budget import StepCheckSizeBudget
from vmbake.steps.collect_report import StepCollectReport
from vmbake.steps.configure_vnc import StepConfigureVNC
from vmbake.steps.connect import StepConnect
from vmbake.steps.convert_disk import StepConvertDisk
from vmbake.steps.copy_disk import StepCopyDisk
from vmbake.steps.create_cd import StepCreateCD
from vmbake.steps.create_disk import StepCreateDisk
from vmbake.steps.create_floppy import StepCreateFloppy
from vmbake.steps.download_iso import StepDownload
from vmbake.steps.forward_port import StepPortForward
from vmbake.steps.http_server import StepHTTPServer
from vmbake.steps.installer_extract_kernel import StepExtractInstallerKernel
from vmbake.steps.installer_fetch_netboot import StepFetchNetboot
from vmbake.steps.installer_inject_preseed import StepInjectPreseed
from vmbake.steps.installer_reboot import StepInstallerReboot
from vmbake.steps.prepare_efivars import StepPrepareEfivars
from vmbake.steps.prepare_output_dir import StepPrepareOutputDir
from vmbake.steps.provision import StepProvision
from vmbake.steps.resize_disk import StepResizeDisk
from vmbake.steps.run_qemu import StepRun
from vmbake.steps.shutdown import StepShutdown
from vmbake.steps.ssh_key_pair import StepSSHKeyPair
from vmbake.steps.type_boot_command import StepTypeBootCommand
from vmbake.steps.verify_image import StepVerifyImage
from vmbake.steps.write_report import StepWriteReport

BUILDER_ID = "transcend.qemu"  # Packer's id for the QEMU builder's artifacts


def steps(ctx: BuildContext) -> list[Step]:
    """The ordered steps of one QEMU build."""
    config = ctx.config
    if not isinstance(config, QemuConfig):
        raise VmbakeError(f"build {ctx.name!r} is not a qemu build", hint="this is a vmbake bug")
    plan: list[Step] = [
        StepDownload(),
        StepFetchNetboot(),
        StepExtractInstallerKernel(),
        StepInjectPreseed(),
        StepPrepareOutputDir(),
        StepCreateFloppy(),
        StepCreateCD(),
        StepCreateDisk(),
        StepCopyDisk(),
        StepResizeDisk(),
        StepSSHKeyPair(),
        StepHTTPServer(),
        StepPortForward(),
        StepConfigureVNC(),
        StepPrepareEfivars(),
        StepRun(),
        StepTypeBootCommand(),
        StepInstallerReboot(),
    ]
    if config.communicator != "none":
        plan += [StepConnect()]
    # With communicator "none" the provisioners that need no guest (shell-local, breakpoint) still run.
    plan += [StepProvision()]
    if config.communicator != "none":
        plan += [StepCollectReport()]
    plan += [
        StepShutdown(),
        StepConvertDisk(),
        StepWriteReport(),
        StepCheckSizeBudget(),
        StepVerifyImage(),
    ]
    return plan
