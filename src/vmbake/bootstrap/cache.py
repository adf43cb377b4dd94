"""A cache of downloaded .deb files, keyed by suite and mirror, shared by every debian-bootstrap build.

mmdebstrap reads the cache through a setup hook (`sync-in`) and writes what it used to a scratch directory
(`sync-out`); new files are then moved into the cache one by one with an atomic rename, so two builds that
share the cache never see a half-written file and need no lock.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from vmbake.files import usable_cache_dir


def cache_root() -> Path:
    """vmbake's cache directory: $VMBAKE_CACHE_DIR, else $XDG_CACHE_HOME/vmbake, else ~/.cache/vmbake."""
    explicit = os.environ.get("VMBAKE_CACHE_DIR")
    if explicit:
        return usable_cache_dir("VMBAKE_CACHE_DIR", Path(explicit))
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "vmbake"


def deb_cache_dir(suite: str, mirror: str, root: Path | None = None) -> Path:
    """The cache directory of one suite from one mirror: debs/<suite>-<host>-<hash of the URL>."""
    host = re.sub(r"[^A-Za-z0-9.-]+", "_", mirror.split("://", 1)[-1].split("/", 1)[0]) or "mirror"
    digest = hashlib.sha256(mirror.rstrip("/").encode()).hexdigest()[:10]
    return (root or cache_root()) / "debs" / f"{suite}-{host}-{digest}"


@dataclass(frozen=True)
class CacheStats:
    """What one build took from the cache and what it downloaded."""

    hits: int
    hit_bytes: int
    downloaded: int
    downloaded_bytes: int

    def summary(self) -> str:
        mib = 1 << 20
        return (
            f"{self.hits} packages ({self.hit_bytes / mib:.1f} MiB) from the cache, "
            f"{self.downloaded} ({self.downloaded_bytes / mib:.1f} MiB) downloaded"
        )


def debs_in(directory: Path) -> dict[str, int]:
    """File name -> size of each .deb in `directory` (empty if it does not exist)."""
    if not directory.is_dir():
        return {}
    return {p.name: p.stat().st_size for p in directory.iterdir() if p.name.endswith(".deb") and p.is_file()}


def absorb(used_dir: Path, cache_dir: Path, before: dict[str, int]) -> CacheStats:
    """Move the .debs a build used into the cache and count hits (already cached) and downloads."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    hits = hit_bytes = downloaded = downloaded_bytes = 0
    for name, size in sorted(debs_in(used_dir).items()):
        if before.get(name) == size:
            hits += 1
            hit_bytes += size
            continue
        downloaded += 1
        downloaded_bytes += size
        partial = cache_dir / f".{name}.part-{os.getpid()}"
        shutil.copyfile(used_dir / name, partial)
        os.replace(partial, cache_dir / name)
    return CacheStats(hits, hit_bytes, downloaded, downloaded_bytes)
