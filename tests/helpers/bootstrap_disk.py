"""A bookworm cloud-kernel disk made by the debian-bootstrap library, and a way to boot it under TCG.

`build_bootstrapped_disk()` calls the library directly (mmdebstrap, then the disk), not the whole builder,
so that tests of other parts can boot a real Debian guest: it boots by itself (grub, no -kernel) and lets
root log in with the returned private key. The .deb cache under the vmbake cache directory makes a
second session's build faster.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vmbake import procs
from vmbake.bootstrap.pipeline import make_disk, make_rootfs
from vmbake.config.bootstrap import BootstrapConfig

HOSTNAME = "vmbake-test"


@dataclass(frozen=True)
class BootstrappedDisk:
    """A bootable qcow2 image and the key root logs in with."""

    image: Path
    private_key: Path
    public_key: str
    hostname: str
    build_seconds: float


def disk_config(**overrides: object) -> BootstrapConfig:
    values: dict[str, object] = {
        "suite": "bookworm",
        "kernel": "linux-image-cloud-amd64",
        "hostname": HOSTNAME,
        "disk_size": 2 << 30,
    }
    values.update(overrides)
    return BootstrapConfig(**values)  # type: ignore[arg-type]


def make_key(directory: Path) -> tuple[Path, str]:
    key = directory / "id_ed25519"
    procs.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vmbake-test", "-f", str(key)])
    return key, key.with_suffix(".pub").read_text().strip()


def build_bootstrapped_disk(directory: Path, config: BootstrapConfig | None = None) -> BootstrappedDisk:
    """Build the disk into `directory` (image.qcow2, id_ed25519). Needs root and deb.debian.org."""
    config = config or disk_config()
    started = time.monotonic()
    directory.mkdir(parents=True, exist_ok=True)
    key, public = make_key(directory)
    work = directory / "work"
    rootfs = make_rootfs(config, work, [public], lambda _line: None)
    image = make_disk(config, rootfs.tarball, directory / "image.qcow2", work, lambda _line: None)
    rootfs.tarball.unlink(missing_ok=True)
    return BootstrappedDisk(image, key, public, config.hostname, time.monotonic() - started)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def qemu_disk_argv(
    image: Path, ssh_port: int, console: Path, *, snapshot: bool = True, efi: bool = False
) -> list[str]:
    """Boot `image` alone (no -kernel) under TCG, SSH forwarded to `ssh_port`, serial console to a file.

    One vCPU: with two, multi-threaded TCG on a 2-core host under load once left a guest stuck in an RCU
    stall for ten minutes."""
    drive = f"file={image},if=virtio,format={'qcow2' if image.suffix == '.qcow2' else 'raw'}"
    argv = [
        "qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-smp", "1", "-display", "none", "-no-user-config",
        "-drive", drive + (",snapshot=on" if snapshot else ""),
        "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22", "-device", "virtio-net-pci,netdev=n0",
        "-serial", f"file:{console}",
    ]  # fmt: skip
    if efi:
        argv += ["-bios", "/usr/share/ovmf/OVMF.fd"]
    return argv


def ssh_argv(port: int, key: Path, command: str, user: str = "root") -> list[str]:
    return [
        "ssh", "-p", str(port), "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
        f"{user}@127.0.0.1", command,
    ]  # fmt: skip


def ssh(
    port: int, key: Path, command: str, *, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return procs.run(ssh_argv(port, key, command), check=check, timeout=timeout, what=f"ssh {command!r}")


def wait_for_ssh(port: int, key: Path, child: procs.Child, console: Path, timeout: float = 600) -> float:
    """Seconds until `true` runs over SSH; fails with the console's tail if QEMU dies or time runs out."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not child.running():
            raise AssertionError(f"qemu exited ({child.returncode}); console:\n{_tail(console)}")
        result = procs.run(ssh_argv(port, key, "true"), check=False, timeout=30)
        if result.returncode == 0:
            return time.monotonic() - started
        time.sleep(1)  # poll interval inside the deadline, not a wait for an event
    raise AssertionError(f"no SSH within {timeout:.0f}s; console:\n{_tail(console)}")


def _tail(console: Path, lines: int = 30) -> str:
    try:
        return "\n".join(console.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no console output)"


@contextlib.contextmanager
def booted(
    image: Path, key: Path, directory: Path, *, snapshot: bool = True, efi: bool = False
) -> Iterator[int]:
    """Boot `image`, wait for SSH, yield the forwarded port; QEMU is stopped on the way out."""
    port = free_port()
    console = directory / f"console-{port}.log"
    argv = qemu_disk_argv(image, port, console, snapshot=snapshot, efi=efi)
    child = procs.spawn(argv, stderr=subprocess.DEVNULL)
    try:
        wait_for_ssh(port, key, child, console)
        yield port
    finally:
        child.stop(grace=10)


def describe(argv: list[str]) -> str:
    return shlex.join(argv) + (f" (uid {os.geteuid()})" if os.geteuid() else "")
