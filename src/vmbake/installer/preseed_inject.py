"""Put a preseed inside the installer's initrd, so d-i reads it as /preseed.cfg without any network.

The Linux kernel unpacks every compressed cpio archive found one after another in the initrd, later
files replacing earlier ones. So the original initrd.gz is left byte for byte as it is, and a second,
gzip-compressed "newc" cpio archive holding only preseed.cfg is appended to it.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterable
from pathlib import Path

from vmbake.errors import VmbakeError

_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _entry(ino: int, name: str, mode: int, data: bytes, mtime: int) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, mtime, len(data), 0, 0, 0, 0, len(encoded), 0)
    header = _MAGIC + b"".join(f"{value:08X}".encode() for value in fields)
    head = header + encoded
    return head + _pad4(len(head)) + data + _pad4(len(data))


def newc_archive(files: Iterable[tuple[str, bytes]], *, mode: int = 0o644, mtime: int = 0) -> bytes:
    """A cpio archive in the "newc" format (what the kernel's initramfs unpacker reads) of regular files.

    Names are stored without a leading slash, as `cpio -o -H newc` does. mtime 0 keeps it reproducible.
    """
    parts = []
    for ino, (name, data) in enumerate(files, start=1):
        clean = name.lstrip("/")
        if not clean or clean == _TRAILER:
            raise ValueError(f"invalid member name {name!r}")
        parts.append(_entry(ino, clean, 0o100000 | mode, data, mtime))
    parts.append(_entry(0, _TRAILER, 0, b"", 0))
    return b"".join(parts)


def read_newc(blob: bytes) -> dict[str, bytes]:
    """The regular files of one uncompressed newc archive (the inverse of `newc_archive`, for checks)."""
    files: dict[str, bytes] = {}
    pos = 0
    while True:
        if blob[pos : pos + 6] != _MAGIC:
            raise ValueError(f"no newc header at offset {pos}")
        fields = [int(blob[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_at = pos + 110
        name = blob[name_at : name_at + namesize - 1].decode()
        data_at = name_at + namesize + (-(110 + namesize) % 4)
        if name == _TRAILER:
            return files
        if mode & 0o170000 == 0o100000:
            files[name] = blob[data_at : data_at + size]
        pos = data_at + size + (-size % 4)


def append_preseed(initrd: Path, preseed: Path, dest: Path) -> Path:
    """Write `dest`: the initrd `initrd` followed by a gzip'd cpio holding `preseed` as /preseed.cfg."""
    try:
        content = preseed.read_bytes()
    except OSError as err:
        raise VmbakeError(
            f"cannot read the preseed file {preseed}: {err.strerror}",
            hint="check preseed_file in the template (a path relative to the template's directory)",
        ) from err
    member = gzip.compress(newc_archive([("preseed.cfg", content)]), compresslevel=9, mtime=0)
    tmp = dest.with_name(dest.name + ".part")
    with initrd.open("rb") as src, tmp.open("wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
        out.write(member)
    tmp.replace(dest)
    return dest
