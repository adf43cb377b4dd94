"""provision.sh's sections for real, in a chroot on a loop-mounted copy of the session's bootstrapped disk.

This runs at the host's speed, while a TCG guest runs each section many times slower; the guest test
(test_provision.py) covers what a chroot cannot: swap, discards, power-off and booting the result. A
chroot sees only the mounts below its root, with the root itself as "/", so preconfig_fstab reads the
image's own filesystems. The swap list (/proc/swaps) is the host's, though: the test refuses to run on a
host with active swap, which zero_freespace and preconfig_fstab would otherwise touch.
Needs root, loop devices and Debian's archive (apt_update).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.bootstrap_disk import BootstrappedDisk
from vmbake import procs
from vmbake.bootstrap.disk import loop_device, partition_device, wait_for_partitions

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "templates" / "bookworm" / "provision.sh"
HEADER = "# vmbake provisioned this file (provision.sh, section "

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def mounted_image(image: Path, work: Path) -> Iterator[Path]:
    """The image's root filesystem, mounted with /dev, /proc, /sys and a /run with a resolv.conf."""
    raw = work / "disk.raw"
    procs.run(["qemu-img", "convert", "-O", "raw", str(image), str(raw)])
    root = work / "root"
    root.mkdir()
    mounts: list[Path] = []
    with loop_device(raw) as loop:
        try:
            wait_for_partitions(loop, [1])
            parts: dict[str, str] = {}  # node -> filesystem UUID
            for number in range(1, 9):
                node = partition_device(loop, number)
                if Path(node).exists():
                    probe = procs.run(["blkid", "-o", "export", node], check=False, capture=True).stdout
                    fields = dict(line.split("=", 1) for line in probe.splitlines() if "=" in line)
                    parts[node] = fields.get("UUID", "") if fields.get("TYPE") == "ext4" else ""
            roots = [node for node, uuid in parts.items() if uuid]
            assert roots, f"no ext4 partition on {loop}"
            procs.run(["mount", roots[0], str(root)])
            mounts.append(root)
            for source, target, kind in (
                ("proc", "proc", "proc"),
                ("sysfs", "sys", "sysfs"),
                ("tmpfs", "dev", "tmpfs"),
            ):
                procs.run(["mount", "-t", kind, source, str(root / target)])
                mounts.append(root / target)
            # A private /dev, as a booted system's udev would make it: update-grub writes root=UUID= only
            # when /dev/disk/by-uuid names the root filesystem.
            dev = root / "dev"
            for node in [
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty",
                loop,
                *parts,
            ]:
                st = os.stat(node)
                os.mknod(dev / Path(node).name, st.st_mode, st.st_rdev)
                os.chmod(dev / Path(node).name, stat.S_IMODE(st.st_mode))  # mknod is subject to the umask
            for name, target in (
                ("fd", "/proc/self/fd"),
                ("stdin", "fd/0"),
                ("stdout", "fd/1"),
                ("stderr", "fd/2"),
            ):
                (dev / name).symlink_to(target)
            (dev / "disk" / "by-uuid").mkdir(parents=True)
            for node, uuid in parts.items():
                if uuid:
                    (dev / "disk" / "by-uuid" / uuid).symlink_to(f"../../{Path(node).name}")
            procs.run(["mount", "-t", "tmpfs", "tmpfs", str(root / "run")])
            mounts.append(root / "run")
            resolved = root / "run" / "systemd" / "resolve"
            resolved.mkdir(parents=True)
            shutil.copy("/etc/resolv.conf", resolved / "stub-resolv.conf")
            yield root
        finally:
            for path in reversed(mounts):
                procs.run(["umount", "--lazy", str(path)], check=False)


def sections(output: str) -> list[str]:
    return re.findall(r"^BEGIN\{(\w+)\}$", output, re.M)


