"""The disk layout: offsets, types, UUIDs, the sfdisk script (checked by real sfdisk on a file), fstab."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from vmbake.bootstrap import cache as debcache
from vmbake.bootstrap.layout import (
    TYPE_BIOS_BOOT,
    TYPE_ESP,
    TYPE_ROOT_X86_64,
    fstab_text,
    mkfs_argv,
    mount_order,
    plan_layout,
    sfdisk_script,
)
from vmbake.builders.bootstrap import qemu_view
from vmbake.config.bootstrap import BootstrapConfig, Partition
from vmbake.errors import VmbakeError
from vmbake.steps._bootstrap import clear_key_command

MiB = 1 << 20


def fixed_uuids() -> object:
    count = iter(range(1, 100))

    def make(kind: str) -> str:
        n = next(count)
        return f"ABCD-000{n}" if kind == "vfat" else f"00000000-0000-4000-8000-{n:012d}"

    return make


def test_bios_layout_is_bios_boot_then_root() -> None:
    plan = plan_layout(BootstrapConfig(disk_size=2 << 30), make_uuid=fixed_uuids())  # type: ignore[arg-type]
    assert [(p.number, p.name, p.type_guid, p.start, p.size) for p in plan] == [
        (1, "bios", TYPE_BIOS_BOOT, MiB, MiB),
        (2, "root", TYPE_ROOT_X86_64, 2 * MiB, 2048 * MiB - 3 * MiB),
    ]
    assert plan[0].fs_uuid == ""


def test_hybrid_layout_with_rest_in_the_middle() -> None:
    config = BootstrapConfig(
        disk_size=4 << 30, firmware="hybrid",
        partitions=[Partition("/", None, "ext4"), Partition("/var", 1 << 30, "ext4"), Partition("swap", 256 << 20, "swap")],
    )  # fmt: skip
    plan = plan_layout(config, make_uuid=fixed_uuids())  # type: ignore[arg-type]
    assert [p.name for p in plan] == ["bios", "esp", "root", "var", "swap"]
    root = plan[2]
    assert root.start == 66 * MiB and root.size == 4096 * MiB - 66 * MiB - 1280 * MiB - MiB
    assert plan[-1].start + plan[-1].size == 4095 * MiB  # the last MiB holds the backup GPT
    assert [p.mountpoint for p in mount_order(plan)] == ["/", "/var"]  # the ESP is written with mtools


@pytest.mark.host_tools("sfdisk")
def test_sfdisk_accepts_the_script_on_a_file(tmp_path: Path) -> None:
    config = BootstrapConfig(disk_size=512 << 20, firmware="efi", partitions=[Partition("/", None, "ext4")])
    plan = plan_layout(config)
    image = tmp_path / "disk.raw"
    with open(image, "wb") as f:
        f.truncate(512 * MiB)
    subprocess.run(["sfdisk", "--quiet", str(image)], input=sfdisk_script(plan), text=True, check=True)
    table = json.loads(
        subprocess.run(["sfdisk", "--json", str(image)], capture_output=True, text=True, check=True).stdout
    )
    parts = table["partitiontable"]["partitions"]
    assert [(p["start"], p["size"], p["type"], p["name"]) for p in parts] == [
        (2048, 64 * 2048, TYPE_ESP, "esp"),
        (65 * 2048, (512 - 66) * 2048, TYPE_ROOT_X86_64, "root"),
    ]


def test_fstab_by_uuid_root_first() -> None:
    config = BootstrapConfig(
        disk_size=4 << 30, firmware="efi",
        partitions=[Partition("/boot", 512 << 20, "ext4"), Partition("/", None, "ext4"), Partition("swap", 128 << 20, "swap")],
    )  # fmt: skip
    text = fstab_text(plan_layout(config, make_uuid=fixed_uuids()))  # type: ignore[arg-type]
    assert text.splitlines()[2:] == [
        "UUID=00000000-0000-4000-8000-000000000003\t/\text4\terrors=remount-ro\t0\t1",
        "UUID=00000000-0000-4000-8000-000000000002\t/boot\text4\tdefaults,x-systemd.device-timeout=10min\t0\t2",
        "UUID=ABCD-0001\t/boot/efi\tvfat\tumask=0077,nofail\t0\t1",
        "UUID=00000000-0000-4000-8000-000000000004\tnone\tswap\tsw,nofail\t0\t0",
    ]


def test_mkfs_commands_carry_the_planned_uuid() -> None:
    plan = plan_layout(BootstrapConfig(firmware="hybrid"), make_uuid=fixed_uuids())  # type: ignore[arg-type]
    assert mkfs_argv(plan[0], "/dev/loop0p1") is None
    assert mkfs_argv(plan[1], "/dev/loop0p2") == [
        "mkfs.vfat",
        "-F",
        "32",
        "-n",
        "ESP",
        "-i",
        "ABCD0001",
        "/dev/loop0p2",
    ]
    assert mkfs_argv(plan[2], "/dev/loop0p3") == [
        "mkfs.ext4", "-q", "-F", "-U", "00000000-0000-4000-8000-000000000002", "-L", "root",
        "-O", "^metadata_csum_seed,^orphan_file", "/dev/loop0p3",
    ]  # fmt: skip


def test_layout_that_does_not_fit_is_an_error() -> None:
    with pytest.raises(VmbakeError, match="do not fit"):
        plan_layout(BootstrapConfig(disk_size=1 << 30, partitions=[Partition("/", 2 << 30, "ext4")]))


def test_cache_counts_hits_and_moves_new_debs(tmp_path: Path) -> None:
    cache_dir = debcache.deb_cache_dir("bookworm", "http://deb.debian.org/debian", tmp_path)
    assert cache_dir.parent == tmp_path / "debs" and cache_dir.name.startswith("bookworm-deb.debian.org-")
    assert debcache.deb_cache_dir("bookworm", "http://other/debian", tmp_path) != cache_dir
    cache_dir.mkdir(parents=True)
    (cache_dir / "a_1_amd64.deb").write_bytes(b"a" * 10)
    before = debcache.debs_in(cache_dir)
    used = tmp_path / "used"
    used.mkdir()
    (used / "a_1_amd64.deb").write_bytes(b"a" * 10)
    (used / "b_2_amd64.deb").write_bytes(b"b" * 30)
    (used / "lock").write_text("")
    stats = debcache.absorb(used, cache_dir, before)
    assert (stats.hits, stats.hit_bytes, stats.downloaded, stats.downloaded_bytes) == (1, 10, 1, 30)
    assert sorted(p.name for p in cache_dir.iterdir()) == ["a_1_amd64.deb", "b_2_amd64.deb"]
    assert stats.summary().startswith("1 packages (0.0 MiB) from the cache, 1 (0.0 MiB) downloaded")


def test_a_new_version_removes_the_versions_it_supersedes(tmp_path: Path) -> None:
    """A cache kept across point releases keeps one version of each package a build uses."""
    cache_dir = tmp_path / "debs" / "trixie"
    cache_dir.mkdir(parents=True)
    old = {
        "linux-image-6.12.1-cloud-amd64_6.12.1-1_amd64.deb": 50,  # another package name: kept
        "libc6_2.41-10_amd64.deb": 20,  # superseded
        "libc6_2.41-10_arm64.deb": 20,  # another architecture: kept
        "base-files_13.7_amd64.deb": 5,  # superseded
        "tzdata_2025a-1_all.deb": 7,  # not used by this build: kept
        "bash_5.2.37-2_amd64.deb": 9,  # the same version: a hit, kept
    }
    for name, size in old.items():
        (cache_dir / name).write_bytes(b"x" * size)
    used = tmp_path / "used"
    used.mkdir()
    for name, size in {
        "libc6_2.41-12_amd64.deb": 21, "base-files_13.8_amd64.deb": 6, "bash_5.2.37-2_amd64.deb": 9,
        "grub-pc_2.12-9%3a1_amd64.deb": 3,
    }.items():  # fmt: skip
        (used / name).write_bytes(b"y" * size)
    stats = debcache.absorb(used, cache_dir, debcache.debs_in(cache_dir))
    assert (stats.hits, stats.downloaded, stats.pruned, stats.pruned_bytes) == (1, 3, 2, 25)
    assert sorted(debcache.debs_in(cache_dir)) == [
        "base-files_13.8_amd64.deb", "bash_5.2.37-2_amd64.deb", "grub-pc_2.12-9%3a1_amd64.deb",
        "libc6_2.41-10_arm64.deb", "libc6_2.41-12_amd64.deb",
        "linux-image-6.12.1-cloud-amd64_6.12.1-1_amd64.deb", "tzdata_2025a-1_all.deb",
    ]  # fmt: skip
    assert stats.summary().endswith(", 2 superseded (0.0 MiB) removed")
    assert debcache.package_key("grub-pc_2.12-9%3a1_amd64.deb") == "grub-pc amd64"


def test_a_deb_removed_while_the_cache_is_read_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another build may prune a .deb between the listing and the copy: the snapshot goes without it."""
    cache_dir = tmp_path / "debs" / "trixie"
    cache_dir.mkdir(parents=True)
    (cache_dir / "a_1_amd64.deb").write_bytes(b"a")
    (cache_dir / "b_1_amd64.deb").write_bytes(b"b")
    real_copy = shutil.copyfile

    def copy_after_a_prune(src: Path, dst: Path) -> object:
        (cache_dir / "b_1_amd64.deb").unlink(missing_ok=True)  # the other build's prune, just now
        return real_copy(src, dst)

    monkeypatch.setattr(shutil, "copyfile", copy_after_a_prune)
    snap = debcache.snapshot(cache_dir)
    monkeypatch.undo()
    assert sorted(p.name for p in snap.iterdir()) == ["a_1_amd64.deb"]


