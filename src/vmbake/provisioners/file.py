"""The `file` provisioner: copy files and directories to the guest, or back from it.

Packer's slash rules, which users rely on:
- upload of a file: a destination ending in "/" is a directory, the file keeps its name inside it;
- upload of a directory: "src/" copies its contents into destination, "src" copies the directory itself
  (destination/src);
- download: "src/" is a directory whose contents go into destination; a destination ending in "/" is
  a directory that receives the file under its own name; missing local directories are created.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from vmbake.config.provisioners import FileConfig
from vmbake.errors import VmbakeError
from vmbake.provisioners import Run


def sources(config: FileConfig) -> list[str]:
    return ([config.source] if config.source else []) + list(config.sources)


def upload_target(src: Path, source_text: str, destination: str) -> tuple[str, bool]:
    """(guest path, is_directory_upload) for one source, by Packer's slash rules."""
    if src.is_dir():
        if source_text.endswith("/"):
            return destination, True
        return posixpath.join(destination.rstrip("/") or "/", src.name), True
    if destination.endswith("/"):
        return destination + src.name, False
    return destination, False


def download_target(source: str, destination: str) -> tuple[Path, Path, bool]:
    """(local path, local directory to create, is_directory_download) for one guest source."""
    is_dir = source.endswith("/")
    if not destination.endswith("/"):
        return Path(destination), Path(destination).parent, is_dir
    if is_dir:
        return Path(destination), Path(destination), True
    return Path(destination) / posixpath.basename(source), Path(destination), False


def provision(run: Run, config: FileConfig) -> None:
    if not config.destination:
        raise VmbakeError("file provisioner: destination is required", hint="set 'destination'")
    items = sources(config)
    if config.direction == "download":
        for source in items:
            _download(run, source, config.destination)
        return
    comm = run.comm()
    if config.content and not items:
        run.ctx.ui.say(f"Uploading content => {config.destination}")
        comm.upload_bytes(config.content.encode(), config.destination)
        return
    if not items:
        raise VmbakeError("file provisioner: nothing to upload", hint="give source, sources or content")
    if len(items) > 1 and not config.destination.endswith("/"):
        raise VmbakeError(
            "file provisioner: with several sources the destination must be a directory",
            hint=f"end destination with a slash: {config.destination}/",
        )
    for source in items:
        local = Path(source)
        if not local.exists():
            raise VmbakeError(f"file provisioner: {source} does not exist", hint="check 'source'")
        run.ctx.ui.say(f"Uploading {source} => {config.destination}")
        target, is_dir = upload_target(local, source, config.destination)
        run.check_cancel()
        if is_dir:
            comm.upload_dir(local, target)
            continue
        if config.destination.endswith("/"):
            comm.mkdir_p(config.destination)
        comm.upload(local, target)


def _download(run: Run, source: str, destination: str) -> None:
    if any(ch in source for ch in "*?["):
        raise VmbakeError(
            f"file provisioner: wildcards are not supported in download sources ({source})",
            hint="download the directory with a trailing slash instead",
        )
    run.ctx.ui.say(f"Downloading {source} => {destination}")
    local, directory, is_dir = download_target(source, destination)
    directory.mkdir(parents=True, exist_ok=True)
    comm = run.comm()
    run.check_cancel()
    if is_dir:
        comm.download_dir(source, local)
        return
    try:
        comm.download(source, local)
    except VmbakeError as exc:
        raise VmbakeError(
            f"file provisioner: {exc.message}",
            hint="to download a directory, end its source path with a slash",
        ) from None
