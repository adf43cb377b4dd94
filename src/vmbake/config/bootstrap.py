"""The `debian-bootstrap` builder's keys: a root filesystem made by mmdebstrap, laid onto a bootable disk.

The machine, communicator, HTTP and shutdown keys are the QEMU builder's (shared mixins); the defaults that
differ suit a small image: a 2G qcow2 disk, 1 GiB of memory, headless, root logging in with the build's key.
`validate_bootstrap()` adds the checks that span several keys (suite, partition layout, disk size).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

from vmbake import aptproxy, arch
from vmbake.config.fields import Decoder, opt
from vmbake.config.login import LoginConfig, validate_login
from vmbake.config.qemu import CommConfig, HTTPConfig, MachineConfig, ShutdownConfig
from vmbake.errors import Problem
from vmbake.units import format_size, size_text

MiB = 1 << 20
GiB = 1 << 30

SUITES = ("buster", "bullseye", "bookworm", "trixie", "forky", "sid")
KERNELS = ("linux-image-amd64", "linux-image-cloud-amd64", "linux-image-arm64", "linux-image-cloud-arm64")
ARCHITECTURES = ("amd64", "arm64")
FIRMWARES = ("bios", "efi", "hybrid")
VARIANTS = ("extract", "custom", "essential", "apt", "required", "minbase", "buildd", "important", "standard")
FILESYSTEMS = ("ext4", "ext3", "ext2", "swap")
MOUNTPOINTS = ("/", "/boot", "/var", "/tmp", "swap")
PROVISION_STAGES = ("vm", "tree")
DPKG_EXCLUDE_SETS = ("docs", "man", "info", "locales", "hwdb")

DEFAULT_MIRROR = "http://deb.debian.org/debian"
ARCHIVE_MIRROR = "http://archive.debian.org/debian"  # suites that left the main mirrors

# Space the finished root filesystem needs, with room for `apt-get update` and an upgrade during
# provisioning. Measured from minimal images with the dpkg excludes on; an estimate, not a promise.
_BASE_ESTIMATE = {
    "buster": 700 * MiB,
    "bullseye": 750 * MiB,
    "bookworm": 768 * MiB,
    "trixie": 832 * MiB,
    "forky": 864 * MiB,
    "sid": 896 * MiB,
}
_GENERIC_KERNEL_EXTRA = 256 * MiB  # the generic kernel's modules and its larger initramfs

# Space the partition table and the boot partitions take before the user's partitions.
GPT_OVERHEAD = 2 * MiB
BIOS_BOOT_SIZE = 1 * MiB
ESP_SIZE = 64 * MiB


@dataclass(frozen=True)
class Partition:
    """One partition of the disk, in the order given; the ESP and BIOS boot partitions are added by vmbake."""

    mountpoint: str = opt(
        "/", "Where it is mounted: '/', '/boot', '/var', '/tmp', or 'swap'", choices=MOUNTPOINTS
    )
    size: int | None = opt(
        "", "Its size (512M, 1G); empty takes the rest of the disk (one partition at most)", kind="size"
    )
    fs: str = opt("ext4", "Its filesystem: ext4 (required for '/'), ext3, ext2, or swap", choices=FILESYSTEMS)


@dataclass(frozen=True)
class BootstrapConfig(HTTPConfig, ShutdownConfig, CommConfig, MachineConfig, LoginConfig):
    """Every key of a `debian-bootstrap` builder block."""

    # -- what goes into the root filesystem --------------------------------------------------------------
    suite: str = opt(
        "bookworm", "Debian suite to install: buster, bullseye, bookworm, trixie, forky or sid", vmbake=True
    )
    mirror: str = opt(
        "", "Debian mirror (default: deb.debian.org; archive.debian.org for buster)", vmbake=True
    )
    variant: str = opt(
        "apt", "mmdebstrap variant: the package set the image starts from", choices=VARIANTS, vmbake=True
    )
    include: list[str] = opt(factory=list, doc="Extra packages to install", vmbake=True)
    exclude: list[str] = opt(
        factory=list,
        doc="Packages left out of vmbake's default set, or purged after the bootstrap",
        vmbake=True,
    )
    components: list[str] = opt(
        factory=lambda: ["main"], doc="Archive components (main, contrib, ...)", vmbake=True
    )
    kernel: str = opt(
        "linux-image-amd64",
        "Kernel package: linux-image-ARCH or linux-image-cloud-ARCH (default: the architecture's generic one)",
        choices=KERNELS,
        vmbake=True,
    )
    architecture: str = opt(
        "amd64",
        "Debian architecture of the image: amd64, or arm64 (mmdebstrap through qemu-user and binfmt on an "
        "amd64 host, grub-efi-arm64 on an ESP, booted by qemu-system-aarch64 -M virt with AAVMF)",
        choices=ARCHITECTURES,
        vmbake=True,
    )
    hostname: str = opt("debian", "Host name of the image", vmbake=True)
    domain: str = opt("", "DNS domain of the image (written to /etc/hosts)", vmbake=True)
    locale: str = opt(
        "C.UTF-8", "Default locale; anything but C.UTF-8 installs the locales package", vmbake=True
    )
    timezone: str = opt("Etc/UTC", "Time zone (Area/City); anything but Etc/UTC installs tzdata", vmbake=True)
    keyboard: str = opt(
        "us", "Console keyboard layout (XKB name); anything but us installs console-setup", vmbake=True
    )
    keep_build_key: bool = opt(
        False, "Leave the build's temporary key in root's authorized_keys", vmbake=True
    )
    firmware: str = opt(
        "bios",
        "Boot firmware of the disk: bios, efi, or hybrid (BIOS and UEFI on one GPT disk)",
        choices=FIRMWARES,
        vmbake=True,
    )
    partitions: list[Partition] = opt(
        factory=list,
        doc="Partition layout (mountpoint, size, fs); empty: one ext4 root filling the disk",
        vmbake=True,
    )
    dpkg_excludes: list[str] = opt(
        factory=lambda: list(DPKG_EXCLUDE_SETS),
        doc="Kept off the disk by dpkg path-exclude: docs, man, info, locales, hwdb (udev hardware names), /globs",
        vmbake=True,
    )
    apt_proxy: str = opt(
        "",
        "HTTP package proxy for mmdebstrap during the build only (never left in the image); "
        "default: APT_PROXY or http_proxy from the environment",
        vmbake=True,
    )
    initramfs: str = opt(
        "vm",
        "Drivers in the initramfs: 'vm' (virtio, SATA, IDE, SCSI, NVMe disks; small) or 'most' (Debian's); "
        "either way RESUME=none (the image waits for no hibernation image)",
        choices=("vm", "most"),
        vmbake=True,
    )
    kernel_cmdline: str = opt(
        "console=tty0 console=ttyS0,115200",
        "Kernel command line written to the image's grub config",
        vmbake=True,
    )
    grub_timeout: int = opt(
        0,
        "Seconds grub shows its menu before booting (0: boots at once, about 2 s sooner under TCG)",
        minimum=0,
        maximum=600,
        vmbake=True,
    )
    provision_stage: str = opt(
        "vm",
        "Where the provisioners and shutdown_command run: 'vm' (in the booted guest, over the communicator) "
        "or 'tree' (in a chroot of the image before its first boot, at the host's speed; the guest then "
        "boots once, on a throw-away snapshot, to be checked)",
        choices=PROVISION_STAGES,
        vmbake=True,
    )
    mmdebstrap_args: list[str] = opt(
        factory=list, doc="Extra arguments passed to mmdebstrap as they are", vmbake=True
    )
    # -- defaults that differ from the qemu builder -----------------------------------------------------------
    disk_size: int = opt("2G", "Disk size: a number (MiB) or with a unit (2048M, 2G)", kind="size")
    memory: int = opt(1024, "Memory in MiB", minimum=1)
    headless: bool = opt(True, "Do not show a display window")
    ssh_username: str = opt("root", "User to log in as (root: the build's key is in root's authorized_keys)")
    shutdown_command: str = opt(
        "systemctl poweroff",
        "Command run over the communicator to halt the guest; with provision_stage 'tree' it runs in the "
        "image tree after the provisioners, to clean up, and there is none unless given",
        runtime=True,
    )


def with_stage_defaults(config: BootstrapConfig, given: Collection[str]) -> BootstrapConfig:
    """`config` with no shutdown_command in the tree stage unless the template gave one: the tree is a
    chroot of the image, with nothing to power off (the default `systemctl poweroff` fails there)."""
    if config.provision_stage != "tree" or "shutdown_command" in given:
        return config
    return dataclasses.replace(config, shutdown_command="")


def with_arch_defaults(config: BootstrapConfig, given: Collection[str]) -> BootstrapConfig:
    """`config` with the defaults of its architecture for the keys the template did not give (`given`):
    for arm64 the arm64 kernel, UEFI, the PL011 serial console, and qemu-system-aarch64's machine."""
    target = arch.of(config.architecture)
    if target is arch.AMD64:
        return config
    config = dataclasses.replace(
        config,
        qemu_binary=config.qemu_binary if "qemu_binary" in given else target.qemu_binary,
        kernel=config.kernel if "kernel" in given else target.kernel,
        firmware=config.firmware if "firmware" in given else "efi",
        kernel_cmdline=config.kernel_cmdline
        if "kernel_cmdline" in given
        else f"console={target.console},115200",
    )
    return arch.machine_defaults(config, given)


