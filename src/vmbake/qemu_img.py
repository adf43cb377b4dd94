"""qemu-img: pure argv builders (create, convert, resize, info, map) and the helpers that run them.

The builders follow Packer's argument order, with `qemu_img_args` extras placed where Packer puts them.
`convert()` writes into a temporary file beside the target and renames it into place only when qemu-img
succeeded, retries while another process still holds the image's write lock, and shows progress.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from vmbake import procs
from vmbake.errors import BuildCancelled, VmbakeError
from vmbake.ui import BuildUi

QEMU_IMG = "qemu-img"
LOCK_ERROR = 'Failed to get shared "write" lock'
_PROGRESS = re.compile(r"\(\s*(\d+(?:\.\d+)?)/100%\)")


def create_argv(
    path: Path | str,
    size: str,
    *,
    fmt: str = "qcow2",
    backing_file: Path | str | None = None,
    backing_format: str = "qcow2",
    extra: Sequence[str] = (),
) -> list[str]:
    """qemu-img create [-b BACKING -F FMT] EXTRA PATH SIZE."""
    argv = [QEMU_IMG, "create", "-f", fmt]
    if backing_file is not None:
        argv += ["-b", str(backing_file), "-F", backing_format]
    return [*argv, *extra, str(path), size]


def convert_argv(
    source: Path | str,
    target: Path | str,
    *,
    fmt: str = "qcow2",
    compress: bool = False,
    compression_type: str | None = None,
    extra: Sequence[str] = (),
    progress: bool = False,
) -> list[str]:
    """qemu-img convert [-p] [-c] EXTRA [-o compression_type=T] -O FMT SOURCE TARGET."""
    argv = [QEMU_IMG, "convert"]
    if progress:
        argv.append("-p")
    if compress:
        argv.append("-c")
    argv += extra
    if compress and compression_type and fmt == "qcow2":
        argv += ["-o", f"compression_type={compression_type}"]
    return [*argv, "-O", fmt, str(source), str(target)]


def resize_argv(path: Path | str, size: str, *, fmt: str = "qcow2", extra: Sequence[str] = ()) -> list[str]:
    """qemu-img resize -f FMT EXTRA PATH SIZE."""
    return [QEMU_IMG, "resize", "-f", fmt, *extra, str(path), size]


def info_argv(path: Path | str, *, fmt: str | None = None) -> list[str]:
    """qemu-img info --output=json -U [-f FMT] PATH (-U: readable while a VM still holds it)."""
    return [QEMU_IMG, "info", "--output=json", "-U", *(["-f", fmt] if fmt else []), str(path)]


def map_argv(path: Path | str, *, fmt: str | None = None) -> list[str]:
    """qemu-img map --output=json [-f FMT] PATH: the image's extents, with whether each holds data."""
    return [QEMU_IMG, "map", "--output=json", *(["-f", fmt] if fmt else []), str(path)]


@functools.cache
def supports_zstd() -> bool:
    """Whether this qemu-img can write zstd-compressed qcow2 clusters (asked once per process)."""
    with tempfile.TemporaryDirectory(prefix="vmbake-zstd-") as tmp:
        result = procs.run(
            create_argv(Path(tmp) / "probe.qcow2", "1M", extra=["-o", "compression_type=zstd"]), check=False
        )
    return result.returncode == 0


def resolve_compression(choice: str) -> str:
    """'zstd' or 'zlib' for the compression_type key ('auto': zstd when qemu-img supports it)."""
    if choice == "auto":
        return "zstd" if supports_zstd() else "zlib"
    if choice == "zstd" and not supports_zstd():
        raise VmbakeError(
            "compression_type is 'zstd' but this qemu-img cannot write zstd clusters",
            hint="set compression_type to 'zlib' or 'auto', or install a qemu-utils built with zstd (QEMU 5.1+)",
        )
    return choice


def image_info(path: Path) -> tuple[str, int]:
    """(format, virtual size in bytes) of an image, as qemu-img reads it; -U so a running VM's disk works."""
    out = procs.run([QEMU_IMG, "info", "--output=json", "-U", str(path)], what="qemu-img info").stdout
    data = json.loads(out)
    return str(data.get("format", "raw")), int(data.get("virtual-size", 0))


def run_qemu_img(argv: Sequence[str], *, what: str, on_line: Callable[[str], None] | None = None) -> None:
    procs.run(argv, what=what, on_line=on_line)


def convert(
    source: Path,
    target: Path,
    *,
    fmt: str = "qcow2",
    compress: bool = False,
    compression_type: str | None = None,
    extra: Sequence[str] = (),
    ui: BuildUi | None = None,
    tries: int = 10,
    retry_delay: float = 1.0,
    cancelled: Callable[[], bool] = lambda: False,
) -> None:
    """Convert `source` into `target` through a temporary file; `target` may be `source` itself.

    The temporary file lives in the target's directory so the final rename is atomic. While another
    process (a QEMU that is still exiting) holds the image's write lock, retry with a growing pause.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".convert", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    argv = convert_argv(
        source,
        tmp,
        fmt=fmt,
        compress=compress,
        compression_type=compression_type,
        extra=extra,
        progress=ui is not None,
    )
    delay = retry_delay
    try:
        for attempt in range(1, tries + 1):
            try:
                _convert_once(argv, ui)
                break
            except VmbakeError as error:
                if LOCK_ERROR not in str(error) or attempt == tries:
                    if LOCK_ERROR in str(error):
                        raise VmbakeError(
                            f"exhausted retries for getting the file lock on {source}: {error}",
                            hint="another process still has the image open; stop it and run the build again",
                        ) from error
                    raise
                if ui is not None:
                    ui.say("Error getting file lock for conversion; retrying...")
                deadline = time.monotonic() + delay
                while time.monotonic() < deadline:
                    if cancelled():
                        raise BuildCancelled() from error
                    time.sleep(0.1)
                delay = min(delay + retry_delay, 10.0)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)  # mkstemp made it 0600; give the image the mode qemu-img would
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _convert_once(argv: list[str], ui: BuildUi | None) -> None:
    if ui is None:
        run_qemu_img(argv, what="qemu-img convert")
        return
    with ui.progress("Converting", 100.0, transfer=False) as bar:

        def on_line(line: str) -> None:
            match = _PROGRESS.search(line)
            if match:
                bar.update(float(match.group(1)), 100.0)

        run_qemu_img(argv, what="qemu-img convert", on_line=on_line)
