"""Checksums as templates write them, and the SUMS files that Debian (and others) publish.

`iso_checksum` forms: "sha256:HEX" (md5, sha1, sha224, sha384, sha512 too), a bare HEX whose length gives
the type, "file:URL" or "file:PATH" naming a SUMS file to look the ISO's name up in, and "none".
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from vmbake.errors import BuildCancelled, VmbakeError

ALGORITHMS = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
_BY_LENGTH = {32: "md5", 40: "sha1", 56: "sha224", 64: "sha256", 96: "sha384", 128: "sha512"}
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_BSD_LINE = re.compile(r"^(?P<alg>[A-Za-z0-9-]+) ?\((?P<name>.+)\) ?= ?(?P<hash>[0-9a-fA-F]+)$")
_GNU_LINE = re.compile(r"^(?P<hash>[0-9a-fA-F]+)[ \t]+\*?(?P<name>.+)$")


@dataclass(frozen=True)
class Checksum:
    """A known digest: algorithm name (hashlib's) and lower-case hex."""

    algorithm: str
    digest: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.digest}"

    def matches(self, found: str) -> bool:
        return found.lower() == self.digest


@dataclass(frozen=True)
class ChecksumSpec:
    """A parsed iso_checksum: a digest, a SUMS file to look in, or none at all."""

    raw: str
    checksum: Checksum | None = None
    sums_source: str | None = None  # the URL or path after "file:"
    sums_algorithm: str | None = None  # "sha512:file:URL": only entries of this type count

    @property
    def is_none(self) -> bool:
        return self.checksum is None and self.sums_source is None


def algorithm_for(digest: str) -> str:
    """The algorithm of a bare hex digest, by its length. Raises ValueError."""
    if not _HEX.match(digest):
        raise ValueError(f"{digest!r} is not a hexadecimal checksum")
    try:
        return _BY_LENGTH[len(digest)]
    except KeyError:
        raise ValueError(
            f"a checksum of {len(digest)} hex digits matches no known type "
            f"(md5 has 32, sha1 40, sha256 64, sha512 128)"
        ) from None


def make_checksum(algorithm: str, digest: str) -> Checksum:
    """A checked Checksum. Raises ValueError naming the problem."""
    algorithm = algorithm.lower()
    digest = digest.strip()
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown checksum type {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    if not _HEX.match(digest):
        raise ValueError(f"{digest!r} is not a hexadecimal checksum")
    want = hashlib.new(algorithm).digest_size * 2
    if len(digest) != want:
        raise ValueError(f"a {algorithm} checksum has {want} hex digits, not {len(digest)}")
    return Checksum(algorithm, digest.lower())


def parse_checksum(text: str) -> ChecksumSpec:
    """Parse an iso_checksum value. Raises ValueError with a message fit for the user."""
    raw = text.strip()
    if not raw:
        raise ValueError("iso_checksum is empty; give 'sha256:HEX', 'file:URL_OF_SHA256SUMS' or 'none'")
    if raw.lower() == "none":
        return ChecksumSpec(raw)
    if raw.lower().startswith("file:"):
        source = raw[len("file:") :]
        if not source:
            raise ValueError("'file:' must be followed by the URL or path of a checksum file")
        return ChecksumSpec(raw, sums_source=source)
    if ":" in raw:
        algorithm, _, digest = raw.partition(":")
        if digest.lower().startswith("file:") and algorithm.lower() in ALGORITHMS:
            # go-getter's "sha256:file:URL": a SUMS file whose type is given; the file's digest says it too.
            return replace(parse_checksum(digest), raw=raw, sums_algorithm=algorithm.lower())
        return ChecksumSpec(raw, checksum=make_checksum(algorithm, digest))
    return ChecksumSpec(raw, checksum=make_checksum(algorithm_for(raw), raw))


def _clean_name(name: str) -> str:
    name = name.strip()
    while name.startswith("./"):
        name = name[2:]
    return name


def parse_sums(text: str) -> list[tuple[str, Checksum]]:
    """(file name, checksum) entries of a SUMS file: GNU ("HEX  name", "HEX *name") or BSD
    ("SHA256 (name) = HEX") lines; other lines (comments, PGP armour) are skipped."""
    entries: list[tuple[str, Checksum]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        bsd = _BSD_LINE.match(line)
        try:
            if bsd:
                alg = bsd.group("alg").lower().replace("-", "")
                entries.append((_clean_name(bsd.group("name")), make_checksum(alg, bsd.group("hash"))))
                continue
            gnu = _GNU_LINE.match(line)
            if gnu:
                digest = gnu.group("hash")
                entries.append((_clean_name(gnu.group("name")), make_checksum(algorithm_for(digest), digest)))
        except ValueError:
            continue
    return entries


def find_in_sums(text: str, file_name: str, source: str, algorithm: str | None = None) -> Checksum:
    """The checksum of `file_name` in a SUMS file (exact name first, then by base name); with
    `algorithm`, only entries of that type count, so "sha512:file:SUMS" never passes on an md5 line."""
    entries = [(n, c) for n, c in parse_sums(text) if algorithm is None or c.algorithm == algorithm]
    exact = [c for name, c in entries if name == file_name]
    if exact:
        return exact[0]
    by_base = {c for name, c in entries if name.rsplit("/", 1)[-1] == file_name}
    if len(by_base) == 1:
        return by_base.pop()
    if len(by_base) > 1:
        raise ValueError(
            f"the checksum file {source} lists {file_name!r} more than once with different checksums"
        )
    kind = f"{algorithm} " if algorithm else ""
    raise ValueError(f"the checksum file {source} has no {kind}entry for {file_name!r}")


def hash_file(
    path: Path,
    algorithm: str,
    *,
    on_progress: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
    chunk: int = 1 << 20,
) -> str:
    """The hex digest of a file; `on_progress` gets the byte count of each chunk read."""
    h = hashlib.new(algorithm)
    with open(path, "rb", opener=_open_regular) as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
            if on_progress is not None:
                on_progress(len(block))
            if cancel is not None and cancel.is_set():
                raise BuildCancelled()
    return h.hexdigest()


def _open_regular(path: str, flags: int) -> int:
    """Opens a file to hash, refusing FIFOs and devices: /dev/zero would be hashed for ever."""
    fd = os.open(path, flags | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise VmbakeError(f"{path} is not a regular file", hint="give the path of an ordinary file")
    os.set_blocking(fd, True)
    return fd
