"""Reading d-i's kernel and initrd out of a netinst-like ISO made here with xorriso (no mount, no root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.installer import make_netinst_iso, sha256
from vmbake.errors import VmbakeError
from vmbake.installer.iso_extract import extract_installer, find_installer

pytestmark = pytest.mark.host_tools("xorriso")


@pytest.fixture(scope="module")
def real_iso(tmp_path_factory: pytest.TempPathFactory, di_netboot: Path) -> Path:
    """An ISO holding the real d-i netboot kernel and initrd at install.amd/, named by isolinux menus."""
    tmp = tmp_path_factory.mktemp("netinst")
    return make_netinst_iso(tmp / "netinst.iso", di_netboot / "linux", di_netboot / "initrd.gz")


def test_extracted_files_are_byte_identical_to_the_sources(
    real_iso: Path, di_netboot: Path, tmp_path: Path
) -> None:
    kernel, initrd, found = extract_installer(real_iso, tmp_path)
    assert sha256(kernel) == sha256(di_netboot / "linux")
    assert sha256(initrd) == sha256(di_netboot / "initrd.gz")
    assert (found.kernel, found.initrd) == ("/install.amd/vmlinuz", "/install.amd/initrd.gz")
    # isolinux.cfg -> menu.cfg -> txt.cfg; the graphical entry, read first, is passed over.
    assert found.found_in == "/isolinux/isolinux.cfg"
    assert not list(tmp_path.glob("*.part"))


@pytest.fixture
def small_files(tmp_path: Path) -> tuple[Path, Path]:
    kernel, initrd = tmp_path / "k", tmp_path / "i"
    kernel.write_bytes(b"kernel" * 1000)
    initrd.write_bytes(b"\x1f\x8b initrd" * 1000)
    return kernel, initrd


def test_isolinux_menu_names_an_unusual_directory(tmp_path: Path, small_files: tuple[Path, Path]) -> None:
    iso = make_netinst_iso(tmp_path / "custom.iso", *small_files, layout="custom")
    found = find_installer(iso)
    assert (found.kernel, found.initrd) == ("/d-i/vmlinuz", "/d-i/initrd.gz")
    kernel, initrd, _ = extract_installer(iso, tmp_path)
    assert kernel.read_bytes() == small_files[0].read_bytes()
    assert initrd.read_bytes() == small_files[1].read_bytes()


def test_grub_config_alone_is_enough(tmp_path: Path, small_files: tuple[Path, Path]) -> None:
    found = find_installer(make_netinst_iso(tmp_path / "grub.iso", *small_files, layout="grub"))
    assert (found.kernel, found.initrd, found.found_in) == (
        "/install.amd/vmlinuz",
        "/install.amd/initrd.gz",
        "/boot/grub/grub.cfg",
    )


def test_usual_layout_without_any_boot_config(tmp_path: Path, small_files: tuple[Path, Path]) -> None:
    found = find_installer(make_netinst_iso(tmp_path / "bare.iso", *small_files, layout="bare"))
    assert found.kernel == "/install.amd/vmlinuz"
    assert found.found_in == "d-i's usual layout"


def test_iso_without_installer_is_refused_with_a_hint(tmp_path: Path) -> None:
    from vmbake import procs

    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "README").write_text("no installer here")
    iso = tmp_path / "plain.iso"
    procs.run(["xorriso", "-as", "mkisofs", "-quiet", "-r", "-o", str(iso), str(tree)])
    with pytest.raises(VmbakeError) as err:
        find_installer(iso)
    assert "names no installer kernel and initrd" in err.value.message
    assert "installer_boot 'cdrom'" in (err.value.hint or "")


def test_not_an_iso_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.iso"
    bogus.write_bytes(b"\0" * 65536)
    with pytest.raises(VmbakeError, match=r"cannot read .* as an ISO 9660 image"):
        find_installer(bogus)
