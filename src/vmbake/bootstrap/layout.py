"""The disk layout, as pure data: GPT partitions with their offsets, types and filesystem UUIDs.

The UUIDs are chosen here, before any filesystem exists, so that the sfdisk script, the mkfs options and
the fstab are all derived from one value and can be tested without a disk.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from vmbake import arch
from vmbake.config.bootstrap import (
    BIOS_BOOT_SIZE,
    ESP_SIZE,
    BootstrapConfig,
    MiB,
    Partition,
    effective_partitions,
)
from vmbake.errors import VmbakeError
from vmbake.units import size_text

# GPT partition type GUIDs (UEFI spec and the Discoverable Partitions Specification).
TYPE_BIOS_BOOT = "21686148-6449-6E6F-744E-656564454649"
TYPE_ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
TYPE_ROOT_X86_64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
TYPE_LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
TYPE_SWAP = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
TYPE_VAR = "4D21B016-B534-45C2-A9FB-5C16E091FD2D"
# The specification has no type for /tmp. Its "temporary data" type means /var/tmp, and
# systemd-gpt-auto-generator mounts such a partition there, racing fstab's /tmp mount of the same device
# (seen here: "Can't open blockdev", then emergency mode). So /tmp gets the plain Linux type.
_TYPES = {"/var": TYPE_VAR, "swap": TYPE_SWAP}
SECTOR = 512


@dataclass(frozen=True)
class Planned:
    """One partition as it will be made: number, GPT name and type, place, filesystem and its UUID."""

    number: int
    name: str
    type_guid: str
    start: int  # bytes, MiB-aligned
    size: int  # bytes
    mountpoint: str  # "" for the BIOS boot partition, "swap" for swap
    fs: str  # "" (none), "vfat", "ext4", "ext3", "ext2", "swap"
    fs_uuid: str  # "" for none; "ABCD-1234" for vfat


def _new_uuid(kind: str) -> str:
    if kind == "vfat":
        serial = uuid.uuid4().hex[:8].upper()
        return f"{serial[:4]}-{serial[4:]}"
    return str(uuid.uuid4())


def plan_layout(config: BootstrapConfig, *, make_uuid: Callable[[str], str] = _new_uuid) -> list[Planned]:
    """The partitions of the disk, in order. Raises VmbakeError if they do not fit (validate says so first)."""
    disk = config.disk_size
    end = disk - MiB  # the backup GPT lives in the last MiB
    pos = MiB
    plan: list[Planned] = []

    def add(name: str, type_guid: str, size: int, mountpoint: str, fs: str) -> None:
        nonlocal pos
        plan.append(
            Planned(len(plan) + 1, name, type_guid, pos, size, mountpoint, fs, make_uuid(fs) if fs else "")
        )
        pos += size

    if config.firmware in ("bios", "hybrid"):
        add("bios", TYPE_BIOS_BOOT, BIOS_BOOT_SIZE, "", "")
    if config.firmware in ("efi", "hybrid"):
        add("esp", TYPE_ESP, ESP_SIZE, "/boot/efi", "vfat")
    parts = effective_partitions(config)
    fixed = sum(_mib_align(p.size) for p in parts if p.size is not None)
    rest = end - pos - fixed
    if rest < (MiB if any(p.size is None for p in parts) else 0):
        raise VmbakeError(
            f"the partitions do not fit on a disk of {size_text(disk)}",
            hint="shrink the partitions or raise disk_size",
        )
    for p in parts:
        size = _mib_align(p.size) if p.size is not None else rest // MiB * MiB
        root_type = arch.of(config.architecture).root_type
        add(
            _name(p),
            root_type if p.mountpoint == "/" else _TYPES.get(p.mountpoint, TYPE_LINUX),
            size,
            p.mountpoint,
            p.fs,
        )
    return plan


def _name(p: Partition) -> str:
    return "root" if p.mountpoint == "/" else p.mountpoint.strip("/") or "part"


def _mib_align(nbytes: int) -> int:
    return -(-nbytes // MiB) * MiB


def sfdisk_script(plan: list[Planned]) -> str:
    """The sfdisk input that makes `plan` on an empty disk."""
    lines = ["label: gpt", "unit: sectors", "first-lba: 2048", ""]
    for p in plan:
        lines.append(
            f'start={p.start // SECTOR}, size={p.size // SECTOR}, type={p.type_guid}, name="{p.name}"'
        )
    return "\n".join(lines) + "\n"


def mkfs_argv(p: Planned, device: str) -> list[str] | None:
    """The command that makes `p`'s filesystem on `device` with its planned UUID (None: no filesystem)."""
    if p.fs == "vfat":
        return ["mkfs.vfat", "-F", "32", "-n", "ESP", "-i", p.fs_uuid.replace("-", ""), device]
    if p.fs == "swap":
        return ["mkswap", "-U", p.fs_uuid, "-L", "swap", device]
    if p.fs in ("ext4", "ext3", "ext2"):
        argv = [f"mkfs.{p.fs}", "-q", "-F", "-U", p.fs_uuid, "-L", p.name[:16]]
        if p.fs == "ext4":
            # Features older grub and e2fsck (buster, bullseye) cannot read.
            argv += ["-O", "^metadata_csum_seed,^orphan_file"]
        return [*argv, device]
    return None


