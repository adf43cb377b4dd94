"""The archive's signed chain, against a Debian-like archive made here, signed with a throwaway GPG key and
served by a real HTTP server on loopback: a good chain passes; each broken link is refused before anything
would boot, and nothing lands in the cache."""

from __future__ import annotations

import lzma
from pathlib import Path

import pytest

from tests.helpers.installer import (
    NETBOOT_DIR,
    NETBOOT_PACKAGE,
    GpgKey,
    LoopArchive,
    make_archive,
    make_deb,
    make_gpg_key,
    serve_directory,
    sign_release,
)
from vmbake.errors import VmbakeError
from vmbake.installer import debarchive
from vmbake.installer.netboot import fetch_netboot, package_name

KERNEL = b"MZ fake kernel " * 100
INITRD = b"\x1f\x8b fake initrd " * 100


@pytest.fixture(scope="session")
def archive_key(tmp_path_factory: pytest.TempPathFactory) -> GpgKey:
    return make_gpg_key(tmp_path_factory.mktemp("gpg-archive") / "home")


@pytest.fixture(scope="session")
def intruder_key(tmp_path_factory: pytest.TempPathFactory) -> GpgKey:
    return make_gpg_key(tmp_path_factory.mktemp("gpg-intruder") / "home", "someone else")


@pytest.fixture
def archive(tmp_path: Path, archive_key: GpgKey) -> LoopArchive:
    deb = make_deb(
        tmp_path / "netboot.deb",
        NETBOOT_PACKAGE,
        "20230607+deb12u15",
        {
            f"{NETBOOT_DIR}/linux": KERNEL,
            f"{NETBOOT_DIR}/initrd.gz": INITRD,
            f"{NETBOOT_DIR}/pxelinux.0": b"p",
        },
    )
    return make_archive(tmp_path / "mirror", "bookworm", archive_key, deb, version="20230607+deb12u15")


def _fetch(archive: LoopArchive, url: str, cache: Path, keyring: Path | None = None) -> object:
    return fetch_netboot("bookworm", url, cache, keyrings=[keyring or archive.key.keyring])


def test_good_chain_is_fetched_then_served_from_the_cache(archive: LoopArchive, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with serve_directory(archive.root) as (url, requests):
        files = fetch_netboot("bookworm", url + "/", cache, keyrings=[archive.key.keyring])
        assert files.kernel.read_bytes() == KERNEL
        assert files.initrd.read_bytes() == INITRD
        assert files.version == "20230607+deb12u15"
        assert files.kernel.parent.name == files.deb_sha256
        debs = [path for _, path in requests if path.endswith(".deb")]
        again = fetch_netboot("bookworm", url, cache, keyrings=[archive.key.keyring])
        assert again.kernel == files.kernel
        # The second run checks InRelease and Packages again (so it follows point releases), but not the .deb.
        assert [path for _, path in requests if path.endswith(".deb")] == debs
        assert [path for _, path in requests].count("/dists/bookworm/InRelease") == 2


def _refused(archive: LoopArchive, tmp_path: Path, keyring: Path | None = None) -> VmbakeError:
    cache = tmp_path / "cache"
    with serve_directory(archive.root) as (url, _), pytest.raises(VmbakeError) as err:
        fetch_netboot("bookworm", url, cache, keyrings=[keyring or archive.key.keyring])
    assert not list(cache.glob("debian-netboot/*/linux")), "nothing may be cached from a broken chain"
    return err.value


def test_signature_by_another_key_is_refused(
    archive: LoopArchive, intruder_key: GpgKey, tmp_path: Path
) -> None:
    sign_release(archive, intruder_key)
    err = _refused(archive, tmp_path)
    assert "InRelease is not validly signed by a key in" in err.message
    assert "nothing was booted" in (err.hint or "")


def test_debian_keyring_does_not_trust_a_test_key(archive: LoopArchive, tmp_path: Path) -> None:
    err = _refused(archive, tmp_path, keyring=debarchive.DEBIAN_KEYRING)
    assert "not validly signed" in err.message
    assert str(debarchive.DEBIAN_KEYRING) in err.message


def test_edited_signed_text_is_refused(archive: LoopArchive, tmp_path: Path) -> None:
    text = archive.inrelease.read_text()
    archive.inrelease.write_text(text.replace("Codename: bookworm", "Codename: bookwork"))
    assert "not validly signed" in _refused(archive, tmp_path).message


def test_tampered_packages_index_is_refused(archive: LoopArchive, tmp_path: Path) -> None:
    assert archive.packages_path is not None
    stanzas = lzma.decompress(archive.packages_path.read_bytes()).decode()
    forged = stanzas.replace("Filename: pool/main/d/", "Filename: pool/evil/d/")
    archive.packages_path.write_bytes(lzma.compress(forged.encode()))
    err = _refused(archive, tmp_path)
    assert "main/binary-amd64/Packages.xz does not match the signed InRelease of bookworm" in err.message


def test_tampered_deb_is_refused(archive: LoopArchive, tmp_path: Path) -> None:
    assert archive.deb_path is not None
    data = bytearray(archive.deb_path.read_bytes())
    data[-10] ^= 0xFF
    archive.deb_path.write_bytes(bytes(data))
    err = _refused(archive, tmp_path)
    assert ".deb does not match its entry in the signed Packages index" in err.message


def test_inrelease_of_another_suite_is_refused(archive: LoopArchive, tmp_path: Path) -> None:
    other = LoopArchive(archive.root, "trixie", archive.key)
    (archive.root / "dists" / "trixie").mkdir()
    sign_release(other)
    archive.inrelease.write_bytes(other.inrelease.read_bytes())
    err = _refused(archive, tmp_path)
    assert "signed, but for suite 'trixie', not 'bookworm'" in err.message


def test_suite_missing_on_the_mirror_is_a_clear_error(archive: LoopArchive, tmp_path: Path) -> None:
    with serve_directory(archive.root) as (url, _), pytest.raises(VmbakeError) as err:
        fetch_netboot("trixie", url, tmp_path / "c", keyrings=[archive.key.keyring])
    assert "/dists/trixie/InRelease: the server answered 404" in err.value.message


def test_unknown_suite_lists_the_known_ones() -> None:
    assert package_name("bookworm") == "debian-installer-12-netboot-amd64"
    assert package_name("trixie") == "debian-installer-13-netboot-amd64"
    with pytest.raises(VmbakeError) as err:
        package_name("sid")
    assert "bookworm (12)" in (err.value.hint or "")


def test_expired_release_is_refused() -> None:
    release = debarchive.parse_release(
        "Codename: bookworm\nSuite: stable\nValid-Until: Sat, 01 Jan 2000 00:00:00 UTC\nSHA256:\n"
        " " + "a" * 64 + " 12 main/binary-amd64/Packages\n"
    )
    assert release.files["main/binary-amd64/Packages"].size == 12
    with pytest.raises(VmbakeError, match="expired on Sat, 01 Jan 2000"):
        debarchive.check_release(release, "bookworm", "InRelease")
