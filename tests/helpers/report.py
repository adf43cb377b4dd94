"""Headless Chromium for the report's HTML page (Debian package chromium), and a small PNG reader.

`chromium_dump_dom` returns the page's DOM after rendering; `chromium_screenshot` writes a PNG, and
`png_colour_count` counts the pixels of one colour in it (no imaging library is installed here).
`edit_file_in_image` rewrites one file of a disk image's root filesystem with debugfs (e2fsprogs).
"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

from vmbake import procs

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
]  # fmt: skip


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(args: list[str]) -> str:
    binary = chromium()
    assert binary is not None, "chromium is not installed (apt-get install chromium)"
    with tempfile.TemporaryDirectory(prefix="vmbake-chromium-") as profile:
        argv = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        return procs.run(argv, timeout=120, what="chromium").stdout


def chromium_dump_dom(page: Path) -> str:
    return _run(["--dump-dom", page.resolve().as_uri()])


def chromium_screenshot(page: Path, png: Path, size: tuple[int, int] = (800, 1000)) -> Path:
    _run([f"--screenshot={png}", f"--window-size={size[0]},{size[1]}", page.resolve().as_uri()])
    return png


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit, non-interlaced RGB or RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and interlace == 0 and colour in (2, 6), "only 8-bit RGB/RGBA PNGs"
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    low, high = int.from_bytes(b"\x7f" * stride, "big"), int.from_bytes(b"\x80" * stride, "big")
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 2:  # "up": add the row above byte by byte, all at once (no carry between bytes)
            a, b = int.from_bytes(line, "big"), int.from_bytes(previous, "big")
            line = bytearray((((a & low) + (b & low)) ^ ((a ^ b) & high)).to_bytes(stride, "big"))
        elif kind != 0:
            for x in range(stride):
                a = line[x - channels] if x >= channels else 0
                b = previous[x]
                c = previous[x - channels] if x >= channels else 0
                if kind == 1:
                    line[x] = (line[x] + a) & 0xFF
                elif kind == 3:
                    line[x] = (line[x] + (a + b) // 2) & 0xFF
                elif kind == 4:
                    line[x] = (line[x] + _paeth(a, b, c)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return (
        width,
        height,
        [bytes(r) for r in rows]
        if channels == 3
        else [b"".join(r[i : i + 3] for i in range(0, len(r), 4)) for r in rows],
    )


def png_colour_count(path: Path, rgb: tuple[int, int, int]) -> int:
    """About how many pixels have exactly the colour `rgb` (runs of its 3 bytes in each row)."""
    _, _, rows = png_pixels(path)
    return sum(row.count(bytes(rgb)) for row in rows)


def edit_file_in_image(image: Path, out: Path, path: str, edit: Callable[[str], str], work: Path) -> Path:
    """Write `out` (qcow2): a copy of `image` whose ext4 root partition has `path` rewritten by `edit`.

    No boot and no mount: the disk is converted to raw, debugfs edits the partition in place (at its
    offset), and the result is converted back. The root partition is the GPT one named "root", else the
    largest."""
    raw = work / "edit.raw"
    procs.run(["qemu-img", "convert", "-U", "-O", "raw", str(image), str(raw)])
    table = json.loads(procs.run(["sfdisk", "-J", str(raw)]).stdout)["partitiontable"]
    parts = table["partitions"]
    root = next((p for p in parts if p.get("name") == "root"), max(parts, key=lambda p: int(p["size"])))
    device = f"{raw}?offset={int(root['start']) * int(table.get('sectorsize', 512))}"
    text = procs.run(["debugfs", "-R", f"cat {path}", device]).stdout
    new = work / "edited"
    new.write_text(edit(text))
    new.chmod(0o644)
    procs.run(["debugfs", "-w", "-R", f"rm {path}", device])
    procs.run(["debugfs", "-w", "-R", f"write {new} {path}", device])
    check = procs.run(["debugfs", "-R", f"cat {path}", device]).stdout
    assert check == new.read_text(), f"debugfs did not write {path}"
    procs.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(out)])
    raw.unlink()
    return out
