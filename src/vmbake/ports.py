"""Host ports in a configured range, chosen in random order as Packer does, without a find-then-release race.

- `bind_in_range` binds and listens, and hands the socket to the caller (our HTTP server serves on it).
- `reserve_port` is for ports QEMU binds itself (VNC, the SSH host forward): it checks the port is free and
  holds a per-port lock file until released, so two vmbake builds never pick the same port. QEMU binds with
  SO_REUSEADDR, as the check does. `find_free_port` is the same without the lock, for one-off uses.
"""

from __future__ import annotations

import errno
import os
import random
import socket
import tempfile
from pathlib import Path

from vmbake.errors import VmbakeError
from vmbake.locks import FileLock


def search_message(host: str, lo: int, hi: int) -> str:
    """Packer's line for the VNC port search."""
    return f"Looking for available port between {lo} and {hi} on {host}"


def _check_range(lo: int, hi: int, keys: tuple[str, str]) -> None:
    if not (0 <= lo <= 65535 and 0 <= hi <= 65535) or lo > hi:
        raise VmbakeError(
            f"invalid port range {lo}-{hi}",
            hint=f"set {keys[0]} <= {keys[1]}, both between 1 and 65535",
        )


def _candidates(lo: int, hi: int) -> list[int]:
    if lo == hi == 0:
        return [0]  # any port the kernel picks
    ports = list(range(max(lo, 1), hi + 1))
    random.shuffle(ports)
    return ports


def _exhausted(host: str, lo: int, hi: int, keys: tuple[str, str]) -> VmbakeError:
    return VmbakeError(
        f"no free port between {lo} and {hi} on {host}",
        hint=f"stop what uses those ports, or widen the range with {keys[0]} and {keys[1]}",
    )


def _family(host: str) -> socket.AddressFamily:
    try:
        infos = socket.getaddrinfo(host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise VmbakeError(f"cannot bind to {host!r}: {exc.strerror}", hint="use an IP address of this host")
    return infos[0][0]


def _try_bind(host: str, port: int, family: socket.AddressFamily) -> socket.socket | None:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            return None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise VmbakeError(
                f"cannot bind to {host}: no such address on this host", hint="use a local address"
            )
        raise VmbakeError(f"cannot bind to {host}:{port}: {exc.strerror}")
    return sock


def bind_in_range(
    host: str, lo: int, hi: int, *, keys: tuple[str, str] = ("http_port_min", "http_port_max")
) -> socket.socket:
    """A listening TCP socket on `host` with a port in [lo, hi] (any port when both are 0).

    `keys` name the template keys of the range, for the error's hint."""
    _check_range(lo, hi, keys)
    family = _family(host)
    for port in _candidates(lo, hi):
        sock = _try_bind(host, port, family)
        if sock is not None:
            return sock
    raise _exhausted(host, lo, hi, keys)


def _lock_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    path = Path(base) / f"vmbake-ports-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


class PortReservation:
    """A port that was free when checked and that no other vmbake will choose until `release()`."""

    def __init__(self, port: int, lock: FileLock | None) -> None:
        self.port = port
        self._lock = lock

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> PortReservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def reserve_port(
    host: str, lo: int, hi: int, *, keys: tuple[str, str] = ("vnc_port_min", "vnc_port_max")
) -> PortReservation:
    """A free port in [lo, hi] on `host`, held by a lock file until released; for ports QEMU binds."""
    _check_range(lo, hi, keys)
    family = _family(host)
    lock_dir = _lock_dir()
    for port in _candidates(lo, hi):
        lock = None
        if port:
            lock = FileLock(lock_dir / f"port-{port}.lock")
            if not lock.try_acquire():
                continue  # another vmbake build holds it
        sock = _try_bind(host, port, family)
        if sock is None:
            if lock is not None:
                lock.release()
            continue
        chosen = int(sock.getsockname()[1])
        sock.close()
        return PortReservation(chosen, lock)
    raise _exhausted(host, lo, hi, keys)


def find_free_port(
    host: str, lo: int, hi: int, *, keys: tuple[str, str] = ("vnc_port_min", "vnc_port_max")
) -> int:
    """A port in [lo, hi] that was free a moment ago (no lock kept; prefer `reserve_port`)."""
    reservation = reserve_port(host, lo, hi, keys=keys)
    reservation.release()
    return reservation.port
