"""A cache of downloaded .deb files, keyed by suite and mirror, shared by every debian-bootstrap build.

Several vmbake processes may use one cache at the same time; what keeps that safe:
- mmdebstrap reads the cache with a setup hook (`sync-in`), which runs tar over the directory, and tar
  fails ("file changed as we read it") when another build adds a file meanwhile. So mmdebstrap never
  reads the cache itself but a private copy of it in the cache's scratch directory (`snapshot`).
- mmdebstrap writes the .debs it used to a scratch directory (`sync-out`); the new ones are copied to the
  cache's scratch directory and then linked into the cache under their own name (`absorb`): a file
  appears whole or not at all, a cached file is never replaced, and the cache never holds a partial file.
- A build that finds no package of its architecture in the cache fills it under a lock (`fill_lock`), as
  apt locks its archive directory: a second build of the same suite and architecture waits, naming the
  first, and then takes every package from the cache instead of downloading them all a second time.
  On a cache that holds packages already, and for other architectures, builds run side by side.
- A build that used a new version of a package removes the versions of that package (and architecture)
  it supersedes (`prune`), so a cache kept across point releases does not grow without end, nor does
  every build's copy of it. Readers therefore take a .deb that vanishes between listing and reading as
  never there; a build that had copied it already installs it from its copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vmbake.files import usable_cache_dir
from vmbake.locks import FileLock, wait_saying

# Scratch entries older than this are left over from a build that was killed (SIGKILL, power loss).
STALE_SCRATCH_SECONDS = 24 * 3600


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
    pruned: int = 0
    pruned_bytes: int = 0

    def summary(self) -> str:
        mib = 1 << 20
        text = (
            f"{self.hits} packages ({self.hit_bytes / mib:.1f} MiB) from the cache, "
            f"{self.downloaded} ({self.downloaded_bytes / mib:.1f} MiB) downloaded"
        )
        if self.pruned:
            text += f", {self.pruned} superseded ({self.pruned_bytes / mib:.1f} MiB) removed"
        return text


def debs_in(directory: Path) -> dict[str, int]:
    """File name -> size of each .deb in `directory` (empty if it does not exist). A file that another
    build removes while this lists the directory is left out."""
    if not directory.is_dir():
        return {}
    found: dict[str, int] = {}
    for entry in directory.iterdir():
        if entry.name.endswith(".deb"):
            with contextlib.suppress(FileNotFoundError):
                if entry.is_file():
                    found[entry.name] = entry.stat().st_size
    return found


def package_key(filename: str) -> str:
    """NAME_VERSION_ARCH.deb -> "NAME ARCH": one package of one architecture, whatever its version.
    (Debian package names and versions have no "_"; apt writes an epoch's ":" as "%3a".)"""
    parts = filename.removesuffix(".deb").split("_")
    return f"{parts[0]} {parts[-1]}" if len(parts) >= 3 else filename


def prune(cache_dir: Path, used: dict[str, int]) -> tuple[int, int]:
    """Remove the cached .debs that `used` (the .debs a build just installed) supersedes: the other
    versions of the same package and architecture. Packages the build did not use stay. (files, bytes)."""
    wanted = {package_key(name) for name in used}
    files = size = 0
    for name, bytes_ in debs_in(cache_dir).items():
        if name not in used and package_key(name) in wanted:
            with contextlib.suppress(FileNotFoundError):
                (cache_dir / name).unlink()
                files += 1
                size += bytes_
    return files, size


def scratch_dir(cache_dir: Path) -> Path:
    """Where snapshots and half-copied files live: beside the suites' caches (same file system, so that
    hard links work), never inside one (mmdebstrap would copy them in)."""
    return cache_dir.parent / ".scratch"


def fill_lock(cache_dir: Path, architecture: str, owner: str = "") -> FileLock:
    """The lock a build holds while it fills the cache with its architecture's packages (see the module
    docstring)."""
    return FileLock(cache_dir.with_name(f"{cache_dir.name}.{architecture}.lock"), owner=owner)


def holds_architecture(cache_dir: Path, architecture: str) -> bool:
    """Whether the cache holds a package built for `architecture` (a file named *_ARCH.deb)."""
    return any(name.endswith(f"_{architecture}.deb") for name in debs_in(cache_dir))


def sweep_scratch(cache_dir: Path, max_age: float = STALE_SCRATCH_SECONDS) -> None:
    """Remove scratch entries that a killed build left behind (a running build's are young)."""
    scratch = scratch_dir(cache_dir)
    if not scratch.is_dir():
        return
    cutoff = time.time() - max_age
    for entry in scratch.iterdir():
        with contextlib.suppress(OSError):
            if entry.lstat().st_mtime < cutoff:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink()


def snapshot(cache_dir: Path) -> Path:
    """A new directory holding copies of the cache's .debs as they are now, for mmdebstrap's sync-in.
    The caller removes it. Copies, not hard links: linking or unlinking a file changes its inode's
    ctime, which makes the tar of another build's sync-in, reading the same inode, fail."""
    scratch = scratch_dir(cache_dir)
    scratch.mkdir(parents=True, exist_ok=True)
    sweep_scratch(cache_dir)
    snap = Path(tempfile.mkdtemp(prefix=f"snapshot-{cache_dir.name}-", dir=scratch))
    for name in debs_in(cache_dir):
        with contextlib.suppress(FileNotFoundError):  # pruned meanwhile by another build
            shutil.copyfile(cache_dir / name, snap / name)
    return snap


@dataclass(frozen=True)
class CacheView:
    """One build's use of the cache: its copy for mmdebstrap and what the cache held then."""

    cache_dir: Path
    snapshot: Path
    before: dict[str, int]


@contextlib.contextmanager
def use_cache(
    cache_dir: Path,
    say: Callable[[str], None] | None,
    *,
    architecture: str = "amd64",
    owner: str = "",
    suite: str = "",
    cancel: threading.Event | None = None,
) -> Iterator[CacheView]:
    """The cache as one build sees it, for the time of the `with` block (mmdebstrap, then `absorb`).

    When the cache holds no package of `architecture`, the block runs under the fill lock: a second
    build waits (saying for whom: `owner` is what the holder calls itself) and then finds the packages
    the first one cached."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if not holds_architecture(cache_dir, architecture):
            lock = fill_lock(cache_dir, architecture, owner)
            waiting = (
                f"The .deb cache of {suite or cache_dir.name} ({architecture}) is empty and another build "
                "is filling it"
            )
            wait_saying(lock, say, waiting, cancel=cancel)
            stack.callback(lock.release)
            if holds_architecture(cache_dir, architecture):
                lock.release()  # filled meanwhile: the other build's packages are there to use
        before = debs_in(cache_dir)
        snap = snapshot(cache_dir)
        stack.callback(shutil.rmtree, snap, ignore_errors=True)
        yield CacheView(cache_dir, snap, before)


def absorb(used_dir: Path, cache_dir: Path, before: dict[str, int]) -> CacheStats:
    """Put the .debs a build used into the cache and count hits (cached before the build) and downloads.

    A .deb another build cached meanwhile is kept as it is: a file name names one package version."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    scratch = scratch_dir(cache_dir)
    scratch.mkdir(parents=True, exist_ok=True)
    hits = hit_bytes = downloaded = downloaded_bytes = 0
    used = debs_in(used_dir)
    for name, size in sorted(used.items()):
        if before.get(name) == size:
            hits += 1
            hit_bytes += size
            continue
        downloaded += 1
        downloaded_bytes += size
        final = cache_dir / name
        with contextlib.suppress(FileNotFoundError):
            if final.stat().st_size == size:
                continue  # cached meanwhile by another build
        fd, temp = tempfile.mkstemp(prefix=f"incoming-{name}-", dir=scratch)
        os.close(fd)
        try:
            shutil.copyfile(used_dir / name, temp)
            try:
                os.link(temp, final)  # never over a file another build put there
            except FileExistsError:
                if final.stat().st_size != size:  # not the same package: a broken file, replace it
                    os.replace(temp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
    pruned, pruned_bytes = prune(cache_dir, used)
    return CacheStats(hits, hit_bytes, downloaded, downloaded_bytes, pruned, pruned_bytes)
