"""Retrieve the installer ISO (or the disk_image) as Packer's download step does, and check it.

URLs are tried in turn. Local paths and file:// URLs are used in place, after their checksum is checked.
http(s) URLs are downloaded into the cache (PACKER_CACHE_DIR, else VMBAKE_CACHE_DIR, else
$XDG_CACHE_HOME/vmbake or ~/.cache/vmbake), into a file named by the sha1 of iso_checksum (of the URL when
the checksum is 'none'), as Packer names it, so every mirror of one ISO shares one cache entry. See
vmbake.fetch for the lock, the resumable part file and the timeouts.
"""

from __future__ import annotations

import hashlib
import os
import threading
import urllib.parse
from pathlib import Path

from vmbake.checksums import Checksum, ChecksumSpec, find_in_sums, parse_checksum
from vmbake.errors import BuildCancelled, VmbakeError
from vmbake.fetch import (
    DownloadError,
    ProgressFactory,
    fetch_bytes,
    fetch_checked,
    is_remote,
    local_path,
    mismatch,
    verify_file,
)
from vmbake.files import usable_cache_dir
from vmbake.ui import BuildUi


def cache_dir() -> Path:
    """Where downloads are kept between builds."""
    for var in ("PACKER_CACHE_DIR", "VMBAKE_CACHE_DIR"):
        value = os.environ.get(var)
        if value:
            return usable_cache_dir(var, Path(value).absolute())
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vmbake"


def with_checksum_query(url: str, spec: ChecksumSpec) -> str:
    """The URL as Packer shows it on its second "Trying" line: with ?checksum=TYPE%3AHEX added."""
    if spec.is_none:
        return url
    if "://" not in url:  # a local path
        return f"{url}?{urllib.parse.urlencode({'checksum': spec.raw})}"
    parts = urllib.parse.urlsplit(url)
    query = [
        (k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k != "checksum"
    ]
    query.append(("checksum", spec.raw))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(sorted(query))))


def cache_target(url: str, spec: ChecksumSpec, *, extension: str = "iso", target_path: str = "") -> Path:
    """The file a download of `url` goes to: iso_target_path if it names a file, else the sha1 name in
    iso_target_path (a directory) or in the cache."""
    key = url if spec.is_none else spec.raw
    name = hashlib.sha1(key.encode()).hexdigest() + (f".{extension}" if extension else "")
    if target_path:
        target = Path(target_path)
        return target / name if target.suffix == "" else target
    return cache_dir() / name


def file_name(url: str) -> str:
    """The file name a SUMS file lists for `url`."""
    path = urllib.parse.urlsplit(url).path if is_remote(url) or url.startswith("file:") else url
    return urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1])


class _SumsCache:
    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def resolve(self, spec: ChecksumSpec, url: str) -> Checksum | None:
        if spec.checksum is not None or spec.sums_source is None:
            return spec.checksum
        source = spec.sums_source
        if source not in self.texts:
            try:
                self.texts[source] = fetch_bytes(source).decode("utf-8", errors="replace")
            except DownloadError as exc:
                raise DownloadError(url, f"cannot read the checksum file: {exc}", exc.hint) from None
        try:
            return find_in_sums(self.texts[source], file_name(url), source, spec.sums_algorithm)
        except ValueError as exc:
            raise DownloadError(
                url, str(exc), hint="check iso_checksum's file: URL and the ISO's name"
            ) from None


def check_local(
    url: str, checksum: Checksum | None, *, progress: ProgressFactory | None, cancel: threading.Event | None
) -> Path:
    """A local ISO, used in place once its checksum matches (a mismatching file is left alone)."""
    path = local_path(url).absolute()
    if not path.is_file():
        raise DownloadError(
            url,
            f"{path}: no such file",
            hint="check iso_url (relative paths start from the current directory)",
        )
    if checksum is not None:
        found = verify_file(path, checksum, progress=progress, cancel=cancel)
        if not checksum.matches(found):
            raise mismatch(url, checksum, found, None)
    return path


def retrieve(
    urls: list[str],
    checksum: str,
    ui: BuildUi,
    *,
    description: str = "ISO",
    extension: str = "iso",
    target_path: str = "",
    cancel: threading.Event | None = None,
    progress: ProgressFactory | None = None,
    key: str = "iso_checksum",
) -> Path:
    """The checked file from the first of `urls` that works; prints Packer's lines on `ui`."""
    try:
        spec = parse_checksum(checksum)
    except ValueError as exc:
        raise VmbakeError(f"{key}: {exc}", hint="fix iso_checksum in the template") from None
    if not urls:
        raise VmbakeError("no iso_url or iso_urls given", hint="set iso_url to the URL or path of the ISO")
    if progress is None:
        progress = ui.progress
    ui.say(f"Retrieving {description}")
    if spec.is_none:
        ui.warn(f"{key} is 'none': the {description} is used without checking that it is the right file")
    sums = _SumsCache()
    failures: list[DownloadError] = []
    for url in urls:
        ui.say(f"Trying {url}")
        ui.say(f"Trying {with_checksum_query(url, spec)}")
        try:
            expected = sums.resolve(spec, url)
            if not is_remote(url):
                return check_local(url, expected, progress=progress, cancel=cancel)
            target = cache_target(url, spec, extension=extension, target_path=target_path)
            return fetch_checked(url, target, expected, progress=progress, say=ui.say, cancel=cancel)
        except BuildCancelled:
            raise
        except DownloadError as exc:
            ui.say(f"Download failed {exc}")
            failures.append(exc)
    if len(failures) == 1:
        only = failures[0]
        raise VmbakeError(f"error downloading {description}: {only}", hint=only.hint)
    lines = "\n".join(f"  * {f}" for f in failures)
    raise VmbakeError(
        f"error downloading {description}: all {len(failures)} URLs failed:\n{lines}",
        hint="check iso_url/iso_urls and iso_checksum, and the network",
    )
