"""Guest architectures: what differs between an amd64 and an arm64 (aarch64) image and machine.

Pure data and pure functions. `ARCHES` says, per Debian architecture, which QEMU program, machine, kernel
package, boot loader and firmware a guest needs. `machine_defaults` turns a decoded builder config's
x86 defaults into aarch64 ones when the template chose the aarch64 QEMU (debian-bootstrap's
`architecture = "arm64"` chooses it: config.bootstrap.with_arch_defaults), leaving every key the template
gave alone. `host_problems` names the Debian packages an arm64 build
needs on an amd64 host (qemu-user through binfmt for mmdebstrap, qemu-system-arm and AAVMF to boot).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from vmbake.config.qemu import MachineConfig

X86_MACHINE = "pc"
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
AAVMF_CODE = "/usr/share/AAVMF/AAVMF_CODE.fd"
AAVMF_VARS = "/usr/share/AAVMF/AAVMF_VARS.fd"
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")


@dataclass(frozen=True)
class Arch:
    """One Debian architecture as a QEMU guest."""

    name: str  # Debian's name: amd64, arm64
    uname: str  # the kernel's name (uname -m): x86_64, aarch64
    qemu_binary: str
    machine_type: str
    kernel: str  # the default kernel package
    kernels: tuple[str, ...]  # the kernel packages valid for it
    grub_efi: str  # the EFI grub package
    grub_efi_target: str  # grub-mkimage -O, and the module directory under /usr/lib/grub
    efi_loader: str  # the removable-media loader on the ESP
    root_type: str  # GPT type of its root partition (Discoverable Partitions Specification)
    console: str  # the first serial port's device name
    efi_code: str
    efi_vars: str
    firmwares: tuple[str, ...]  # the debian-bootstrap `firmware` values it can boot with


AMD64 = Arch(
    "amd64", "x86_64", "qemu-system-x86_64", X86_MACHINE, "linux-image-amd64",
    ("linux-image-amd64", "linux-image-cloud-amd64"), "grub-efi-amd64", "x86_64-efi", "BOOTX64.EFI",
    "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "ttyS0", OVMF_CODE, OVMF_VARS, ("bios", "efi", "hybrid"),
)  # fmt: skip
ARM64 = Arch(
    "arm64", "aarch64", "qemu-system-aarch64", "virt", "linux-image-arm64",
    ("linux-image-arm64", "linux-image-cloud-arm64"), "grub-efi-arm64", "arm64-efi", "BOOTAA64.EFI",
    "B921B045-1DF0-41C3-AF44-4C6F280D3FAE", "ttyAMA0", AAVMF_CODE, AAVMF_VARS, ("efi",),
)  # fmt: skip
ARCHES = {a.name: a for a in (AMD64, ARM64)}
BY_ROOT_TYPE = {a.root_type.lower(): a for a in ARCHES.values()}


def of(name: str) -> Arch:
    return ARCHES.get(name, AMD64)


def of_binary(qemu_binary: str) -> Arch | None:
    """The architecture a QEMU program emulates (by its name), None for one vmbake has no defaults for."""
    base = os.path.basename(qemu_binary)
    return next((a for a in ARCHES.values() if base == a.qemu_binary), None)


def host_arch() -> str:
    """The host's Debian architecture name (amd64 on x86_64, arm64 on aarch64), else its uname -m."""
    machine = platform.machine()
    return next((a.name for a in ARCHES.values() if a.uname == machine), machine)


# `max` under TCG, with QEMU's own pointer-authentication algorithm instead of the architected QARMA5, which
# is slow to emulate: Debian's arm64 kernels sign and check return addresses in every function.
TCG_AARCH64_CPU = "max,pauth-impdef=on"


