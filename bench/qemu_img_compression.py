"""Compressed qcow2 conversion: zstd clusters against zlib, on an image filled with this host's files.

Prints the time and size of each and their ratios. Usage: python bench/qemu_img_compression.py [MiB]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from vmbake import procs, qemu_img

SOURCES = ("/usr/lib/x86_64-linux-gnu", "/usr/share", "/usr/bin")


def fill(raw: Path, mib: int) -> None:
    """Concatenate host files (binaries, text, docs) into `raw`: data like an installed system's."""
    budget = mib << 20
    with raw.open("wb") as out:
        for root in SOURCES:
            for dirpath, _dirs, files in os.walk(root):
                for name in sorted(files):
                    path = Path(dirpath) / name
                    if budget <= 0:
                        return
                    if path.is_symlink() or not path.is_file():
                        continue
                    data = path.read_bytes()[:budget]
                    out.write(data)
                    budget -= len(data)


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    if not qemu_img.supports_zstd():
        sys.exit("this qemu-img cannot write zstd clusters")
    with tempfile.TemporaryDirectory(prefix="vmbake-bench-") as tmp:
        raw = Path(tmp) / "disk.raw"
        fill(raw, mib)
        print(f"source: {raw.stat().st_size / (1 << 20):.0f} MiB of host files")
        results = {}
        for kind in ("zlib", "zstd"):
            target = Path(tmp) / f"{kind}.qcow2"
            started = time.monotonic()
            procs.run(qemu_img.convert_argv(raw, target, compress=True, compression_type=kind))
            results[kind] = (time.monotonic() - started, target.stat().st_size)
            seconds, size = results[kind]
            print(f"{kind}: {seconds:6.2f} s  {size / (1 << 20):7.1f} MiB")
        (zt, zs), (st, ss) = results["zlib"], results["zstd"]
        print(f"zstd/zlib: time {st / zt:.2f}x (zstd {zt / st:.1f} times faster), size {ss / zs:.3f}x")


if __name__ == "__main__":
    main()
