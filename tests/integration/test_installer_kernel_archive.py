"""The real thing: fetch bookworm's netboot kernel and initrd from deb.debian.org through the signed chain.

One test, because it downloads the whole debian-installer-12-netboot-amd64 .deb (about 130 MB).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from vmbake import procs
from vmbake.installer.debarchive import DEBIAN_KEYRING
from vmbake.installer.netboot import fetch_netboot

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.timeout(900)]


def test_bookworm_netboot_from_deb_debian_org(tmp_path: Path, di_netboot: Path) -> None:
    files = fetch_netboot("bookworm", "http://deb.debian.org/debian", tmp_path, keyrings=[DEBIAN_KEYRING])
    kernel = files.kernel.read_bytes()
    assert kernel[0x202:0x206] == b"HdrS", "not a Linux bzImage"
    assert files.initrd.read_bytes()[:2] == b"\x1f\x8b", "not a gzip'd initrd"
    assert files.package == "debian-installer-12-netboot-amd64"
    assert files.kernel.parent.name == files.deb_sha256
    installed = procs.run(["dpkg-query", "-W", "-f", "${Version}", files.package], check=False).stdout.strip()
    if installed == files.version:  # the machine's own copy of the same package: byte-identical files
        assert (
            hashlib.sha256(kernel).hexdigest()
            == hashlib.sha256((di_netboot / "linux").read_bytes()).hexdigest()
        )
    again = fetch_netboot("bookworm", "http://deb.debian.org/debian", tmp_path, keyrings=[DEBIAN_KEYRING])
    assert again == files  # served from the cache the second time
