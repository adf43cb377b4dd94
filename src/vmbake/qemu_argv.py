"""The QEMU command line, built by pure functions (no I/O), so tests compare exact lists.

Semantics follow Packer's QEMU builder: vmbake computes default arguments per flag, then each flag named
in `qemuargs` replaces all of vmbake's defaults for that flag (a flag may repeat). When `-device` is
overridden and no value mentions the network device, the NIC is added back so the guest keeps its network.
Unlike Packer, the order is stable: defaults in a fixed order (an overridden flag keeps its place), then
flags only the user gave, in the order given.

Beyond Packer, vmbake always opens a QMP socket, and captures the serial console to a file unless
`qemuargs` sets `-serial`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vmbake import placeholders as runtime
from vmbake.arch import cpu_default
from vmbake.comm.probe import NET_PROBE_GUEST_PORT
from vmbake.config.qemu import QemuConfig
from vmbake.errors import VmbakeError
from vmbake.state import BuildState

# Flags whose vmbake default is kept even when qemuargs names them: vmbake needs its own QMP socket.
_ALWAYS_KEPT = frozenset({"-qmp"})
_PLACEHOLDER = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")


def vm_name_of(config: QemuConfig, build_name: str) -> str:
    """The VM's name and the main disk's file name (Packer: packer-BUILDNAME)."""
    return config.vm_name or f"packer-{build_name}"


def output_dir_of(config: QemuConfig, build_name: str) -> Path:
    """Where the artifacts go (Packer: output-BUILDNAME, relative to the working directory)."""
    return Path(config.output_directory or f"output-{build_name}")


@dataclass(frozen=True)
class RunFacts:
    """What the argv needs besides the config and the build state (kept explicit so tests are exact)."""

    vm_name: str
    accelerator: str  # resolved: kvm, tcg, ... (never "")
    display_available: bool = False  # a graphical session is there (DISPLAY or WAYLAND_DISPLAY)
    host_cpus: int = 1  # CPUs this process may run on (see host_cpus()); the default vCPU count


# With no cpus, sockets, cores or threads in the template, the build VM gets the host's CPUs, up to this
# many. Under TCG each vCPU is a host thread: on a 2-core host, a disk-image build of bookworm reached SSH
# 27-35 s after it started with 2 vCPUs, against 47-53 s with Packer's 1. The cap keeps a big host's
# parallel builds from each asking for every core.
DEFAULT_MAX_CPUS = 4


def host_cpus() -> int:
    """How many CPUs this process may run on (its affinity mask, so taskset and cpusets count)."""
    return len(os.sched_getaffinity(0)) or 1


def smp_arg(config: QemuConfig, host: int = 1) -> str:
    """-smp as Packer computes it (cpus, capped by or defaulted from sockets*cores*threads), except that
    with none of those set the VM gets `host` CPUs, at most DEFAULT_MAX_CPUS, instead of Packer's 1."""
    topology = [n for n in (config.sockets, config.cores, config.threads) if n > 0]
    total = 0
    if topology:
        total = 1
        for n in topology:
            total *= n
    count = config.cpus or total or max(1, min(host, DEFAULT_MAX_CPUS))
    if total and count > total:
        count = total
    text = str(count)
    for key, value in (("sockets", config.sockets), ("cores", config.cores), ("threads", config.threads)):
        if value > 0:
            text += f",{key}={value}"
    return text


def _drive_options(config: QemuConfig) -> str:
    return f"cache={config.disk_cache},discard={config.disk_discard},format={config.format}"


