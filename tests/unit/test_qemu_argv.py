"""The QEMU command line: exact lists for the defaults, the qemuargs override rules and the disk options."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vmbake.config.qemu import QemuConfig
from vmbake.errors import VmbakeError
from vmbake.qemu_argv import RunFacts, display_arg, host_cpus, qemu_argv, smp_arg
from vmbake.state import BuildState

FACTS = RunFacts(vm_name="vm", accelerator="tcg")
DISK = Path("out/vm")


def state(**changes: object) -> BuildState:
    s = BuildState(
        iso_path=Path("/isos/netinst.iso"),
        output_dir=Path("out"),
        disk_paths=[DISK],
        http_port=8123,
        vnc_port=5907,
        ssh_host_port=2999,
        net_probe_port=3001,
        qmp_path=Path("/w/qmp.sock"),
        console_log=Path("out/vm.console.log"),
    )
    for key, value in changes.items():
        setattr(s, key, value)
    return s


def base_tail() -> list[str]:
    return ["-qmp", "unix:/w/qmp.sock,server=on,wait=off", "-serial", "file:out/vm.console.log"]


def test_defaults_for_an_installer_iso() -> None:
    argv = qemu_argv(QemuConfig(headless=True), state(), FACTS)
    assert argv == [
        "qemu-system-x86_64",
        "-name", "vm",
        "-machine", "type=pc,accel=tcg",
        "-smp", "1",
        "-m", "512M",
        "-boot", "once=d",
        "-drive", "file=out/vm,if=virtio,cache=unsafe,discard=unmap,format=qcow2,detect-zeroes=unmap",
        "-drive", "file=/isos/netinst.iso,media=cdrom",
        "-device", "virtio-net,netdev=user.0",
        "-netdev", "user,id=user.0,hostfwd=tcp:127.0.0.1:2999-:22,hostfwd=tcp:127.0.0.1:3001-:1",
        "-vnc", "127.0.0.1:7,share=force-shared",
        "-display", "none",
        *base_tail(),
    ]  # fmt: skip


def test_disk_image_boots_from_disk_without_the_iso_as_cdrom() -> None:
    config = QemuConfig(disk_image=True, communicator="none", headless=True, disable_vnc=True)
    argv = qemu_argv(config, state(vnc_port=None, ssh_host_port=None, net_probe_port=None), FACTS)
    assert argv[argv.index("-boot") + 1] == "c"
    assert "media=cdrom" not in " ".join(argv)
    assert "-vnc" not in argv
    assert argv[argv.index("-netdev") + 1] == "user,id=user.0"


def test_qemuargs_replace_the_defaults_of_their_flag_and_keep_the_order() -> None:
    config = QemuConfig(
        headless=True,
        qemuargs=[
            ["-m", "2048M"],
            ["-smp", "cpus=2,", "sockets=1"],
            ["-foo"],
            ["-bar", "{{ .HTTPIP }}:{{.HTTPPort}}/{{ .Name }}/{{ .OutputDir }}/{{ .SSHHostPort }}"],
            ["-device", "virtio-rng-pci"],
            ["-device", "e1000,netdev=user.0"],
        ],
    )
    argv = qemu_argv(config, state(), FACTS)
    assert argv == [
        "qemu-system-x86_64",
        "-name", "vm",
        "-machine", "type=pc,accel=tcg",
        "-smp", "cpus=2,sockets=1",
        "-m", "2048M",
        "-boot", "once=d",
        "-drive", "file=out/vm,if=virtio,cache=unsafe,discard=unmap,format=qcow2,detect-zeroes=unmap",
        "-drive", "file=/isos/netinst.iso,media=cdrom",
        "-device", "virtio-rng-pci",
        "-device", "e1000,netdev=user.0",
        "-device", "virtio-net,netdev=user.0",  # Packer adds the NIC back when no -device names it
        "-netdev", "user,id=user.0,hostfwd=tcp:127.0.0.1:2999-:22,hostfwd=tcp:127.0.0.1:3001-:1",
        "-vnc", "127.0.0.1:7,share=force-shared",
        "-display", "none",
        *base_tail(),
        "-foo",
        "-bar", "10.0.2.2:8123/vm/out/2999",
    ]  # fmt: skip


def test_user_drive_replaces_every_default_drive() -> None:
    config = QemuConfig(headless=True, qemuargs=[["-drive", "file=my.img,if=ide"]])
    argv = qemu_argv(config, state(), FACTS)
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert drives == ["file=my.img,if=ide"]


def test_serial_from_qemuargs_replaces_the_console_capture_but_qmp_stays() -> None:
    config = QemuConfig(
        headless=True, qemuargs=[["-serial", "stdio"], ["-qmp", "tcp:127.0.0.1:4444,server=on"]]
    )
    argv = qemu_argv(config, state(), FACTS)
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-serial"] == ["stdio"]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-qmp"] == [
        "unix:/w/qmp.sock,server=on,wait=off",
        "tcp:127.0.0.1:4444,server=on",
    ]


def test_unknown_placeholder_is_an_error_naming_the_valid_ones() -> None:
    config = QemuConfig(qemuargs=[["-x", "{{ .Nope }}"]])
    with pytest.raises(VmbakeError) as info:
        qemu_argv(config, state(), FACTS)
    assert "{{ .Nope }}" in str(info.value)
    assert info.value.hint is not None and "{{ .HTTPPort }}" in info.value.hint


@pytest.mark.parametrize(
    ("iface", "devices", "drives"),
    [
        ("ide", [], ["file=out/vm,if=ide,cache=none,discard=unmap,format=raw,detect-zeroes=unmap"]),
        (
            "virtio-scsi",
            ["virtio-scsi-pci,id=scsi0", "scsi-hd,bus=scsi0.0,drive=drive0"],
            ["if=none,file=out/vm,id=drive0,cache=none,discard=unmap,format=raw,detect-zeroes=unmap"],
        ),
        (
            "sata",
            ["ahci,id=ahci0", "ide-hd,drive=drive0,bus=ahci0.0"],
            ["if=none,file=out/vm,id=drive0,cache=none,discard=unmap,format=raw,detect-zeroes=unmap"],
        ),
    ],
)
def test_disk_interfaces_and_options(iface: str, devices: list[str], drives: list[str]) -> None:
    config = QemuConfig(
        disk_image=True,
        disk_interface=iface,
        disk_cache="none",
        disk_discard="unmap",
        disk_detect_zeroes="unmap",
        format="raw",
        headless=True,
    )
    argv = qemu_argv(config, state(), FACTS)
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-device"] == [
        *devices,
        "virtio-net,netdev=user.0",
    ]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"] == drives


@pytest.mark.parametrize(
    ("keys", "drive"),
    [
        # Packer's defaults, written out: Packer's drive options, no detect-zeroes
        (
            {"disk_cache": "writeback", "disk_discard": "ignore", "disk_detect_zeroes": "off"},
            "file=out/vm,if=virtio,cache=writeback,discard=ignore,format=qcow2",
        ),
        # discard 'ignore' alone: QEMU refuses detect-zeroes=unmap without discard=unmap, so 'on'
        (
            {"disk_discard": "ignore"},
            "file=out/vm,if=virtio,cache=unsafe,discard=ignore,format=qcow2,detect-zeroes=on",
        ),
    ],
)
def test_packer_disk_options_can_be_set_back(keys: dict[str, str], drive: str) -> None:
    argv = qemu_argv(QemuConfig(headless=True, **keys), state(), FACTS)
    assert next(argv[i + 1] for i, a in enumerate(argv) if a == "-drive") == drive


def test_additional_disks_and_cd_files_image() -> None:
    s = state(disk_paths=[DISK, Path("out/vm-1")], cd_path=Path("/w/cd.iso"))
    argv = qemu_argv(QemuConfig(headless=True), s, FACTS)
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"] == [
        "file=out/vm,if=virtio,cache=unsafe,discard=unmap,format=qcow2,detect-zeroes=unmap",
        "file=out/vm-1,if=virtio,cache=unsafe,discard=unmap,format=qcow2,detect-zeroes=unmap",
        "file=/isos/netinst.iso,media=cdrom",
        "file=/w/cd.iso,media=cdrom",
    ]


def test_efi_boot_uses_ovmf_pflash_and_no_boot_order() -> None:
    config = QemuConfig(efi_boot=True, headless=True)
    argv = qemu_argv(config, state(efivars_path=Path("out/efivars.fd")), FACTS)
    assert "-boot" not in argv
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert drives[-2:] == [
        "file=/usr/share/OVMF/OVMF_CODE_4M.fd,if=pflash,unit=0,format=raw,readonly=on",
        "file=out/efivars.fd,if=pflash,unit=1,format=raw",
    ]


def test_firmware_as_bios_or_pflash() -> None:
    argv = qemu_argv(QemuConfig(firmware="/fw.bin", headless=True), state(), FACTS)
    assert argv[argv.index("-bios") + 1] == "/fw.bin"
    argv = qemu_argv(QemuConfig(firmware="/fw.bin", use_pflash=True, headless=True), state(), FACTS)
    assert "-bios" not in argv
    assert "file=/fw.bin,if=pflash,format=raw,readonly=on" in argv


def test_machine_cpu_memory_vga_binary_and_accel_none() -> None:
    config = QemuConfig(
        machine_type="q35",
        cpu_model="max",
        memory=1024,
        vga="std",
        qemu_binary="qemu-system-i386",
        headless=True,
    )
    argv = qemu_argv(config, state(), RunFacts(vm_name="vm", accelerator="none"))
    assert argv[0] == "qemu-system-i386"
    assert argv[argv.index("-machine") + 1] == "type=q35"
    assert argv[argv.index("-cpu") + 1] == "max"
    assert argv[argv.index("-m") + 1] == "1024M"
    assert argv[argv.index("-vga") + 1] == "std"


def test_vnc_password_flag() -> None:
    argv = qemu_argv(QemuConfig(vnc_use_password=True, headless=True), state(), FACTS)
    assert argv[argv.index("-vnc") + 1] == "127.0.0.1:7,share=force-shared,password=on"


@pytest.mark.parametrize(
    ("changes", "available", "expected"),
    [
        ({"headless": True}, True, "none"),
        ({}, True, "gtk"),
        ({}, False, "none"),
        ({"display": "sdl"}, False, "sdl"),
        ({"display": "none"}, True, "gtk"),  # Packer reads 'none' as 'let vmbake choose'
        ({"use_default_display": True}, True, None),
    ],
)
def test_display(changes: dict[str, object], available: bool, expected: str | None) -> None:
    assert display_arg(QemuConfig(**changes), available) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cpus", "sockets", "cores", "threads", "expected"),
    [
        (1, 0, 0, 0, "1"),
        (4, 0, 0, 0, "4"),
        (8, 1, 2, 2, "4,sockets=1,cores=2,threads=2"),
        (2, 2, 2, 0, "2,sockets=2,cores=2"),
    ],
)
def test_smp(cpus: int, sockets: int, cores: int, threads: int, expected: str) -> None:
    config = QemuConfig(cpus=cpus, sockets=sockets, cores=cores, threads=threads)
    assert smp_arg(config, host=16) == expected  # what the template says wins over the host's count


@pytest.mark.parametrize(("host", "expected"), [(1, "1"), (2, "2"), (4, "4"), (64, "4")])
def test_smp_default_is_the_hosts_cpus_up_to_four(host: int, expected: str) -> None:
    assert smp_arg(QemuConfig(), host=host) == expected
    argv = qemu_argv(
        QemuConfig(headless=True), state(), RunFacts(vm_name="vm", accelerator="tcg", host_cpus=host)
    )
    assert argv[argv.index("-smp") + 1] == expected


def test_host_cpus_follows_the_affinity_mask() -> None:
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})
        assert host_cpus() == 1
    finally:
        os.sched_setaffinity(0, before)
    assert host_cpus() == len(before)


def test_kernel_boot_fills_placeholders_in_kernel_args() -> None:
    config = QemuConfig(
        installer_boot="kernel", kernel_args="url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/p.cfg", headless=True
    )
    s = state(kernel_path=Path("/w/linux"), initrd_path=Path("/w/initrd.gz"))
    argv = qemu_argv(config, s, FACTS)
    i = argv.index("-kernel")
    assert argv[i : i + 7] == [
        "-kernel", "/w/linux", "-initrd", "/w/initrd.gz", "-append", "url=http://10.0.2.2:8123/p.cfg", "-no-reboot",
    ]  # fmt: skip
