"""`vmbake verify`: the fstab/partition judge, the root mount options, flag parsing and the boot argv.

Recorded lsblk/blkid/fstab output stands in for a guest here; booting real images is in
tests/integration/test_report_verify.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmbake.config.qemu import QemuConfig
from vmbake.errors import VmbakeError
from vmbake.qemu_argv import RunFacts, qemu_argv
from vmbake.report.guestcheck import (
    CHECK_CMD,
    block_devices,
    check_guest,
    fstab_problems,
    parse_fstab,
    root_options,
)
from vmbake.state import BuildState
from vmbake.verify import _parse, boot_config, boot_trouble, console_tail

LSBLK = json.dumps(
    {
        "blockdevices": [
            {"name": "vda", "path": "/dev/vda", "uuid": None, "partuuid": None, "label": None,
             "partlabel": None, "fstype": None, "mountpoint": None, "children": [
                {"name": "vda1", "path": "/dev/vda1", "uuid": "0a1b2c3d-1111-2222-3333-444455556666",
                 "partuuid": "aaaa-01", "label": "root", "partlabel": "rootfs", "fstype": "ext4",
                 "mountpoint": "/"},
                {"name": "vda15", "path": "/dev/vda15", "uuid": "ABCD-1234", "partuuid": "aaaa-0f",
                 "label": None, "partlabel": "esp", "fstype": "vfat", "mountpoint": "/boot/efi"},
            ]},
        ]
    }
)  # fmt: skip
FSTAB = """# /etc/fstab: static file system information.
UUID=0A1B2C3D-1111-2222-3333-444455556666 / ext4 rw,discard,errors=remount-ro 0 1
PARTLABEL=esp /boot/efi vfat umask=0077 0 2
proc /proc proc defaults 0 0
tmpfs /tmp tmpfs defaults 0 0
"""


def test_fstab_that_matches_the_disk_has_no_problems() -> None:
    entries = parse_fstab(FSTAB)
    assert [e.mountpoint for e in entries] == ["/", "/boot/efi", "/proc", "/tmp"]
    assert fstab_problems(entries, block_devices(LSBLK)) == []


def test_missing_uuid_is_named_with_its_line() -> None:
    bad = FSTAB.replace("0A1B2C3D-1111", "deadbeef-9999")
    problems = fstab_problems(parse_fstab(bad), block_devices(LSBLK))
    assert problems == [
        "/etc/fstab line 2: UUID=deadbeef-9999-2222-3333-444455556666 (/) matches no partition on the disk"
    ]


def test_a_source_that_names_another_device_than_the_mounted_one() -> None:
    text = FSTAB.replace("PARTLABEL=esp", "LABEL=root")
    problems = fstab_problems(parse_fstab(text), block_devices(LSBLK))
    assert problems == [
        "/etc/fstab line 3: LABEL=root (/boot/efi) names /dev/vda1, but /dev/vda15 is mounted there"
    ]


def test_dev_paths_and_blkid_fill_in() -> None:
    text = "/dev/vdb1 /data ext4 defaults,nofail 0 2\n/dev/disk/by-id/virtio-x /x ext4 defaults 0 2\n"
    entries = parse_fstab(text)
    devices = block_devices(LSBLK)
    assert fstab_problems(entries, devices, {"/dev/disk/by-id/virtio-x"}) == [
        "/etc/fstab line 1: /dev/vdb1 (/data) matches no partition on the disk"
    ]
    blkid = "DEVNAME=/dev/vdb1\nUUID=1234\nTYPE=ext4\n\nDEVNAME=/dev/vda1\nLABEL=root\n"
    assert fstab_problems(entries, block_devices(LSBLK, blkid), {"/dev/disk/by-id/virtio-x"}) == []
    assert fstab_problems(parse_fstab("UUID=1234 /d ext4 defaults 0 2\n"), block_devices("", blkid)) == []


class OneAnswer:
    """Answers CHECK_CMD with recorded sections (a stand-in for the guest; real guests boot in
    tests/integration/test_report_verify.py) and records every command it is asked."""

    def __init__(self, sections: list[str]) -> None:
        self.output = "\n--vmbake-check--\n".join(sections)
        self.commands: list[str] = []

    def run(self, command: str, *, on_stdout, on_stderr, pty=False, timeout=None) -> int:  # type: ignore[no-untyped-def]
        self.commands.append(command)
        for line in self.output.splitlines():
            on_stdout(line)
        return 0


def test_check_guest_asks_once_and_judges_each_section() -> None:
    mounts = "/dev/vda1 / ext4 rw,relatime 0 0\n/dev/vda15 /boot/efi vfat rw 0 0"
    # A blank first line in fstab: the line numbers in problems stay those of the file.
    fstab = "\n" + FSTAB.replace("0A1B2C3D", "0A1B2C3E")
    failed = "e2scrub_reap.service loaded failed failed Remove Stale Snapshots"
    comm = OneAnswer(["degraded", failed, mounts, fstab, LSBLK, ""])
    checks = check_guest(comm)
    assert comm.commands == [CHECK_CMD]
    assert [c.ok for c in checks] == [True, True, False]
    assert checks[0].detail == "systemctl is-system-running: degraded (failed units: e2scrub_reap.service)"
    assert checks[1].detail == "the root filesystem is mounted read-write"
    assert checks[2].detail.startswith("/etc/fstab line 3: UUID=0A1B2C3E")


def test_check_guest_with_a_silent_guest_fails_every_check() -> None:
    checks = check_guest(OneAnswer([""]))
    assert [c.ok for c in checks] == [False, False, True]  # no fstab: nothing to disagree with
    assert checks[0].detail == "systemctl is-system-running: (no answer)"


def test_root_options_take_the_last_mount_of_slash() -> None:
    mounts = "rootfs / rootfs rw 0 0\n/dev/vda1 / ext4 ro,relatime 0 0\nproc /proc proc rw 0 0\n"
    assert root_options(mounts) == ["ro", "relatime"]


def test_flags_are_parsed_like_packer_flags(tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_text("x")
    options, config = _parse(["-ssh-key", str(key), "--timeout=90s", "-user=admin", "-efi", "disk.qcow2"])
    assert (options.ssh_key, options.timeout, options.user, options.image) == (
        key,
        90.0,
        "admin",
        Path("disk.qcow2"),
    )
    assert config.firmware.endswith("OVMF.fd") and config.disk_image
    with pytest.raises(VmbakeError, match="exactly one IMAGE"):
        _parse([])
    with pytest.raises(VmbakeError, match="unknown flag '-bogus'"):
        _parse(["-bogus", "x.qcow2"])
    with pytest.raises(VmbakeError, match=r"-ssh-key .*no such file"):
        _parse(["-ssh-key", str(tmp_path / "missing"), "x.qcow2"])


def test_boot_argv_uses_a_snapshot_and_the_builds_machine(tmp_path: Path) -> None:
    base = QemuConfig(memory=2048, disk_interface="virtio-scsi", qemuargs=[["-cpu", "max"]])
    config = boot_config(base, "qcow2")
    state = BuildState(disk_paths=[tmp_path / "vm.qcow2"], ssh_host_port=2222, console_log=tmp_path / "c.log")
    argv = qemu_argv(config, state, RunFacts(vm_name="v", accelerator="tcg"))
    assert "-snapshot" in argv and argv[argv.index("-m") + 1] == "2048M"
    assert "user,id=user.0,hostfwd=tcp:127.0.0.1:2222-:22" in argv and "-vnc" not in argv
    assert argv[argv.index("-boot") + 1] == "c" and argv[argv.index("-cpu") + 1] == "max"


def test_console_tail_and_boot_trouble(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_bytes(
        b"\x1b[0;1;31m[ TIME ] Timed out waiting for device dev-disk-by\\x2duuid-dead.device\x1b[0m\r\n"
        + b"".join(b"line %d\r\n" % i for i in range(30))
    )
    assert console_tail(log).splitlines()[-1] == "line 29" and len(console_tail(log).splitlines()) == 20
    assert boot_trouble(log) == ["[ TIME ] Timed out waiting for device dev-disk-by\\x2duuid-dead.device"]


def test_help_prints_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    from vmbake.verify import main

    assert main(["-h"]) == 0
    assert capsys.readouterr().out.startswith("Usage: vmbake verify [-ssh-key K]")