def test_cache_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VMBAKE_CACHE_DIR", str(tmp_path))
    assert debcache.cache_root() == tmp_path
    monkeypatch.delenv("VMBAKE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert debcache.cache_root() == tmp_path / "x" / "vmbake"


def test_qemu_view_boots_the_disk_and_keeps_machine_keys() -> None:
    view = qemu_view(BootstrapConfig(memory=2048, cpus=2, firmware="efi", disk_compression=True, vm_name="x"))
    assert view.disk_image and view.skip_resize_disk and view.efi_boot
    assert (view.memory, view.cpus, view.disk_compression, view.vm_name) == (2048, 2, True, "x")
    assert view.firmware == ""  # bios/efi/hybrid is not a -bios file
    assert not qemu_view(BootstrapConfig(firmware="hybrid")).efi_boot


def test_clear_key_command_removes_only_that_key(tmp_path: Path) -> None:
    other = "ssh-ed25519 AAAAOtherKey user@host"
    build = "ssh-ed25519 AAAABuildKey vmbake-bootstrap"
    command = clear_key_command(build, "root")
    assert command.startswith("sh -c ")
    assert clear_key_command(build, "debian").startswith("sudo -n sh -c ")
    script = command.replace("/root/.ssh/authorized_keys", str(tmp_path / "ak"))
    (tmp_path / "ak").write_text(f"{other}\n{build}\n")
    subprocess.run(["sh", "-c", script], check=True)
    assert (tmp_path / "ak").read_text() == other + "\n"
    (tmp_path / "ak").write_text(build + "\n")
    subprocess.run(["sh", "-c", script], check=True)
    assert not (tmp_path / "ak").exists()


def test_tmp_is_not_typed_as_var_tmp() -> None:
    """A /tmp partition typed as the spec's /var/tmp is also mounted there by systemd-gpt-auto-generator."""
    config = BootstrapConfig(
        disk_size=4 << 30,
        partitions=[
            Partition("/", 2 << 30, "ext4"),
            Partition("/tmp", 512 << 20, "ext4"),
            Partition("swap", None, "swap"),
        ],
    )
    plan = plan_layout(config, make_uuid=fixed_uuids())  # type: ignore[arg-type]
    tmp = next(p for p in plan if p.mountpoint == "/tmp")
    assert tmp.type_guid == "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