DEVICE_TIMEOUT = "x-systemd.device-timeout=10min"


def fstab_text(plan: list[Planned]) -> str:
    """The image's /etc/fstab, every filesystem by UUID."""
    lines = ["# /etc/fstab: written by vmbake (debian-bootstrap); filesystems by UUID", ""]
    for p in sorted(plan, key=lambda x: (x.mountpoint != "/", x.mountpoint)):
        if not p.fs:
            continue
        # An emulated (TCG) guest on a busy host can take longer than systemd's 90 s to see its disks;
        # the ESP and swap are not needed to run, so they never hold the boot up.
        if p.fs == "swap":
            lines.append(f"UUID={p.fs_uuid}\tnone\tswap\tsw,nofail\t0\t0")
        elif p.fs == "vfat":
            lines.append(f"UUID={p.fs_uuid}\t{p.mountpoint}\tvfat\tumask=0077,nofail\t0\t1")
        elif p.mountpoint == "/":
            lines.append(f"UUID={p.fs_uuid}\t/\t{p.fs}\terrors=remount-ro\t0\t1")
        else:
            lines.append(f"UUID={p.fs_uuid}\t{p.mountpoint}\t{p.fs}\tdefaults,{DEVICE_TIMEOUT}\t0\t2")
    return "\n".join(lines) + "\n"


# What the EFI grub image embeds: enough to find the filesystem holding /boot/grub and read grub.cfg.
EFI_MODULES = (
    "part_gpt", "part_msdos", "fat", "ext2", "search", "search_fs_uuid", "normal", "configfile", "linux", "echo",
    "test", "gzio", "efi_gop", "efi_uga", "serial", "terminal", "terminfo", "reboot", "halt",
)  # fmt: skip
# efi_uga (an old x86 Mac display protocol) exists only for x86; arm64's EFI console needs no serial module.
EFI_MODULES_ARM64 = tuple(m for m in EFI_MODULES if m not in ("efi_uga", "serial"))


def efi_modules(architecture: str) -> tuple[str, ...]:
    return EFI_MODULES if architecture == "amd64" else EFI_MODULES_ARM64


def efi_early_config(plan: list[Planned]) -> tuple[str, str]:
    """(early config embedded in BOOTX64.EFI, grub prefix): find /boot/grub by filesystem UUID."""
    boot = next((p for p in plan if p.mountpoint == "/boot"), None)
    holder = boot or next(p for p in plan if p.mountpoint == "/")
    prefix = "/grub" if boot else "/boot/grub"
    text = f"search --no-floppy --fs-uuid --set=root {holder.fs_uuid}\nset prefix=($root){prefix}\n"
    return text, prefix


def mount_order(plan: list[Planned]) -> list[Planned]:
    """The partitions mounted while laying the disk, parents first (/ before /boot). The ESP is not among
    them: it is written with mtools, so the host needs no FAT driver."""
    mounted = [p for p in plan if p.fs and p.fs not in ("swap", "vfat")]
    return sorted(
        mounted, key=lambda p: (p.mountpoint.count("/") if p.mountpoint != "/" else 0, p.mountpoint)
    )