def cpu_default(qemu_binary: str, accelerator: str) -> str:
    """-cpu when the template gives none: aarch64's virt machine defaults to a 32-bit Cortex-A15, which
    cannot run a 64-bit kernel, so it gets `max` under emulation (TCG_AARCH64_CPU) and `host` under KVM.
    x86: QEMU's own."""
    if of_binary(qemu_binary) is not ARM64:
        return ""
    return "host" if accelerator == "kvm" else TCG_AARCH64_CPU


def emulated(qemu_binary: str) -> bool:
    """True when the guest's architecture is not the host's: only TCG can run it."""
    arch = of_binary(qemu_binary)
    return arch is not None and arch.name != host_arch()


_M = TypeVar("_M", bound=MachineConfig)
# qemuargs flags that give the machine its firmware (or a kernel) already: no UEFI default then.
_FIRMWARE_FLAGS = ("-bios", "-pflash", "-kernel")


def machine_defaults(config: _M, given: Collection[str]) -> _M:
    """`config` with the x86 defaults of the keys the template did not give (`given`) replaced by the
    aarch64 ones when it runs qemu-system-aarch64: the `virt` machine, and the UEFI firmware AAVMF
    (Debian's qemu-efi-aarch64), switched on unless `firmware` or qemuargs give one. -cpu is chosen with
    the accelerator, when the VM starts (cpu_default). Packer's plugin keeps its x86 defaults whatever the
    binary; with them qemu-system-aarch64 cannot start, so a working Packer template gives these keys."""
    if of_binary(config.qemu_binary) is not ARM64:
        return config
    changes: dict[str, Any] = {}  # dataclasses.replace keywords
    if "machine_type" not in given:
        changes["machine_type"] = ARM64.machine_type
    if "efi_firmware_code" not in given:
        changes["efi_firmware_code"] = ARM64.efi_code
    if "efi_firmware_vars" not in given:
        changes["efi_firmware_vars"] = ARM64.efi_vars
    own_firmware = any(row and row[0] in _FIRMWARE_FLAGS for row in config.qemuargs)
    # debian-bootstrap's `firmware` is bios/efi (its efi_boot follows it); the qemu builder's a -bios file.
    bootstrap = config.firmware in ("bios", "efi", "hybrid")
    if not bootstrap and "efi_boot" not in given and not config.firmware and not own_firmware:
        changes["efi_boot"] = True
    return dataclasses.replace(config, **changes)


@dataclass(frozen=True)
class HostNeed:
    """Something the host must have for a build of another architecture, and the package that gives it."""

    what: str
    package: str
    present: Callable[[], bool]


def _binfmt_registered(arch: Arch) -> bool:
    entry = BINFMT_DIR / f"qemu-{arch.uname}"
    try:
        return "enabled" in entry.read_text()
    except OSError:
        return False


def _on_path(program: str) -> Callable[[], bool]:
    return lambda: shutil.which(program) is not None


def host_needs(arch: Arch) -> list[HostNeed]:
    """What a debian-bootstrap build of `arch` needs on this host beyond an amd64 build's tools."""
    needs: list[HostNeed] = []
    if arch is ARM64:  # amd64's QEMU and OVMF are among vmbake's base packages
        needs.append(HostNeed(arch.qemu_binary, "qemu-system-arm", _on_path(arch.qemu_binary)))
        needs.append(HostNeed(arch.efi_code, "qemu-efi-aarch64", lambda: Path(arch.efi_code).is_file()))
    if arch.name != host_arch():
        needs.append(
            HostNeed(
                f"qemu-{arch.uname}-static (qemu-user, for mmdebstrap's chroot)",
                "qemu-user-static",
                _on_path(f"qemu-{arch.uname}-static"),
            )
        )
        needs.append(
            HostNeed(
                f"a binfmt_misc entry qemu-{arch.uname} (run {arch.name} programs)",
                "binfmt-support",
                lambda: _binfmt_registered(arch),
            )
        )
    return needs


def host_problems(arch: Arch) -> list[HostNeed]:
    """The needs of `host_needs` this host does not meet."""
    return [need for need in host_needs(arch) if not need.present()]
