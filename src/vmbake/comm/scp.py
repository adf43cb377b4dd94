"""The classic scp protocol over an exec channel, for guests whose sshd has no sftp subsystem.

The remote side is `scp -t` (sink: we send) or `scp -f` (source: we receive). Each record is a line
("C0644 SIZE NAME", "D0755 0 NAME", "E") answered by a status byte: 0 ok, 1 warning, 2 fatal (+ message).
"""

from __future__ import annotations

import shlex
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import paramiko

from vmbake.errors import VmbakeError

CHUNK = 32768
Advance = Callable[[int], None]


class ScpError(VmbakeError):
    pass


def _open(transport: paramiko.Transport, command: str) -> paramiko.Channel:
    chan = transport.open_session(timeout=30)
    chan.settimeout(120)
    chan.exec_command(command)
    return chan


def _read_line(chan: paramiko.Channel) -> bytes:
    line = bytearray()
    while True:
        ch = chan.recv(1)
        if not ch:
            return bytes(line)
        if ch == b"\n":
            return bytes(line)
        line += ch


def _ack(chan: paramiko.Channel, what: str) -> None:
    code = chan.recv(1)
    if code == b"\x00":
        return
    if not code:
        stderr = chan.recv_stderr(4096).decode(errors="replace").strip() if chan.recv_stderr_ready() else ""
        raise ScpError(
            f"scp {what}: the remote scp ended early" + (f": {stderr}" if stderr else ""),
            hint="is scp installed in the guest? (Debian package openssh-client)",
        )
    message = _read_line(chan).decode(errors="replace").strip()
    raise ScpError(f"scp {what}: {message or 'remote error'}")


def _send_file(
    chan: paramiko.Channel, f: BinaryIO, size: int, mode: int, name: str, advance: Advance
) -> None:
    chan.sendall(f"C{mode & 0o7777:04o} {size} {name}\n".encode())
    _ack(chan, f"upload of {name}")
    sent = 0
    while sent < size:
        chunk = f.read(min(CHUNK, size - sent))
        if not chunk:
            raise ScpError(f"scp: {name} shrank while it was being sent")
        chan.sendall(chunk)
        sent += len(chunk)
        advance(len(chunk))
    chan.sendall(b"\x00")
    _ack(chan, f"upload of {name}")


def _finish(chan: paramiko.Channel) -> None:
    chan.shutdown_write()
    chan.recv_exit_status()
    chan.close()


def upload(
    transport: paramiko.Transport, f: BinaryIO, size: int, remote: str, mode: int, advance: Advance
) -> None:
    """Write `size` bytes of `f` to the file `remote`."""
    chan = _open(transport, f"scp -t {shlex.quote(remote)}")
    try:
        _ack(chan, f"upload to {remote}")
        name = remote.rstrip("/").rsplit("/", 1)[-1] or "file"
        _send_file(chan, f, size, mode, name, advance)
        _finish(chan)
    finally:
        chan.close()


def upload_dir(transport: paramiko.Transport, local: Path, remote: str) -> None:
    """Copy the contents of the directory `local` into the existing directory `remote`."""
    chan = _open(transport, f"scp -r -t {shlex.quote(remote)}")
    try:
        _ack(chan, f"upload to {remote}")
        _send_tree(chan, local)
        _finish(chan)
    finally:
        chan.close()


def _send_tree(chan: paramiko.Channel, directory: Path) -> None:
    for entry in sorted(directory.iterdir()):
        st = entry.stat()
        if stat.S_ISDIR(st.st_mode):
            chan.sendall(f"D{st.st_mode & 0o7777:04o} 0 {entry.name}\n".encode())
            _ack(chan, f"upload of {entry}")
            _send_tree(chan, entry)
            chan.sendall(b"E\n")
            _ack(chan, f"upload of {entry}")
        elif stat.S_ISREG(st.st_mode):
            with entry.open("rb") as f:
                _send_file(chan, f, st.st_size, st.st_mode, entry.name, lambda _n: None)


def download(transport: paramiko.Transport, remote: str, f: BinaryIO, advance: Advance) -> None:
    """Read the remote file `remote` into `f`."""
    chan = _open(transport, f"scp -f {shlex.quote(remote)}")
    try:
        chan.sendall(b"\x00")
        header = _record(chan, remote)
        if not header.startswith(b"C"):
            raise ScpError(f"scp: {remote} is not a regular file")
        _mode, size, _name = _parse_header(header)
        chan.sendall(b"\x00")
        _receive_data(chan, f, size, advance)
        _finish(chan)
    finally:
        chan.close()


def download_dir(transport: paramiko.Transport, remote: str, local: Path) -> None:
    """Copy the contents of the remote directory `remote` into `local` (created if needed)."""
    chan = _open(transport, f"scp -r -f {shlex.quote(remote)}")
    try:
        chan.sendall(b"\x00")
        stack: list[Path] = []
        while True:
            header = _record(chan, remote)
            if not header:
                break
            kind = header[:1]
            if kind == b"D":
                _mode, _size, name = _parse_header(header)
                # The first D record is `remote` itself: its contents land in `local`.
                target = local if not stack else stack[-1] / name
                target.mkdir(parents=True, exist_ok=True)
                stack.append(target)
            elif kind == b"E":
                stack.pop()
            elif kind == b"C":
                mode, size, name = _parse_header(header)
                chan.sendall(b"\x00")
                parent = stack[-1] if stack else local
                with (parent / name).open("wb") as out:
                    _receive_data(chan, out, size, lambda _n: None)
                (parent / name).chmod(mode & 0o777)
                continue
            else:
                raise ScpError(f"scp: unexpected record {header[:40]!r}")
            chan.sendall(b"\x00")
            if not stack:
                break
        _finish(chan)
    finally:
        chan.close()


def _record(chan: paramiko.Channel, remote: str) -> bytes:
    first = chan.recv(1)
    if first in (b"\x01", b"\x02"):
        message = _read_line(chan).decode(errors="replace").strip()
        raise ScpError(f"scp: cannot read {remote}: {message}")
    if not first:
        return b""
    while first == b"T":  # times record (only with -p); acknowledge and skip
        _read_line(chan)
        chan.sendall(b"\x00")
        first = chan.recv(1)
    return first + _read_line(chan)


def _parse_header(header: bytes) -> tuple[int, int, str]:
    try:
        mode, size, name = header[1:].decode().split(" ", 2)
        return int(mode, 8), int(size), name
    except ValueError:
        raise ScpError(f"scp: malformed record {header[:60]!r}") from None


def _receive_data(chan: paramiko.Channel, f: BinaryIO, size: int, advance: Advance) -> None:
    left = size
    while left > 0:
        chunk = chan.recv(min(CHUNK, left))
        if not chunk:
            raise ScpError("scp: the connection closed in the middle of a file")
        f.write(chunk)
        left -= len(chunk)
        advance(len(chunk))
    _ack(chan, "download")
    chan.sendall(b"\x00")
