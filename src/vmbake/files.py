"""Reading files that a user names (templates, variable files, checksum files, the files of HCL2's
file functions): regular files only.

A FIFO would block the read for ever, `/dev/zero` would fill memory, a directory fails with an OS
message that names no key. Each is refused before a byte is read, with the file and what to give instead.
The file is opened first and then checked (fstat on the open descriptor), so a path swapped for a FIFO
between a check and the open cannot block: O_NONBLOCK makes opening a FIFO return at once.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from vmbake.errors import VmbakeError
from vmbake.units import format_size

# Larger than any real template, variable or checksum file, small enough that reading one never
# threatens the host's memory.
MAX_TEXT_FILE = 64 * 1024 * 1024

_KINDS = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


def _open_regular(path: Path, what: str) -> tuple[int, os.stat_result]:
    """An open descriptor (blocking) of `path` and its stat, which say it is a regular file; else an error."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise VmbakeError(f"{what} {path} does not exist", hint="check the path") from None
    except IsADirectoryError:
        raise _not_regular(path, what, "a directory") from None
    except OSError as exc:
        raise VmbakeError(
            f"cannot open {what} {path}: {exc.strerror}", hint="check the path and its permissions"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(path, what, _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file"))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def read_regular_bytes(path: Path, what: str, limit: int = MAX_TEXT_FILE) -> bytes:
    """The contents of `path`, which must be a regular file of at most `limit` bytes.

    `what` names the file's role for the message ("template", "variable file", "checksum file")."""
    fd, info = _open_regular(path, what)
    try:
        if info.st_size > limit:
            raise VmbakeError(
                f"{what} {path} is {format_size(info.st_size)}, more than the {format_size(limit)} vmbake reads",
                hint=f"give a {what} of ordinary size",
            )
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > limit:  # the file grew while it was read
                raise VmbakeError(
                    f"{what} {path} grew past {format_size(limit)} while it was read",
                    hint=f"give a {what} that is not being written to",
                )
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise VmbakeError(f"cannot read {what} {path}: {exc.strerror}", hint="check the file") from None
    finally:
        os.close(fd)


def digest_regular(path: Path, what: str, algorithm: str) -> hashlib._Hash:
    """The `algorithm` digest of `path`, a regular file of any size, read in blocks (not held in memory)."""
    fd, _info = _open_regular(path, what)
    try:
        digest = hashlib.new(algorithm)
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
        return digest
    except OSError as exc:
        raise VmbakeError(f"cannot read {what} {path}: {exc.strerror}", hint="check the file") from None
    finally:
        os.close(fd)


def read_regular_text(path: Path, what: str, limit: int = MAX_TEXT_FILE) -> str:
    """`read_regular_bytes` decoded as UTF-8, with an error naming the file when it is not UTF-8."""
    data = read_regular_bytes(path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VmbakeError(
            f"{what} {path} is not UTF-8 text (byte {exc.start})", hint=f"save the {what} as UTF-8"
        ) from None


def _not_regular(path: Path, what: str, kind: str) -> VmbakeError:
    return VmbakeError(
        f"{what} {path} is {kind}, not a regular file",
        hint=f"give the path of an ordinary {what} file; vmbake does not read from pipes or devices",
    )


def usable_cache_dir(variable: str, path: Path) -> Path:
    """`path`, named by the environment variable `variable`, if a cache can live there: a directory, or
    a path that can become one. Checked before a download starts, not when its first write fails."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise VmbakeError(
            f"{variable}={path} cannot be a cache directory: {probe} is not a directory",
            hint=f"set {variable} to a directory (it is made if missing), or unset it",
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise VmbakeError(
            f"{variable}={path} cannot be a cache directory: {probe} is not writable",
            hint=f"set {variable} to a directory you can write to, or unset it",
        )
    return path
