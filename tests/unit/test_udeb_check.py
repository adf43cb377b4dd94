"""The check the end-to-end installer tests run first (tests/helpers/udebs.py), against an archive on
loopback: which .udebs an install needs, and what the archive does not serve."""

from __future__ import annotations

import lzma
from pathlib import Path

from tests.helpers.installer import serve_directory
from tests.helpers.udebs import check_archive, installer_udebs, needed, netboot_kernel

MAIN = """\
Package: debian-installer-13-netboot-amd64
Version: 20250803+deb13u8
Built-Using: acl (= 2.3.2-2), libzstd (= 1.5.7+dfsg-1), linux (= 6.12.117-1), linux-signed (= 9),
 lvm2 (= 2.03.31-2)
Filename: pool/main/d/n.deb

"""


def _udeb(package: str, priority: str, version: str = "1.0", kernel: str = "") -> str:
    abi = f"Kernel-Version: {kernel}\n" if kernel else ""
    return (
        f"Package: {package}\nVersion: {version}\nPriority: {priority}\n{abi}"
        f"Filename: pool/main/{package}_{version}_amd64.udeb\n\n"
    )


UDEBS = (
    _udeb("anna", "standard")
    + _udeb("netcfg", "important")
    + _udeb("debian-installer-utils", "required")
    + _udeb("fancy-extra", "optional")
    + _udeb("virtio-modules-6.12.117+deb13-amd64-di", "standard", "6.12.117-1", "6.12.117+deb13-amd64")
    + _udeb("ext4-modules-6.12.117+deb13-amd64-di", "optional", "6.12.117-1", "6.12.117+deb13-amd64")
    + _udeb("virtio-modules-6.12.94+deb13-amd64-di", "standard", "6.12.94-1", "6.12.94+deb13-amd64")
)


def test_the_netboot_kernel_comes_from_built_using() -> None:
    assert netboot_kernel(MAIN, "debian-installer-13-netboot-amd64") == "6.12.117-1"
    assert netboot_kernel(MAIN, "debian-installer-14-netboot-amd64") == ""


def test_the_install_needs_its_kernels_modules_and_the_standard_udebs() -> None:
    wanted, lacking = needed(installer_udebs(UDEBS), "6.12.117-1")
    assert lacking == []
    assert sorted(u.package for u in wanted) == [
        "anna",
        "debian-installer-utils",
        "ext4-modules-6.12.117+deb13-amd64-di",
        "netcfg",
        "virtio-modules-6.12.117+deb13-amd64-di",
    ]
    _, lacking = needed(installer_udebs(UDEBS), "6.12.200-1")
    assert lacking == [
        "the installer's Packages index lists no kernel-module .udebs for linux 6.12.200-1"
        " (it lists them for 6.12.117-1, 6.12.94-1)"
    ]


def test_the_check_names_each_file_the_archive_does_not_serve(tmp_path: Path) -> None:
    main = tmp_path / "dists" / "trixie" / "main"
    (main / "binary-amd64").mkdir(parents=True)
    (main / "debian-installer" / "binary-amd64").mkdir(parents=True)
    (main / "binary-amd64" / "Packages.xz").write_bytes(lzma.compress(MAIN.encode()))
    (main / "debian-installer" / "binary-amd64" / "Packages.xz").write_bytes(lzma.compress(UDEBS.encode()))
    served = [
        "anna_1.0",
        "netcfg_1.0",
        "debian-installer-utils_1.0",
        "ext4-modules-6.12.117+deb13-amd64-di_6.12.117-1",
    ]
    (tmp_path / "pool" / "main").mkdir(parents=True)
    for name in served:
        (tmp_path / "pool" / "main" / f"{name}_amd64.udeb").write_bytes(b"x")
    with serve_directory(tmp_path) as (url, _):
        check = check_archive(url, "trixie", "debian-installer-13-netboot-amd64")
    assert (check.kernel, check.abi, check.asked) == ("6.12.117-1", "6.12.117+deb13-amd64", 5)
    assert check.problems == [
        "pool/main/virtio-modules-6.12.117+deb13-amd64-di_6.12.117-1_amd64.udeb: 404 File not found"
    ]
    assert "virtio-modules-6.12.117" in check.reason()
