"""The `compress` post-processor: pack the artifact files into one archive.

The format comes from `format`, else from the output's extension: tar, tar.gz (tgz), tar.xz, tar.zst
(vmbake; with the zstd tool), zip, or gz / xz for a single file. Archive members are named relative to
the artifact's directory's parent ("output-qemu/disk.qcow2"). As in Packer, the input artifacts are not
kept unless keep_input_artifact is true.
"""

from __future__ import annotations

import contextlib
import gzip
import lzma
import os
import shutil
import tarfile
import threading
import zipfile
from pathlib import Path
from typing import Any

from vmbake import procs
from vmbake.config.postprocessors import CompressConfig
from vmbake.errors import BuildCancelled, VmbakeError
from vmbake.postprocessors import CancellableFile, add_to_tar, render_output
from vmbake.state import Artifact, BuildContext

BUILDER_ID = "packer.post-processor.compress"
_BY_EXTENSION = [
    (".tar.gz", "tar.gz"), (".tgz", "tar.gz"), (".tar.xz", "tar.xz"), (".tar.zst", "tar.zst"),
    (".tar", "tar"), (".zip", "zip"), (".gz", "gz"), (".xz", "xz"),
]  # fmt: skip


def archive_format(cfg: CompressConfig, out: Path) -> str:
    wanted = {"tgz": "tar.gz"}.get(cfg.format, cfg.format)
    if not wanted:
        wanted = next((fmt for ext, fmt in _BY_EXTENSION if out.name.endswith(ext)), out.suffix.lstrip("."))
    if wanted not in {fmt for _, fmt in _BY_EXTENSION}:
        raise VmbakeError(
            f"cannot make a {wanted or 'such'} archive ({out.name})",
            hint="use an output ending in .tar.gz, .tar.xz, .tar.zst, .tar, .zip, .gz or .xz",
        )
    return wanted


def members(artifacts: list[Artifact]) -> list[tuple[Path, str]]:
    """(file, name in the archive) for every artifact file."""
    found: list[tuple[Path, str]] = []
    for artifact in artifacts:
        if artifact.path.is_dir():
            base = artifact.path.parent
            found += [(p, str(p.relative_to(base))) for p in sorted(artifact.path.rglob("*")) if p.is_file()]
        elif artifact.path.exists():
            found.append((artifact.path, artifact.path.name))
    return found


def _level(cfg: CompressConfig, default: int) -> int:
    return default if cfg.compression_level < 0 else max(1, cfg.compression_level)


def write_archive(
    fmt: str, out: Path, files: list[tuple[Path, str]], cfg: CompressConfig, cancel: threading.Event
) -> None:
    """`files` (path, name in the archive) into `out` as `fmt`; stops with BuildCancelled once `cancel` is set."""
    if fmt in ("gz", "xz"):
        if len(files) != 1:
            raise VmbakeError(
                f"a .{fmt} file holds one file, the artifact has {len(files)}",
                hint=f"use .tar.{fmt} for several files",
            )
        opener: Any = gzip.open if fmt == "gz" else lzma.open
        kwargs = {"compresslevel": _level(cfg, 6)} if fmt == "gz" else {"preset": _level(cfg, 6)}
        with CancellableFile(files[0][0], cancel) as src, opener(out, "wb", **kwargs) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    elif fmt == "zip":
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=_level(cfg, 6)) as z:
            for path, name in files:
                if cancel.is_set():  # between members: zipfile reads a member's file itself
                    raise BuildCancelled()
                z.write(path, name)
    elif fmt == "tar.zst":
        plain = out.with_name(out.name + ".tar.tmp")
        try:
            write_archive("tar", plain, files, cfg, cancel)
            procs.run(
                ["zstd", "-q", "-f", "-T0", f"-{_level(cfg, 3)}", str(plain), "-o", str(out)], what="zstd"
            )
        finally:
            with contextlib.suppress(FileNotFoundError):
                plain.unlink()
    else:
        tar_open: Any = tarfile.open  # its overloads want a literal mode
        mode = {"tar": "w", "tar.gz": "w:gz", "tar.xz": "w:xz"}[fmt]
        level: dict[str, Any] = {}
        if fmt == "tar.gz":
            level = {"compresslevel": _level(cfg, 6)}
        elif fmt == "tar.xz":
            level = {"preset": _level(cfg, 6)}
        with tar_open(out, mode, **level) as tar:
            for path, name in files:
                add_to_tar(tar, path, name, cancel)


def run(ctx: BuildContext, config: Any, artifacts: list[Artifact]) -> tuple[list[Artifact], bool, bool]:
    cfg: CompressConfig = config if isinstance(config, CompressConfig) else CompressConfig()
    out = render_output(ctx, cfg.output)
    fmt = archive_format(cfg, out)
    files = members(artifacts)
    if not files:
        raise VmbakeError("the artifact has no files to compress")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        write_archive(fmt, tmp, files, cfg, ctx.cancel)
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return [Artifact(BUILDER_ID, out, f"compressed artifacts in: {out}")], False, False
