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
import shutil
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


# -- the package lists mmdebstrap left for the provisioners (rootfs.mmdebstrap_argv's keep_lists) --------
APT_LISTS = Path("var/lib/apt/lists")
ListsState = dict[str, tuple[int, int, int]]


def apt_lists_state(root: Path) -> ListsState:
    """The package lists in the tree (not apt's lock, partial/ or auxfiles/): name -> (inode, size, ctime).
    `apt-get update` changes the ctime of every Release file it checks, even when the mirror answers that
    nothing changed, so the state tells whether a provisioner refreshed the lists."""
    state: ListsState = {}
    lists = root / APT_LISTS
    if not lists.is_dir():
        return state
    for entry in lists.iterdir():
        if entry.name != "lock" and entry.is_file() and not entry.is_symlink():
            st = entry.stat()
            state[entry.name] = (st.st_ino, st.st_size, st.st_ctime_ns)
    return state


def drop_untouched_lists(root: Path, before: ListsState) -> bool:
    """Remove the lists that mmdebstrap left in the tree, as its own cleanup would have, when the
    provisioners left them exactly as they were (`before`); True if it removed them. Lists that a
    provisioner refreshed, replaced or deleted are its own: they stay as it left them."""
    if not before or apt_lists_state(root) != before:
        return False
    lists = root / APT_LISTS
    for name in before:
        (lists / name).unlink(missing_ok=True)
    shutil.rmtree(lists / "auxfiles", ignore_errors=True)
    return True


# -- the first boot's one-off work, done once in the tree ---------------------------------------------------
# Units that systemd runs on the first boot after /usr changed (ConditionNeedsUpdate=/etc or /var), with the
# command each runs; systemd-update-done then stamps /etc/.updated and /var/.updated so they do not run again.
# Under TCG they take seconds of every first boot of the image. An image with any other such unit is left
# alone: stamping it would keep that unit from ever running.
NEEDS_UPDATE_UNITS = {
    "systemd-hwdb-update.service": "systemd-hwdb update",
    "ldconfig.service": "ldconfig -X",
    "systemd-journal-catalog-update.service": "journalctl --update-catalog",
    "systemd-sysusers.service": "systemd-sysusers",
    "systemd-update-done.service": "",  # the stamp itself, written last
}
UPDATE_DONE = "/usr/lib/systemd/systemd-update-done"
UNIT_DIRS = ("usr/lib/systemd/system", "lib/systemd/system", "etc/systemd/system")


def needs_update_units(root: Path) -> set[str]:
    """The names of the tree's units that have a ConditionNeedsUpdate= (a masked or linked unit counts)."""
    found: set[str] = set()
    for directory in UNIT_DIRS:
        base = root / directory
        if base.is_symlink() or not base.is_dir():
            continue  # /lib is /usr/lib on a merged-/usr system
        for unit in base.iterdir():
            if not unit.is_file() or unit.is_symlink():
                continue
            with contextlib.suppress(OSError, UnicodeDecodeError):
                if "ConditionNeedsUpdate=" in unit.read_text():
                    found.add(unit.name)
    return found


def first_boot_script(root: Path) -> str | None:
    """The shell script that does the first boot's ConditionNeedsUpdate work in the tree, or None when the
    tree has no systemd-update-done, or has such a unit that vmbake does not know (pure but for reading
    the tree's unit files)."""
    units = needs_update_units(root)
    if not (root / UPDATE_DONE.lstrip("/")).exists() or not units or units - NEEDS_UPDATE_UNITS.keys():
        return None
    commands = [NEEDS_UPDATE_UNITS[u] for u in NEEDS_UPDATE_UNITS if u in units and NEEDS_UPDATE_UNITS[u]]
    return "set -e\n" + "".join(f"{c}\n" for c in commands) + f"{UPDATE_DONE}\n"


def needs_update(root: Path) -> bool:
    """What ConditionNeedsUpdate= would say on the next boot: /usr is newer than /etc/.updated or /var/.updated."""
    usr = (root / "usr").stat().st_mtime_ns
    for stamp in (root / "etc" / ".updated", root / "var" / ".updated"):
        try:
            if stamp.stat().st_mtime_ns < usr:
                return True
        except FileNotFoundError:
            return True
    return False
