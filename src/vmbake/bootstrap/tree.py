"""The image tree, mounted for provisioning before the first boot (`provision_stage = "tree"`).

`image_tree()` attaches the raw disk, mounts its filesystems as the image's fstab will, and adds what
commands in a chroot need: a private /dev with the disk's nodes and /dev/pts, /proc and /sys, an empty
/run (a tmpfs, so nothing written there reaches the image), DNS for apt through the image's own
resolv.conf link, a policy-rc.d that keeps package scripts from starting daemons, and dpkg's
force-unsafe-io (no fsync per file). It yields the
chroot communicator for that tree. On the way out it stops whatever a command left running in the tree,
takes back what it added, and unmounts everything, even on failure or Ctrl-C.

chroot rather than systemd-nspawn: the builder already needs root, loop devices and chroot (grub is
installed that way), while nspawn needs systemd-container on the host, a host running systemd, and
refuses to run inside many containers (CI runners), for no gain in a tree that runs no init.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vmbake.bootstrap.disk import (
    Mounts,
    loop_device,
    mount_system,
    partition_device,
    wait_for_partitions,
)
from vmbake.bootstrap.layout import Planned, mount_order
from vmbake.comm.chroot import ChrootCommunicator

POLICY_RC_D = "#!/bin/sh\n# vmbake: no daemon starts while the image is provisioned as a tree\nexit 101\n"
HOST_RESOLV_CONF = Path("/etc/resolv.conf")


@dataclass(frozen=True)
class RawDisk:
    """The build's raw disk while it is provisioned as a tree: where it is and how it was laid out."""

    path: Path
    plan: list[Planned]
    guest_disk: str  # the disk's name in the guest: /dev/vda or /dev/sda


def tree_env(disk: RawDisk) -> dict[str, str]:
    """The variables every command in the tree gets: the stage, and the layout the running system would
    show (provision.sh reads them where it would look at mounts, swap or the boot disk)."""
    root = next((p for p in disk.plan if p.mountpoint == "/"), None)
    env = {"VMBAKE_STAGE": "tree", "VMBAKE_DISK": disk.guest_disk}
    if root is not None and root.fs_uuid:
        env["VMBAKE_ROOT"] = f"UUID={root.fs_uuid}"
    return env


@contextlib.contextmanager
def image_tree(disk: RawDisk, mount_dir: Path) -> Iterator[ChrootCommunicator]:
    """The disk's filesystems mounted at `mount_dir`, ready for chroot commands (see the module doc)."""
    with loop_device(disk.path) as loop:
        wait_for_partitions(loop, [p.number for p in disk.plan])
        mount_dir.mkdir(parents=True, exist_ok=True)
        mounts = Mounts(mount_dir)
        undo: list[Path] = []
        try:
            for p in mount_order(disk.plan):
                mounts.mount(partition_device(loop, p.number), p.mountpoint)
            mount_system(mounts, loop, disk.plan)
            mounts.mount("devpts", "/dev/pts", "-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=620")
            (mount_dir / "dev" / "ptmx").symlink_to("pts/ptmx")
            mounts.mount("tmpfs", "/run", "-t", "tmpfs", "-o", "mode=755,size=64M")
            undo += _resolv_conf(mounts)
            unsafe_io = mount_dir / "etc" / "dpkg" / "dpkg.cfg.d" / "vmbake-tree-unsafe-io"
            if unsafe_io.parent.is_dir() and not unsafe_io.exists():
                # dpkg's fsync of every file would go through the loop device to the host's disk; a build
                # that stops half way throws the disk away anyway.
                unsafe_io.write_text("force-unsafe-io\n")
                undo.append(unsafe_io)
            policy = mount_dir / "usr" / "sbin" / "policy-rc.d"
            if not policy.exists() and not policy.is_symlink():
                policy.write_text(POLICY_RC_D)
                policy.chmod(0o755)
                undo.append(policy)
            yield ChrootCommunicator(mount_dir, tree_env(disk))
        finally:
            try:
                stop_tree_processes(mount_dir)
                for path in reversed(undo):
                    path.unlink(missing_ok=True)
            finally:
                mounts.unmount_all()


def trim_argvs(mount_dir: Path, plan: list[Planned]) -> list[list[str]]:
    """fstrim of every ext filesystem of the tree (pure). Through the loop device a discard punches a hole
    in the raw file, so what provisioning wrote and deleted (package lists, a replaced initramfs) is not
    carried into the artifact: what zero_freespace does in a guest, at no cost."""
    return [
        ["fstrim", "--verbose", str(mount_dir / p.mountpoint.lstrip("/"))]
        for p in mount_order(plan)
        if p.fs.startswith("ext")
    ]


def _resolv_conf(mounts: Mounts) -> list[Path]:
    """DNS for apt in the chroot, leaving the image's /etc untouched where it can; the files to remove."""
    root = mounts.root
    conf = root / "etc" / "resolv.conf"
    host = HOST_RESOLV_CONF.read_bytes() if HOST_RESOLV_CONF.exists() else b""
    if conf.is_symlink():
        target = os.readlink(conf)
        absolute = os.path.normpath(os.path.join("/etc", target))
        if absolute.startswith("/run/"):
            # The image's link into /run (systemd-resolved's stub): fill its target in the tmpfs.
            inside = root / absolute.lstrip("/")
            inside.parent.mkdir(parents=True, exist_ok=True)
            inside.write_bytes(host)
            return []
        return []  # a link elsewhere in the image is the image's own choice
    if conf.exists():
        mounts.mount(str(HOST_RESOLV_CONF), "/etc/resolv.conf", "--bind", "-o", "ro")
        return []
    conf.write_bytes(host)
    return [conf]


def stop_tree_processes(root: Path, grace: float = 2.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process whose root directory is `root` (a daemon that a package
    script started despite policy-rc.d, a gpg-agent); their pids."""
    found = _processes_in(root)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while _processes_in(root) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _processes_in(root):
            break
    return found


def _processes_in(root: Path) -> list[int]:
    wanted = str(root.resolve())
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            target = os.readlink(entry / "root")
        except OSError:
            continue
        if target == wanted or target.startswith(wanted + "/"):
            pids.append(int(entry.name))
    return pids