def effective_mirror(config: BootstrapConfig) -> str:
    """The mirror the build uses: the key, else the suite's default."""
    if config.mirror:
        return config.mirror
    return ARCHIVE_MIRROR if config.suite == "buster" else DEFAULT_MIRROR


def content_estimate(suite: str, kernel: str) -> int:
    """Bytes the root filesystem needs for `suite` with `kernel` (see _BASE_ESTIMATE)."""
    base = _BASE_ESTIMATE.get(suite, max(_BASE_ESTIMATE.values()))
    return base + (_GENERIC_KERNEL_EXTRA if kernel in ("linux-image-amd64", "linux-image-arm64") else 0)


def effective_partitions(config: BootstrapConfig) -> list[Partition]:
    return list(config.partitions) or [Partition("/", None, "ext4")]


def boot_overhead(firmware: str) -> int:
    """Bytes before the user's partitions: GPT, BIOS boot partition, ESP."""
    size = GPT_OVERHEAD
    if firmware in ("bios", "hybrid"):
        size += BIOS_BOOT_SIZE
    if firmware in ("efi", "hybrid"):
        size += ESP_SIZE
    return size


_HOSTNAME = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def validate_bootstrap(
    config: BootstrapConfig, out: Decoder | list[Problem], path: str = "", file: str = ""
) -> None:
    """Checks that span keys: the suite, the partition layout, and a disk large enough for the content.

    Problems go to `out`: a Decoder (with its file and line lookup) or a plain list.
    """
    report = _reporter(out, path, file)
    if config.suite not in SUITES:
        close = difflib.get_close_matches(config.suite, SUITES, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        report("suite", f"unknown Debian suite {config.suite!r}", hint + "valid suites: " + ", ".join(SUITES))
    if config.hostname and not _HOSTNAME.match(config.hostname):
        report(
            "hostname",
            f"{config.hostname!r} is not a valid host name",
            "use letters, digits and '-' (63 at most)",
        )
    validate_login(config, report)
    proxy_problem = (
        aptproxy.url_problem(config.apt_proxy) if config.apt_proxy and "{{" not in config.apt_proxy else ""
    )
    if proxy_problem:
        report("apt_proxy", proxy_problem, "an apt caching proxy such as apt-cacher-ng: http://HOST:3142")
    for i, item in enumerate(config.dpkg_excludes):
        if item not in DPKG_EXCLUDE_SETS and not item.startswith("/"):
            report(f"dpkg_excludes[{i}]", f"{item!r} is neither a set nor a path glob",
                   "use docs, man, info, locales, hwdb, or a glob starting with '/'")  # fmt: skip
    kept = {config.kernel, "openssh-server", "systemd-sysv"}
    for i, name in enumerate(config.exclude):
        if name in kept:
            report(
                f"exclude[{i}]", f"{name!r} cannot be excluded", "the image needs it to boot and be reached"
            )
    _check_arch(config, report)
    if config.format not in ("qcow2", "raw"):
        report("format", f"format {config.format!r} is not supported by debian-bootstrap", "use qcow2 or raw")
    _check_layout(config, report)


def _check_arch(config: BootstrapConfig, report: Callable[[str, str, str], None]) -> None:
    """The kernel and firmware fit the architecture, and the host has what building it takes."""
    target = arch.of(config.architecture)
    if config.kernel not in target.kernels:
        report("kernel", f"kernel {config.kernel!r} is not an {target.name} kernel",
               f"use {' or '.join(target.kernels)}, or leave kernel out")  # fmt: skip
    if config.firmware not in target.firmwares:
        report("firmware", f"an {target.name} image cannot boot with firmware {config.firmware!r}",
               f"use firmware {' or '.join(repr(f) for f in target.firmwares)}, or leave firmware out")  # fmt: skip


def host_problem(config: BootstrapConfig) -> tuple[str, str] | None:
    """(what this host lacks to build `config`'s architecture, the packages to install), or None.
    Checked when the build starts, not by validate: a template may hold an arm64 build that this host
    never runs, as Packer's templates hold builds for other hypervisors."""
    target = arch.of(config.architecture)
    missing = arch.host_problems(target)
    if not missing:
        return None
    return (
        f"building {target.name} images here needs "
        + "; ".join(f"{m.what} (Debian package {m.package})" for m in missing),
        "apt-get install "
        + " ".join(dict.fromkeys(m.package for m in missing))
        + " (scripts/install-deps.sh installs them and registers the binfmt entry)",
    )


def _reporter(out: Decoder | list[Problem], path: str, file: str) -> Callable[[str, str, str], None]:
    def report(key: str, message: str, hint: str = "") -> None:
        full = f"{path}.{key}" if path else key
        if isinstance(out, Decoder):
            out.problem(full, message, hint)
        else:
            out.append(Problem(file, full, message, hint))

    return report


def _check_layout(config: BootstrapConfig, report: Callable[[str, str, str], None]) -> None:
    disk = config.disk_size
    parts = effective_partitions(config)
    roots = [i for i, p in enumerate(parts) if p.mountpoint == "/"]
    where = "partitions"
    if not roots:
        report(where, "the layout has no root partition", 'add {"mountpoint": "/", "fs": "ext4"}')
    elif len(roots) > 1:
        report(
            where,
            f"the layout has {len(roots)} root partitions",
            "keep exactly one partition with mountpoint '/'",
        )
    seen: set[str] = set()
    for i, p in enumerate(parts):
        if p.mountpoint in seen and p.mountpoint != "swap":
            report(f"{where}[{i}].mountpoint", f"{p.mountpoint!r} appears twice", "give each mountpoint once")
        seen.add(p.mountpoint)
        if p.mountpoint == "/" and p.fs != "ext4":
            report(f"{where}[{i}].fs", f"the root filesystem must be ext4, not {p.fs!r}", "set fs to ext4")
        if (p.mountpoint == "swap") != (p.fs == "swap"):
            report(f"{where}[{i}]", "swap needs both mountpoint 'swap' and fs 'swap'", "set both, or neither")
    rest = [i for i, p in enumerate(parts) if p.size is None]
    if len(rest) > 1:
        report(
            where, f"{len(rest)} partitions have no size", "only one partition may take the rest of the disk"
        )
    overhead = boot_overhead(config.firmware)
    fixed = sum(p.size for p in parts if p.size is not None)
    room = disk - overhead
    if fixed > room or (rest and fixed >= room):
        report(
            where,
            f"the partitions need {format_size(fixed)} plus {format_size(overhead)} for the partition table and boot "
            f"partitions, more than disk_size {size_text(disk)} ({format_size(disk)})",
            "shrink the partitions or raise disk_size",
        )
        return
    # The content check: everything but swap and /tmp holds the system.
    need = content_estimate(config.suite, config.kernel)
    system = 0
    for p in parts:
        if p.mountpoint in ("swap", "/tmp"):
            continue
        system += p.size if p.size is not None else room - fixed
    if system < need:
        report(
            "disk_size",
            f"disk_size {size_text(disk)} leaves {format_size(system)} for the system, less than the estimated "
            f"{format_size(need)} a {config.suite} image with {config.kernel} needs (base system, kernel, "
            "initramfs and room for apt)",
            f"raise disk_size to at least {_round_up(disk + need - system)}",
        )


def _round_up(nbytes: int) -> str:
    mib = -(-nbytes // MiB)
    return f"{mib}M" if mib % 1024 else f"{mib // 1024}G"
