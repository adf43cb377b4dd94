"""The pieces of a Debian archive's chain of trust: a signed InRelease, its Packages index, a .deb.

InRelease is checked with gpgv against keyrings (by default the one of debian-archive-keyring) and only
the text gpgv vouches for is read. That text holds the sha256 of each Packages index; a Packages entry
holds the sha256 of each .deb. Each link is checked before the next one is trusted.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import BinaryIO

from vmbake import procs
from vmbake.errors import VmbakeError

DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


@dataclass(frozen=True)
class IndexFile:
    """One file listed in InRelease: its path under dists/SUITE/, sha256 and size."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Release:
    """The verified fields of an InRelease that vmbake uses."""

    suite: str
    codename: str
    date: str
    valid_until: str
    files: dict[str, IndexFile]


@dataclass(frozen=True)
class PackageEntry:
    """A binary package's stanza in a Packages index: enough to fetch and check its .deb."""

    package: str
    version: str
    filename: str
    sha256: str
    size: int


def verify_inrelease(inrelease: Path, keyrings: Sequence[Path], work: Path, what: str) -> str:
    """The text of `inrelease` that a key in `keyrings` signed, or an error saying it is not signed so.

    `what` names the file for messages (its URL). Only gpgv's output is returned: text outside the
    signed part (an attacker's additions) never reaches the caller.
    """
    missing = [str(k) for k in keyrings if not k.is_file()]
    if missing:
        raise VmbakeError(
            f"keyring {', '.join(missing)} does not exist",
            hint="install Debian's archive keys: apt-get install debian-archive-keyring",
        )
    out = work / "InRelease.verified"
    out.unlink(missing_ok=True)
    argv = ["gpgv", "--homedir", str(work), "--status-fd", "1", "--output", str(out)]
    for keyring in keyrings:
        argv += ["--keyring", str(keyring.resolve())]
    result = procs.run([*argv, str(inrelease)], check=False, what="gpgv")
    status = result.stdout.splitlines()
    good = any(line.startswith("[GNUPG:] GOODSIG") for line in status)
    if result.returncode != 0 or not good or not out.is_file():
        detail = (
            "; ".join(line.strip() for line in result.stderr.splitlines() if line.strip()) or "no signature"
        )
        raise VmbakeError(
            f"{what} is not validly signed by a key in {', '.join(str(k) for k in keyrings)} ({detail})",
            hint="nothing was booted; the mirror (or something between it and you) serves files Debian did"
            " not sign: try another mirror, or update debian-archive-keyring for a newer release",
        )
    return out.read_text(encoding="utf-8", errors="replace")


