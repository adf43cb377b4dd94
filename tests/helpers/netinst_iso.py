"""A small netinst-like boot ISO, built from Debian's d-i netboot files with xorriso and isolinux.

It is laid out like Debian's netinst CD (`install.amd/vmlinuz`, `install.amd/initrd.gz`, `isolinux/`) and
boots the installer's own syslinux menus (package debian-installer-12-netboot-amd64, installed on the
host; or debian-installer-13-netboot-amd64 and later, fetched from the archive by `netboot_tree`), with
their paths rewritten for that layout. So it behaves like the real thing for the seed's boot command: `<esc>` leaves
the graphical menu for the `boot:` prompt, and `expert ... url=...` boots the installer with those
parameters. The isolinux modules come from one syslinux build (packages isolinux and syslinux-common),
since isolinux.bin refuses modules of another version.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from vmbake import procs
from vmbake.installer import debarchive
from vmbake.installer.netboot import SUITE_NUMBERS, download, package_name
from vmbake.iso import cache_dir

NETBOOT = Path("/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64")
ISOLINUX_BIN = Path("/usr/lib/ISOLINUX/isolinux.bin")
ISOHYBRID_MBR = Path("/usr/lib/ISOLINUX/isohdpfx.bin")
SYSLINUX_MODULES = Path("/usr/lib/syslinux/modules/bios")
MODULES = ("ldlinux.c32", "libcom32.c32", "libutil.c32", "vesamenu.c32")
VOLUME_ID = "Debian {number} netinst-like"


def _number(netboot: Path) -> str:
    """The release number in the tree's path (.../images/13/amd64/...), "12" if it has none."""
    match = re.search(r"/images/(\d+)/", str(netboot))
    return match.group(1) if match else "12"


_INCLUDE = re.compile(r"^(\s*include\s+)(\S+)(.*)$", re.MULTILINE)


def _fix_paths(text: str) -> str:
    """Rewrite the netboot tree's paths (debian-installer/amd64/...) for the CD's layout."""
    text = text.replace("debian-installer/amd64/boot-screens/", "")
    text = text.replace("debian-installer/amd64/linux", "/install.amd/vmlinuz")
    text = text.replace("debian-installer/amd64/initrd.gz", "/install.amd/initrd.gz")
    return text


def _drop_missing_includes(text: str, directory: Path) -> str:
    """The text-only netboot set lacks the graphical installer's menus; the CD must not name them."""
    return _INCLUDE.sub(lambda m: m.group(0) if (directory / m.group(2)).exists() else "", text)


def netboot_tree(suite: str, mirror: str, cache: Path | None = None) -> Path:
    """The netboot package's text-installer tree for `suite` (debian-installer-N-netboot-amd64) from
    `mirror`, checked through the signed InRelease and the Packages index, unpacked once into the cache
    (under the .deb's sha256) and reused. The .deb is about 150 MB."""
    base = mirror.rstrip("/")
    store = (cache or cache_dir()) / "test-netboot-trees"
    store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="netboot-tree-") as scratch:
        work = Path(scratch)
        url = f"{base}/dists/{suite}/InRelease"
        text = debarchive.verify_inrelease(
            download(url, work / "InRelease"), [debarchive.DEBIAN_KEYRING], work, url
        )
        index = debarchive.pick_packages_index(debarchive.parse_release(text), "main", "amd64")
        index_file = download(f"{base}/dists/{suite}/{index.path}", work / index.path.rsplit("/", 1)[-1])
        debarchive.check_file(index_file, index.sha256, index.size, index.path, "InRelease")
        entry = debarchive.find_package(index_file, package_name(suite))
        if entry is None:
            raise FileNotFoundError(f"{mirror} has no {package_name(suite)} in {suite}")
        tree = store / entry.sha256
        netboot = (
            tree / f"usr/lib/debian-installer/images/{SUITE_NUMBERS[suite]}/amd64/text/debian-installer/amd64"
        )
        if not (tree / "complete").is_file():
            deb = download(f"{base}/{entry.filename}", work / "netboot.deb")
            debarchive.check_file(deb, entry.sha256, entry.size, entry.filename, "Packages")
            shutil.rmtree(tree, ignore_errors=True)
            procs.run(["dpkg-deb", "-x", str(deb), str(tree)], what="dpkg-deb")
            (tree / "complete").write_text(f"{entry.package} {entry.version}\n")
    return netboot


def build_netinst_iso(dest: Path, netboot: Path = NETBOOT) -> Path:
    """Write the ISO to `dest` (a file path) and return it. Needs xorriso, isolinux and syslinux-common."""
    screens = netboot / "boot-screens"
    for needed in (netboot / "linux", netboot / "initrd.gz", screens / "syslinux.cfg"):
        if not needed.exists():
            raise FileNotFoundError(f"{needed} is missing: install debian-installer-N-netboot-amd64")
    root = dest.parent / (dest.name + ".tree")
    if root.exists():
        shutil.rmtree(root)
    isolinux = root / "isolinux"
    install = root / "install.amd"
    isolinux.mkdir(parents=True)
    install.mkdir()
    shutil.copyfile(netboot / "linux", install / "vmlinuz")
    shutil.copyfile(netboot / "initrd.gz", install / "initrd.gz")
    for item in screens.iterdir():
        if item.suffix in (".cfg", ".txt", ".png"):
            shutil.copyfile(item, isolinux / item.name)
    for module in MODULES:
        shutil.copyfile(SYSLINUX_MODULES / module, isolinux / module)
    shutil.copyfile(ISOLINUX_BIN, isolinux / "isolinux.bin")
    (isolinux / "syslinux.cfg").rename(isolinux / "isolinux.cfg")
    for cfg in isolinux.glob("*.cfg"):
        cfg.write_text(_fix_paths(cfg.read_text()))
    for cfg in isolinux.glob("*.cfg"):
        cfg.write_text(_drop_missing_includes(cfg.read_text(), isolinux))
    procs.run(
        [
            "xorriso", "-as", "mkisofs", "-quiet", "-r", "-J", "-V", VOLUME_ID.format(number=_number(netboot)),
            "-o", str(dest),
            "-isohybrid-mbr", str(ISOHYBRID_MBR),
            "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat",
            "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
            str(root),
        ],
        what="xorriso",
    )  # fmt: skip
    shutil.rmtree(root)
    return dest
