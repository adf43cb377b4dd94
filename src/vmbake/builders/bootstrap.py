"""The debian-bootstrap builder: mmdebstrap and a bootable disk, then the QEMU builder's second half.

The first steps are this builder's own (root filesystem, disk). From the boot on, the steps are the
QEMU builder's: they read the machine, communicator and shutdown keys through a QemuConfig view of the
same template block (`qemu_view`), booting the made disk as a disk image.

What this builder needs on the host: root (loop devices, mount, chroot), mmdebstrap, sfdisk and partx
(fdisk, util-linux), mkfs.ext4, for UEFI mkfs.vfat and mtools (the ESP is written without mounting it,
so the host kernel needs no FAT driver), qemu-img, and Debian's archive over HTTP. It works on kernels
without partition-table parsers (partx adds the loop partitions).
"""

from __future__ import annotations

import dataclasses

from vmbake.config.bootstrap import BootstrapConfig
from vmbake.config.qemu import QemuConfig
from vmbake.errors import VmbakeError
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps.bootstrap_clean_cloud_init import StepBootstrapCleanCloudInit
from vmbake.steps.bootstrap_clear_key import StepBootstrapClearKey
from vmbake.steps.bootstrap_disk import StepBootstrapDisk
from vmbake.steps.bootstrap_rootfs import StepBootstrapRootfs
from vmbake.steps.check_size_budget import StepCheckSizeBudget
from vmbake.steps.collect_report import StepCollectReport
from vmbake.steps.connect import StepConnect
from vmbake.steps.convert_disk import StepConvertDisk
from vmbake.steps.forward_port import StepPortForward
from vmbake.steps.http_server import StepHTTPServer
from vmbake.steps.prepare_efivars import StepPrepareEfivars
from vmbake.steps.prepare_output_dir import StepPrepareOutputDir
from vmbake.steps.provision import StepProvision
from vmbake.steps.run_qemu import StepRun
from vmbake.steps.shutdown import StepShutdown
from vmbake.steps.ssh_key_pair import StepSSHKeyPair
from vmbake.steps.tree_finish import StepCheckBoot, StepTreeFinish
from vmbake.steps.tree_provision import StepTreeProvision
from vmbake.steps.verify_image import StepVerifyImage
from vmbake.steps.write_report import StepWriteReport

BUILDER_ID = "vmbake.debian-bootstrap"  # the id of this builder's artifacts
# Keys both configs have but that mean different things: `firmware` is bios/efi/hybrid here and a -bios
# file there; `suite` and `mirror` pick what to install here and the installer's source there.
_NOT_SHARED = frozenset({"firmware", "suite", "mirror"})


def qemu_view(config: BootstrapConfig, *, check_boot: bool = False) -> QemuConfig:
    """The QEMU builder's config for booting the made disk: the shared keys, booting a disk image.

    With `check_boot`, the view of provision_stage "tree"'s one boot: the raw work disk, every write to a
    throw-away snapshot (the tree was provisioned already; the boot only reaches SSH for the report)."""
    names = {f.name for f in dataclasses.fields(QemuConfig) if f.init}
    values = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(BootstrapConfig)
        if f.init and f.name in names and f.name not in _NOT_SHARED
    }
    values.update(
        disk_image=True, skip_resize_disk=True, efi_boot=config.efi_boot or config.firmware == "efi"
    )
    if check_boot:
        values.update(format="raw", qemuargs=[*config.qemuargs, ["-snapshot"]])
    return QemuConfig(**values)


def steps(ctx: BuildContext) -> list[Step]:
    """The ordered steps of one debian-bootstrap build. The QEMU steps see `qemu_view` as ctx.config."""
    config = ctx.config
    if not isinstance(config, BootstrapConfig):
        raise VmbakeError(f"build {ctx.name!r} is not a debian-bootstrap build", hint="this is a vmbake bug")
    if config.provision_stage == "tree":
        return tree_steps(ctx, config)
    ctx.config = qemu_view(config)
    plan: list[Step] = [
        StepPrepareOutputDir(),
        StepSSHKeyPair(),
        StepBootstrapRootfs(config),
        StepBootstrapDisk(config),
        StepHTTPServer(),
        StepPortForward(),
        StepPrepareEfivars(),
        StepRun(),
    ]
    if config.communicator == "none":
        # Only the provisioners that need no guest (shell-local, breakpoint); validate refuses the others.
        plan += [StepProvision()]
    else:
        plan += [
            StepConnect(),
            StepProvision(),
            StepCollectReport(),
            StepBootstrapCleanCloudInit(config),
            StepBootstrapClearKey(config),
        ]
    plan += [
        StepShutdown(),
        StepConvertDisk(),
        StepWriteReport(),
        StepCheckSizeBudget(),
        StepVerifyImage(),
    ]
    return plan


def tree_steps(ctx: BuildContext, config: BootstrapConfig) -> list[Step]:
    """provision_stage "tree": the provisioners run in a chroot of the disk before it ever boots, and the
    report's facts come from that tree; then one boot on a snapshot, for verify's checks and the running
    system's facts; then the shutdown_command in the chroot, and the artifact.
    Without a communicator there is nothing to log in to, so there is no boot at all."""
    ctx.config = qemu_view(config, check_boot=True)
    plan: list[Step] = [
        StepPrepareOutputDir(),
        StepSSHKeyPair(),
        StepBootstrapRootfs(config, keep_lists=bool(ctx.provisioners)),
        StepBootstrapDisk(config),
        StepTreeProvision(),
    ]
    if config.communicator != "none":
        plan += [
            StepHTTPServer(),
            StepPortForward(),
            StepPrepareEfivars(),
            StepRun(),
            StepConnect(),
            StepCheckBoot(),
        ]
    plan += [
        StepTreeFinish(config, qemu_view(config)),
        StepWriteReport(),
        StepCheckSizeBudget(),
        StepVerifyImage(),
    ]
    return plan
