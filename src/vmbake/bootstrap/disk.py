"""Lay a root filesystem tarball onto a partitioned disk that boots by itself.

This needs root: it attaches the raw image to a loop device (`losetup --partscan`), makes the filesystems,
mounts them, extracts the tarball, and runs the image's own grub-install and update-grub in a chroot with
/dev, /proc and /sys bound in (so the grub that is installed is the one the image will upgrade). Every
mount and the loop device are undone on the way out, even on failure or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from vmbake import arch, procs
from vmbake.bootstrap.layout import (
    Planned,
    efi_early_config,
    efi_modules,
    fstab_text,
    mkfs_argv,
    mount_order,
    sfdisk_script,
)
from vmbake.errors import VmbakeError

Say = Callable[[str], None]
ROOT_HINT = (
    "the debian-bootstrap builder needs root (loop devices, mount, chroot); run vmbake as root, "
    "for example in CI or with sudo"
)


def require_root() -> None:
    if os.geteuid() != 0:
        raise VmbakeError("building a bootable disk needs root", hint=ROOT_HINT)


@contextlib.contextmanager
def loop_device(image: Path) -> Iterator[str]:
    """`image` attached to a free loop device with its partitions scanned; detached on exit."""
    out = procs.run(["losetup", "--find", "--show", "--partscan", str(image)], what="losetup", hint=ROOT_HINT)
    device = out.stdout.strip()
    try:
        # Kernels built without partition table parsers (CONFIG_EFI_PARTITION off) make no partition
        # nodes on their own; partx reads the GPT in user space and adds them through BLKPG.
        procs.run(["partx", "--update", device], check=False)
        yield device
    finally:
        procs.run(["losetup", "--detach", device], check=False)


def partition_device(loop: str, number: int) -> str:
    return f"{loop}p{number}"


def wait_for_partitions(loop: str, numbers: list[int], timeout: float = 10.0) -> None:
    """Poll until the kernel has made the partition device nodes (udev can lag behind losetup)."""
    deadline = time.monotonic() + timeout
    while True:
        missing = [n for n in numbers if not Path(partition_device(loop, n)).exists()]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise VmbakeError(
                f"the partitions {missing} of {loop} did not appear within {timeout:.0f}s",
                hint="loop devices need partition support (max_part); try 'modprobe loop max_part=16'",
            )
        time.sleep(0.1)


class Mounts:
    """Mounts made under one root, unmounted in reverse order."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: list[Path] = []

    def mount(self, source: str, target: str, *options: str) -> None:
        path = self.root / target.lstrip("/")
        if not path.exists():
            path.mkdir(parents=True)
        procs.run(["mount", *options, source, str(path)], what=f"mount {target}", hint=ROOT_HINT)
        self.made.append(path)

    def unmount_all(self) -> None:
        errors = []
        while self.made:
            path = self.made.pop()
            result = procs.run(["umount", str(path)], check=False)
            if result.returncode != 0:
                # A process still holding it open (gpg-agent from a hook, say): detach it lazily.
                result = procs.run(["umount", "--lazy", str(path)], check=False)
                if result.returncode != 0:
                    errors.append(str(path))
        if errors:
            raise VmbakeError(f"could not unmount {', '.join(errors)}", hint="unmount them by hand")


def create_raw(image: Path, size: int, plan: list[Planned]) -> None:
    """A sparse raw image of `size` bytes with the GPT of `plan`."""
    image.parent.mkdir(parents=True, exist_ok=True)
    with open(image, "wb") as f:
        f.truncate(size)
    procs.run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(image)], input=sfdisk_script(plan),
              what="sfdisk")  # fmt: skip


def chroot_run(root: Path, argv: list[str], what: str, on_line: Say | None = None) -> None:
    env = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    procs.run(["chroot", str(root), *argv], env=env, what=what, on_line=on_line, timeout=600)


def populate_dev(dev: Path, loop: str, plan: list[Planned]) -> None:
    """A private /dev for the chroot: the basic nodes, the loop disk and its partitions, and the
    /dev/disk/by-uuid links that update-grub needs to write root=UUID= (no udev runs in a chroot)."""
    nodes = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", loop]
    nodes += [partition_device(loop, p.number) for p in plan]
    for node in nodes:
        st = os.stat(node)
        made = dev / os.path.basename(node)
        os.mknod(made, st.st_mode, st.st_rdev)
        # mknod applies the umask: /dev/null would be 0644, and apt's _apt user (which runs gpgv)
        # could not write to it. Give each node the host's own permissions.
        os.chmod(made, stat.S_IMODE(st.st_mode))
    # Bash's process substitution and scripts that read /dev/stdin need these (udev makes them in a guest).
    (dev / "fd").symlink_to("/proc/self/fd")
    for number, name in enumerate(("stdin", "stdout", "stderr")):
        (dev / name).symlink_to(f"/proc/self/fd/{number}")
    by_uuid = dev / "disk" / "by-uuid"
    by_uuid.mkdir(parents=True)
    for p in plan:
        if p.fs_uuid:
            (by_uuid / p.fs_uuid.lower()).symlink_to(
                "../../" + os.path.basename(partition_device(loop, p.number))
            )


