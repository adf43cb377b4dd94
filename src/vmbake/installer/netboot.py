"""Fetch the Debian installer's netboot kernel and initrd for a suite, checked through the archive's signatures.

They come from the package debian-installer-N-netboot-ARCH of the suite's main component, so a template
that names a suite (not an ISO URL) follows the suite's point releases and never goes stale. Every file
is checked before the next is trusted: InRelease (gpgv, Debian's keyring), then the Packages index
(sha256 from InRelease), then the .deb (sha256 from Packages). The extracted kernel and initrd are cached
under the .deb's sha256; InRelease and the Packages index are fetched again each time, since they change.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vmbake import aptproxy
from vmbake.errors import BuildCancelled, VmbakeError
from vmbake.installer import debarchive
from vmbake.locks import FileLock, wait_saying
from vmbake.ui import BuildUi

# d-i's netboot package carries the release number, not the codename.
SUITE_NUMBERS = {"buster": 10, "bullseye": 11, "bookworm": 12, "trixie": 13, "forky": 14}
_TIMEOUT = 60.0


@dataclass(frozen=True)
class NetbootFiles:
    """The checked netboot kernel and initrd, and what they came from."""

    kernel: Path
    initrd: Path
    package: str
    version: str
    deb_sha256: str


def package_name(suite: str, arch: str = "amd64") -> str:
    """debian-installer-12-netboot-amd64 for bookworm; an error naming the known suites otherwise."""
    number = SUITE_NUMBERS.get(suite)
    if number is None:
        known = ", ".join(f"{name} ({num})" for name, num in SUITE_NUMBERS.items())
        raise VmbakeError(
            f"suite {suite!r} is not a Debian release vmbake knows the installer of",
            hint=f"set suite to a codename: {known}",
        )
    return f"debian-installer-{number}-netboot-{arch}"


def download(
    url: str,
    dest: Path,
    *,
    ui: BuildUi | None = None,
    cancel: threading.Event | None = None,
    proxy: aptproxy.AptProxy = aptproxy.NO_PROXY,
) -> Path:
    """GET `url` into `dest` (atomically: a partial file never has the final name), through `proxy` if set."""
    tmp = dest.with_name(dest.name + ".part")
    try:
        with aptproxy.opener(proxy).open(url, timeout=_TIMEOUT) as response, tmp.open("wb") as out:
            total = response.headers.get("Content-Length")
            size = int(total) if total and total.isdigit() else None
            context = ui.progress(dest.name, size) if ui is not None else contextlib.nullcontext(None)
            with context as bar:
                while block := response.read(1 << 20):
                    if cancel is not None and cancel.is_set():
                        raise BuildCancelled()
                    out.write(block)
                    if bar is not None:
                        bar.advance(len(block))
    except urllib.error.HTTPError as err:
        tmp.unlink(missing_ok=True)
        raise VmbakeError(
            f"{url}: the server answered {err.code} {err.reason}",
            hint="check suite and mirror (the mirror must be a Debian archive root, like http://deb.debian.org/debian)",
        ) from err
    except (urllib.error.URLError, OSError) as err:
        tmp.unlink(missing_ok=True)
        reason = getattr(err, "reason", err)
        via = f" through the package proxy {proxy.url} ({proxy.origin})" if proxy.url else ""
        raise VmbakeError(
            f"cannot download {url}{via}: {reason}", hint="check mirror and your network"
        ) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(dest)
    return dest


def fetch_netboot(
    suite: str,
    mirror: str,
    cache_dir: Path,
    *,
    arch: str = "amd64",
    keyrings: Sequence[Path] = (debarchive.DEBIAN_KEYRING,),
    ui: BuildUi | None = None,
    cancel: threading.Event | None = None,
    proxy: aptproxy.AptProxy = aptproxy.NO_PROXY,
) -> NetbootFiles:
    """The netboot kernel and initrd of `suite` from `mirror`, checked and cached under `cache_dir`."""
    package = package_name(suite, arch)
    base = mirror.rstrip("/")
    if urllib.parse.urlsplit(base).scheme not in ("http", "https", "file"):
        raise VmbakeError(
            f"mirror {mirror!r} is not a URL", hint="use an archive root like http://deb.debian.org/debian"
        )
    store = cache_dir / "debian-netboot"
    store.mkdir(parents=True, exist_ok=True)
    if ui is not None:
        via = f" through {proxy.url}" if proxy.url else ""
        ui.say(f"Fetching the Debian installer for {suite} from {base}{via} ...")
    if urllib.parse.urlsplit(base).scheme == "http":
        aptproxy.check(proxy, f"{base}/dists/{suite}/InRelease")
    with tempfile.TemporaryDirectory(prefix="vmbake-netboot-") as scratch:
        work = Path(scratch)
        work.chmod(0o700)
        release_url = f"{base}/dists/{suite}/InRelease"
        inrelease = download(release_url, work / "InRelease", cancel=cancel, proxy=proxy)
        text = debarchive.verify_inrelease(inrelease, keyrings, work, release_url)
        release = debarchive.parse_release(text)
        debarchive.check_release(release, suite, release_url)
        if ui is not None:
            ui.message(f"InRelease of {suite} ({release.date}) is signed by a key in the archive keyring")
        index = debarchive.pick_packages_index(release, "main", arch)
        index_url = f"{base}/dists/{suite}/{index.path}"
        index_file = download(index_url, work / index.path.rsplit("/", 1)[-1], cancel=cancel, proxy=proxy)
        debarchive.check_file(
            index_file, index.sha256, index.size, index_url, f"the signed InRelease of {suite}"
        )
        entry = debarchive.find_package(index_file, package)
        if entry is None:
            raise VmbakeError(
                f"{index_url} lists no package {package}",
                hint=f"the mirror does not carry the installer for {suite}/{arch}; check suite and mirror",
            )
        if ui is not None:
            ui.message(f"{package} {entry.version} (sha256 {entry.sha256[:16]}...)")
        lock = FileLock(store / f"{entry.sha256}.lock", owner=f"fetching {package} {entry.version}")
        wait_saying(
            lock, ui.say if ui is not None else None, f"Another vmbake is fetching {package}", cancel=cancel
        )
        try:
            return _cached_or_fetched(entry, base, store, work, arch, ui, cancel, proxy)
        finally:
            lock.release()


def _cached_or_fetched(
    entry: debarchive.PackageEntry,
    base: str,
    store: Path,
    work: Path,
    arch: str,
    ui: BuildUi | None,
    cancel: threading.Event | None,
    proxy: aptproxy.AptProxy,
) -> NetbootFiles:
    """The files of `entry` from the cache, else downloaded, checked and unpacked into it (lock held)."""
    target = store / entry.sha256
    kernel, initrd = target / "linux", target / "initrd.gz"
    if (target / "complete").is_file() and kernel.is_file() and initrd.is_file():
        if ui is not None:
            ui.message(f"Using cached installer files in {target}")
        return NetbootFiles(kernel, initrd, entry.package, entry.version, entry.sha256)
    deb_url = f"{base}/{entry.filename}"
    if ui is not None:
        ui.message(f"Downloading {deb_url}")
    deb = download(deb_url, work / "netboot.deb", ui=ui, cancel=cancel, proxy=proxy)
    debarchive.check_file(deb, entry.sha256, entry.size, deb_url, "its entry in the signed Packages index")
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=store))
    try:
        found = debarchive.extract_from_deb(
            deb,
            {
                f"debian-installer/{arch}/linux": staging / "linux",
                f"debian-installer/{arch}/initrd.gz": staging / "initrd.gz",
            },
        )
        if len(found) != 2:
            raise VmbakeError(
                f"{deb_url} holds no debian-installer/{arch}/linux and initrd.gz",
                hint="the package's layout is not the one vmbake knows; use an ISO with installer_boot 'kernel'",
            )
        (staging / "complete").write_text(f"{entry.package} {entry.version}\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        staging.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return NetbootFiles(kernel, initrd, entry.package, entry.version, entry.sha256)