@pytest.mark.timeout(1200)
def test_sections_in_a_chroot(bootstrapped_disk: BootstrappedDisk, tmp_path: Path) -> None:
    swaps = Path("/proc/swaps").read_text().splitlines()[1:]
    if swaps:
        pytest.skip(f"the host has active swap ({swaps[0].split()[0]}), which a chroot would see as its own")
    with mounted_image(bootstrapped_disk.image, tmp_path) as root:
        shutil.copy2(SCRIPT, root / "tmp" / "provision.sh")

        def chroot(*args: str) -> str:
            result = procs.run(
                ["chroot", str(root), "/tmp/provision.sh", *args], check=False, capture=True, timeout=900
            )
            assert result.returncode == 0, result.stdout + result.stderr
            return str(result.stdout)

        out = chroot(
            "--batch", "--section", "default", "--section", "zero_freespace", "-X", "apt_dist_upgrade"
        )
        assert sections(out) == [
            "apt_update", "clean_packages", "clean_libraries", "preconfig_udev_ifnames", "preconfig_initramfs",
            "preconfig_grub", "preconfig_fstab", "preconfig_hosts", "clean_apt", "clean_history", "zero_freespace",
        ]  # fmt: skip
        print(out)  # the sections' output, for the test log
        assert out.count("END{") == len(sections(out))
        assert re.search(r"zero_freespace: /: (fstrim|filled with zeros)", out), out

        # Files carry the header; grub, the initramfs and fstab say what the sections asked.
        for path in (
            "etc/default/grub.d/90-vmbake-provision.cfg", "etc/initramfs-tools/conf.d/resume",
            "etc/systemd/network/70-vmbake-ifnames.link", "etc/fstab", "etc/hosts",
        ):  # fmt: skip
            assert (root / path).read_text().startswith(HEADER), path
        grub_cfg = (root / "boot/grub/grub.cfg").read_text()
        assert re.search(r"^\s*linux\s.*root=UUID=\S+.*net\.ifnames=0", grub_cfg, re.M), grub_cfg
        assert "console=ttyS0" in grub_cfg and "serial --unit=0 --speed=115200" in grub_cfg
        uuid = procs.run(["findmnt", "-no", "UUID", str(root)], capture=True).stdout.strip()
        fstab = (root / "etc/fstab").read_text()
        assert re.search(rf"^UUID={uuid}\t/\text4\terrors=remount-ro\t0\t1$", fstab, re.M), fstab
        assert "RESUME=none" in (root / "etc/initramfs-tools/conf.d/resume").read_text()
        assert not list((root / "var/lib/apt/lists").glob("*_Packages"))
        assert not [p for p in (root / "var/log").rglob("*") if p.is_file()]

        # Once more: nothing changed, so the files stay as they are and the initramfs is not rebuilt.
        initrds = sorted((root / "boot").glob("initrd.img-*"))
        assert initrds
        built = [p.stat().st_mtime_ns for p in initrds]
        out = chroot("-B", "-S", "preconfig_udev_ifnames", "-S", "preconfig_initramfs")
        assert "kept '/etc/systemd/network/70-vmbake-ifnames.link' (unchanged)" in out, out
        assert "nothing to rebuild" in out and [p.stat().st_mtime_ns for p in initrds] == built, out
        # A .link file the initramfs does not carry yet: rebuilt.
        with (root / "etc/systemd/network/70-vmbake-ifnames.link").open("a") as f:
            f.write("# changed\n")
        out = chroot("-B", "-S", "preconfig_initramfs")
        assert "nothing to rebuild" not in out and [p.stat().st_mtime_ns for p in initrds] != built, out

        # Run-once and exclusion, then the cleanups of clean_shutdown (but not its power-off).
        out = chroot("-B", "-S", "apt_update", "-S", "apt_dist_upgrade", "-S", "apt_update")
        assert sections(out) == ["apt_update", "apt_dist_upgrade"]
        machine_id = (root / "etc/machine-id").read_text()
        cleanups = [
            "clean_apt",
            "clean_history",
            "clean_root_ssh",
            "clean_network",
            "clean_identity",
            "clean_self",
        ]
        # The build's own key (marked with its comment) goes; a key the user gave (the test disk's) stays.
        keys = root / "root/.ssh/authorized_keys"
        user_keys = keys.read_text().splitlines()
        with keys.open("a") as f:
            f.write("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBuildKeyOfTheBuild vmbake-build-key\n")
        out = chroot("-B", *[arg for name in cleanups for arg in ("-S", name)])
        assert sections(out) == cleanups
        assert (root / "etc/machine-id").read_text() == "" or machine_id == ""
        assert not list((root / "etc/ssh").glob("ssh_host_*"))
        assert (root / "etc/systemd/system/ssh.service.wants/vmbake-ssh-host-keys.service").is_symlink()
        assert keys.read_text().splitlines() == user_keys
        assert not (root / "tmp/provision.sh").exists()