def mount_system(mounts: Mounts, loop: str, plan: list[Planned]) -> None:
    """What commands in the chroot of `mounts.root` need: a private /dev (see populate_dev), /proc, /sys."""
    mounts.mount("tmpfs", "/dev", "-t", "tmpfs", "-o", "mode=755,size=1M")
    populate_dev(mounts.root / "dev", loop, plan)
    for special in ("/proc", "/sys"):
        mounts.mount(special, special, "--bind")


def grub_install_argvs(firmware: str, loop: str) -> list[list[str]]:
    """The image's grub-install commands for BIOS (run inside the chroot); UEFI goes by install_efi()."""
    if firmware in ("bios", "hybrid"):
        return [["grub-install", "--target=i386-pc", "--boot-directory=/boot", loop]]
    return []


def install_efi(
    root: Path, loop: str, plan: list[Planned], debug: Say | None, architecture: str = "amd64"
) -> None:
    """UEFI boot without mounting the ESP: the image's grub-mkimage makes the removable-media loader
    EFI/BOOT/BOOTX64.EFI (BOOTAA64.EFI on arm64; it finds /boot/grub by UUID), and mtools writes it onto
    the ESP. For arm64 the chroot's grub-mkimage runs through qemu-user."""
    esp = next(p for p in plan if p.fs == "vfat")
    early, prefix = efi_early_config(plan)
    target_arch = arch.of(architecture)
    loader_name = target_arch.efi_loader
    (root / "tmp" / "vmbake-early.cfg").write_text(early)
    argv = ["grub-mkimage", "-O", target_arch.grub_efi_target, "-o", f"/tmp/vmbake-{loader_name}", "-p", prefix,
            "-c", "/tmp/vmbake-early.cfg", *efi_modules(architecture)]  # fmt: skip
    chroot_run(root, argv, "grub-mkimage", on_line=debug)
    modules = root / "usr" / "lib" / "grub" / target_arch.grub_efi_target
    target = root / "boot" / "grub" / target_arch.grub_efi_target
    target.mkdir(parents=True, exist_ok=True)
    for item in modules.iterdir():
        if item.suffix in (".mod", ".lst"):
            shutil.copy2(item, target / item.name)
    device = partition_device(loop, esp.number)
    env = {"MTOOLS_SKIP_CHECK": "1"}
    hint = "install mtools (apt-get install mtools)"
    procs.run(["mmd", "-i", device, "::/EFI", "::/EFI/BOOT"], env=env, what="mmd", hint=hint)
    loader = root / "tmp" / f"vmbake-{loader_name}"
    procs.run(
        ["mcopy", "-i", device, str(loader), f"::/EFI/BOOT/{loader_name}"], env=env, what="mcopy", hint=hint
    )
    loader.unlink()
    (root / "tmp" / "vmbake-early.cfg").unlink()


def lay_disk(
    image: Path,
    size: int,
    plan: list[Planned],
    tarball: Path,
    firmware: str,
    mount_dir: Path,
    say: Say,
    debug: Say | None = None,
    architecture: str = "amd64",
) -> None:
    """Make the raw disk `image`: partitions, filesystems, the root fs from `tarball`, fstab, grub."""
    require_root()
    create_raw(image, size, plan)
    with loop_device(image) as loop:
        numbers = [p.number for p in plan]
        wait_for_partitions(loop, numbers)
        for p in plan:
            argv = mkfs_argv(p, partition_device(loop, p.number))
            if argv:
                procs.run(argv, what=argv[0])
        mount_dir.mkdir(parents=True, exist_ok=True)
        mounts = Mounts(mount_dir)
        try:
            for p in mount_order(plan):
                mounts.mount(partition_device(loop, p.number), p.mountpoint)
            say(f"Extracting the root filesystem ({tarball.stat().st_size / (1 << 20):.0f} MiB tarball)...")
            procs.run(
                [
                    "tar",
                    "--numeric-owner",
                    "--xattrs",
                    "--xattrs-include=*",
                    "-xpf",
                    str(tarball),
                    "-C",
                    str(mount_dir),
                ],
                what="tar",
            )
            (mount_dir / "etc" / "fstab").write_text(fstab_text(plan))
            mount_system(mounts, loop, plan)
            say(f"Installing grub ({firmware})...")
            for argv in grub_install_argvs(firmware, loop):
                chroot_run(mount_dir, argv, "grub-install", on_line=debug)
            if firmware in ("efi", "hybrid"):
                (mount_dir / "boot" / "efi").mkdir(parents=True, exist_ok=True)
                install_efi(mount_dir, loop, plan, debug, architecture)
            chroot_run(mount_dir, ["update-grub"], "update-grub", on_line=debug)
            # The chroot's grub.cfg names the loop device nowhere (root=UUID=...); check that it does not.
            cfg = (mount_dir / "boot" / "grub" / "grub.cfg").read_text()
            if "root=UUID=" not in cfg:
                raise VmbakeError(
                    "update-grub wrote no root=UUID= entry", hint="run with -debug to see its output"
                )
        finally:
            mounts.unmount_all()