def disk_args(config: QemuConfig, state: BuildState) -> tuple[list[str], list[str]]:
    """(-device values, -drive values) for the hard disks, CD-ROMs and firmware flash."""
    devices: list[str] = []
    drives: list[str] = []
    detect = config.disk_detect_zeroes
    if detect == "unmap" and config.disk_discard != "unmap":
        detect = "on"  # QEMU refuses detect-zeroes=unmap without discard=unmap
    zeroes = f",detect-zeroes={detect}" if detect != "off" else ""
    scsi_bus = False
    for i, path in enumerate(state.disk_paths):
        if config.disk_interface == "virtio-scsi":
            if not scsi_bus:
                devices.append("virtio-scsi-pci,id=scsi0")
                scsi_bus = True
            devices.append(f"scsi-hd,bus=scsi0.0,drive=drive{i}")
            drives.append(f"if=none,file={path},id=drive{i},{_drive_options(config)}{zeroes}")
        elif config.disk_interface == "sata":
            # QEMU has no if=sata: attach an AHCI controller and put each disk on its own port.
            if i == 0:
                devices.append("ahci,id=ahci0")
            devices.append(f"ide-hd,drive=drive{i},bus=ahci0.{i}")
            drives.append(f"if=none,file={path},id=drive{i},{_drive_options(config)}{zeroes}")
        else:
            drives.append(f"file={path},if={config.disk_interface},{_drive_options(config)}{zeroes}")
    devices.append(f"{config.net_device},netdev=user.0")

    cds: list[Path] = []
    # With installer_boot 'kernel' the ISO stays attached: d-i finds its packages there. The installer
    # reboot step clears iso_path, so the system installed on the disk boots without it.
    if not config.disk_image and state.iso_path is not None:
        cds.append(state.iso_path)
    if state.cd_path is not None:
        cds.append(state.cd_path)
    for i, cd in enumerate(cds):
        if config.cdrom_interface == "":
            drives.append(f"file={cd},media=cdrom")
        elif config.cdrom_interface == "virtio-scsi":
            if not scsi_bus:
                devices.append("virtio-scsi-pci,id=scsi0")
                scsi_bus = True
            drives.append(f"file={cd},if=none,id=cdrom{i},media=cdrom")
            devices.append(f"scsi-cd,drive=cdrom{i}")
        else:
            drives.append(f"file={cd},if={config.cdrom_interface},index={i},id=cdrom{i},media=cdrom")

    if config.firmware and config.use_pflash:
        drives.append(f"file={config.firmware},if=pflash,format=raw,readonly=on")
    if config.efi_boot:
        drives.append(f"file={config.efi_firmware_code},if=pflash,unit=0,format=raw,readonly=on")
        if state.efivars_path is None:
            raise VmbakeError(
                "efi_boot is set but no EFI vars file was prepared", hint="this is a vmbake bug"
            )
        drives.append(f"file={state.efivars_path},if=pflash,unit=1,format=raw")
    return devices, drives


def default_args(config: QemuConfig, state: BuildState, facts: RunFacts) -> list[tuple[str, list[str]]]:
    """vmbake's defaults as (flag, values) in their fixed order; an empty value list means a bare flag."""
    args: list[tuple[str, list[str]]] = [("-name", [facts.vm_name])]
    if facts.accelerator == "none":
        args.append(("-machine", [f"type={config.machine_type}"]))
    else:
        args.append(("-machine", [f"type={config.machine_type},accel={facts.accelerator}"]))
    cpu = config.cpu_model or cpu_default(config.qemu_binary, facts.accelerator)
    if cpu:
        args.append(("-cpu", [cpu]))
    args.append(("-smp", [smp_arg(config, facts.host_cpus)]))
    args.append(("-m", [f"{config.memory}M"]))
    if not config.efi_boot:
        args.append(("-boot", ["c" if config.disk_image else "once=d"]))
    if config.firmware and not config.use_pflash:
        args.append(("-bios", [config.firmware]))
    if state.floppy_path is not None:
        args.append(("-fda", [str(state.floppy_path)]))
    devices, drives = disk_args(config, state)
    if drives:
        args.append(("-drive", drives))
    args.append(("-device", devices))
    netdev = "user,id=user.0"
    if config.communicator != "none" and state.ssh_host_port is not None:
        # Loopback only (Packer forwards on every address): the guest's SSH is not shown to the network.
        netdev += f",hostfwd=tcp:127.0.0.1:{state.ssh_host_port}-:{config.ssh_port}"
        if state.net_probe_port is not None:
            # A guest port where nothing listens: its resets tell the SSH wait that the network is up.
            netdev += f",hostfwd=tcp:127.0.0.1:{state.net_probe_port}-:{NET_PROBE_GUEST_PORT}"
    args.append(("-netdev", [netdev]))
    if state.vnc_port is not None:
        # force-shared: a viewer asking for exclusive access must not disconnect the typing session.
        vnc = f"{config.vnc_bind_address}:{state.vnc_port - 5900},share=force-shared"
        if config.vnc_use_password:
            vnc += ",password=on"
        args.append(("-vnc", [vnc]))
    display = display_arg(config, facts.display_available)
    if display is not None:
        args.append(("-display", [display]))
    if config.vga:
        args.append(("-vga", [config.vga]))
    if state.kernel_path is not None:
        args.append(("-kernel", [str(state.kernel_path)]))
        if state.initrd_path is not None:
            args.append(("-initrd", [str(state.initrd_path)]))
        if config.kernel_args:
            args.append(
                ("-append", [fill_placeholders(config.kernel_args, placeholders(config, state, facts))])
            )
        # The installer's end (power-off or reboot) must end QEMU: the next boot is from the disk.
        args.append(("-no-reboot", []))
    if state.qmp_path is not None:
        args.append(("-qmp", [f"unix:{state.qmp_path},server=on,wait=off"]))
    if state.console_log is not None:
        args.append(("-serial", [f"file:{state.console_log}"]))
    return args