def _stanzas(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Deb822 paragraphs as dicts; continuation lines are joined with newlines."""
    fields: dict[str, str] = {}
    last = ""
    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, ""
        elif line[0] in " \t" and last:
            fields[last] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            last = key.strip()
            fields[last] = value.strip()
    if fields:
        yield fields


def parse_release(text: str) -> Release:
    """The fields of a (verified) Release text."""
    fields = next(_stanzas(iter(text.splitlines())), {})
    files: dict[str, IndexFile] = {}
    for line in fields.get("SHA256", "").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            files[parts[2]] = IndexFile(parts[2], parts[0].lower(), int(parts[1]))
    return Release(
        suite=fields.get("Suite", ""),
        codename=fields.get("Codename", ""),
        date=fields.get("Date", ""),
        valid_until=fields.get("Valid-Until", ""),
        files=files,
    )


def check_release(release: Release, suite: str, what: str, now: datetime | None = None) -> None:
    """Refuse a Release for another suite (a replayed file) or one past its Valid-Until date."""
    if suite not in (release.suite, release.codename):
        raise VmbakeError(
            f"{what} is signed, but for suite {release.codename or release.suite!r}, not {suite!r}",
            hint="the mirror serves the wrong file at this path; try another mirror",
        )
    if release.valid_until:
        try:
            until = parsedate_to_datetime(release.valid_until)
        except (TypeError, ValueError):
            return
        if until < (now or datetime.now(UTC)):
            raise VmbakeError(
                f"{what} expired on {release.valid_until}",
                hint="the mirror is out of date; try another mirror",
            )


def pick_packages_index(release: Release, component: str, arch: str) -> IndexFile:
    """The best-compressed Packages index of `component`/`arch` that the Release lists."""
    for suffix in (".xz", ".gz", ""):
        entry = release.files.get(f"{component}/binary-{arch}/Packages{suffix}")
        if entry is not None:
            return entry
    raise VmbakeError(
        f"the archive's Release lists no Packages index for {component}/binary-{arch}",
        hint="check suite and mirror: the suite may not exist there, or not for this architecture",
    )


def _open_index(path: Path) -> io.BufferedIOBase:
    if path.name.endswith(".xz"):
        return lzma.open(path, "rb")
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return path.open("rb")


def find_package(index: Path, package: str) -> PackageEntry | None:
    """`package`'s first entry in a Packages index (xz, gz or plain); a suite lists one version per package."""
    with _open_index(index) as raw:
        lines = (line.decode("utf-8", "replace") for line in raw)
        for stanza in _stanzas(lines):
            if stanza.get("Package") != package:
                continue
            try:
                entry = PackageEntry(
                    package,
                    stanza.get("Version", ""),
                    stanza["Filename"],
                    stanza["SHA256"].lower(),
                    int(stanza["Size"]),
                )
            except (KeyError, ValueError):
                continue
            return entry
    return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file(path: Path, sha256: str, size: int, what: str, signed_by: str) -> None:
    """Refuse `path` unless its size and sha256 are those `signed_by` lists for it."""
    actual_size = path.stat().st_size
    actual = sha256_of(path)
    if actual_size != size or actual != sha256:
        raise VmbakeError(
            f"{what} does not match {signed_by}: sha256 {actual} ({actual_size} bytes),"
            f" expected {sha256} ({size} bytes)",
            hint="nothing was booted; the mirror served a changed or partial file: try again or another mirror",
        )


def _ar_members(f: BinaryIO) -> Iterator[tuple[str, int, int]]:
    """(name, offset, size) of each member of an ar archive (a .deb)."""
    if f.read(8) != b"!<arch>\n":
        raise ValueError("not an ar archive")
    while True:
        header = f.read(60)
        if len(header) < 60:
            return
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        offset = f.tell()
        yield name, offset, size
        f.seek(offset + size + (size & 1))


class _Window(io.RawIOBase):
    """A read-only view of `size` bytes of `f` from `offset` (one ar member), for tarfile's stream mode."""

    def __init__(self, f: BinaryIO, offset: int, size: int) -> None:
        self.f, self.left = f, size
        f.seek(offset)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        want = min(len(buf), self.left)
        if want <= 0:
            return 0
        data = self.f.read(want)
        buf[: len(data)] = data
        self.left -= len(data)
        return len(data)


def extract_from_deb(deb: Path, wanted: dict[str, Path]) -> dict[str, Path]:
    """Copy the data members of `deb` whose path ends with a key of `wanted` to that key's Path.

    Reads the ar container and its data.tar(.xz|.gz|.bz2) with the standard library; returns what was
    found, so the caller can name what is missing.
    """
    done: dict[str, Path] = {}
    with deb.open("rb") as f:
        try:
            members = list(_ar_members(f))
        except ValueError as err:
            raise VmbakeError(f"{deb} is not a Debian package: {err}") from err
        data = [m for m in members if m[0].startswith("data.tar")]
        if not data:
            raise VmbakeError(f"{deb} has no data.tar member", hint="the file is not a Debian binary package")
        name, offset, size = data[0]
        mode = {"data.tar.xz": "r|xz", "data.tar.gz": "r|gz", "data.tar.bz2": "r|bz2", "data.tar": "r|"}.get(
            name
        )
        if mode is None:
            raise VmbakeError(f"{deb}: {name} is not supported (xz, gz, bz2 or uncompressed are)")
        stream = io.BufferedReader(_Window(f, offset, size), 1 << 20)
        with tarfile.open(fileobj=stream, mode=mode) as tar:  # type: ignore[call-overload]
            for member in tar:
                key = next((k for k in wanted if member.name.endswith("/" + k.lstrip("/"))), None)
                if key is None or not member.isfile() or key in done:
                    continue
                source = tar.extractfile(member)
                assert source is not None
                dest = wanted[key]
                with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as out:
                    while block := source.read(1 << 20):
                        out.write(block)
                Path(out.name).replace(dest)
                done[key] = dest
    return done