def display_arg(config: QemuConfig, display_available: bool) -> str | None:
    """-display: none when headless or without a graphical session; Packer reads display 'none' as 'default'."""
    if config.headless:
        return "none"
    if config.display and config.display != "none":
        return config.display
    if config.use_default_display:
        return None
    return "gtk" if display_available else "none"


def placeholders(config: QemuConfig, state: BuildState, facts: RunFacts) -> dict[str, str]:
    """What `{{ .X }}` reads in qemuargs and kernel_args (vmbake.placeholders gives Packer's set)."""
    # qemuargs reads no build name: Packer's data for it has none.
    return runtime.from_state(
        config, state, build_name="", builder_type="qemu", vm_name=facts.vm_name
    ).qemuargs()


def fill_placeholders(text: str, values: Mapping[str, str]) -> str:
    """Replace {{ .Name }}-style placeholders; an unknown one is an error naming the valid ones."""

    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise VmbakeError(
                f"qemuargs: unknown placeholder {match.group(0)!r}",
                hint="valid placeholders: " + ", ".join("{{ ." + k + " }}" for k in sorted(values)),
            )
        return values[key]

    return _PLACEHOLDER.sub(one, text)


def user_args(config: QemuConfig, values: Mapping[str, str]) -> list[tuple[str, list[str]]]:
    """qemuargs as (flag, values) with placeholders filled; the parts after the flag are joined as Packer does."""
    grouped: dict[str, list[str]] = {}
    for row in config.qemuargs:
        if not row:
            continue
        flag = fill_placeholders(row[0], values)
        value = "".join(fill_placeholders(part, values) for part in row[1:])
        grouped.setdefault(flag, [])
        if value:
            grouped[flag].append(value)
    return list(grouped.items())


def qemu_argv(config: QemuConfig, state: BuildState, facts: RunFacts) -> list[str]:
    """The full QEMU argv (program first), with qemuargs merged over the defaults."""
    defaults = default_args(config, state, facts)
    users = dict(user_args(config, placeholders(config, state, facts)))
    merged: list[tuple[str, list[str]]] = []
    for flag, values in defaults:
        if flag in users and flag not in _ALWAYS_KEPT:
            merged.append((flag, users.pop(flag)))
        elif flag in users:
            merged.append((flag, values + users.pop(flag)))
        else:
            merged.append((flag, values))
    merged.extend(users.items())
    for i, (flag, values) in enumerate(merged):
        if flag == "-device" and config.net_device not in "".join(values):
            merged[i] = (flag, [*values, f"{config.net_device},netdev=user.0"])
    argv = [config.qemu_binary]
    for flag, values in merged:
        if not values:
            argv.append(flag)
        for value in values:
            argv += [flag, value]
    return argv
