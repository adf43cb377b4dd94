"""Test helpers for the installer-without-typing features: a netinst-like ISO, a signed Debian archive on
loopback made with a throwaway GPG key, and a marker HTTP server the guest's early_command calls.

Everything here is real: xorriso makes the ISO, gpg signs InRelease, the stdlib serves HTTP. Nothing is faked.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from vmbake import procs

NETBOOT_PACKAGE = "debian-installer-12-netboot-amd64"
NETBOOT_DIR = "usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64"

ISOLINUX_CFG = """\
default vesamenu.c32
prompt 0
timeout 0
include menu.cfg
"""
MENU_CFG = """\
menu hshift 4
include stdmenu.cfg
include gtk.cfg
include txt.cfg
"""
TXT_CFG = """\
label install
\tmenu label ^Install
\tkernel /install.amd/vmlinuz
\tappend vga=788 initrd=/install.amd/initrd.gz --- quiet
"""
GTK_CFG = """\
label installgui
\tmenu label ^Graphical install
\tkernel /install.amd/vmlinuz
\tappend vga=788 initrd=/install.amd/gtk/initrd.gz --- quiet
"""
GRUB_CFG = """\
menuentry --hotkey=i 'Install' {
    set background_color=black
    linux    /install.amd/vmlinuz vga=788 --- quiet
    initrd   /install.amd/initrd.gz
}
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_netinst_iso(dest: Path, kernel: Path, initrd: Path, *, layout: str = "isolinux") -> Path:
    """A bootable ISO laid out like Debian's netinst: install.amd/{vmlinuz,initrd.gz} named by isolinux menus
    (layout 'isolinux'), by GRUB only ('grub'), by nothing ('bare'), or at unusual paths ('custom')."""
    root = dest.parent / (dest.stem + "-tree")
    (root / "isolinux").mkdir(parents=True)
    kdir = root / ("d-i" if layout == "custom" else "install.amd")
    kdir.mkdir()
    _place(kernel, kdir / "vmlinuz")
    _place(initrd, kdir / "initrd.gz")
    if layout in ("isolinux", "custom"):
        txt = TXT_CFG.replace("/install.amd/", "/d-i/") if layout == "custom" else TXT_CFG
        (kdir / "gtk").mkdir()
        (kdir / "gtk" / "initrd.gz").write_bytes(b"not the text-mode initrd")
        (root / "isolinux" / "isolinux.cfg").write_text(ISOLINUX_CFG)
        (root / "isolinux" / "menu.cfg").write_text(MENU_CFG)
        (root / "isolinux" / "stdmenu.cfg").write_text("menu background splash.png\n")
        (root / "isolinux" / "gtk.cfg").write_text(GTK_CFG.replace("/install.amd/", f"/{kdir.name}/"))
        (root / "isolinux" / "txt.cfg").write_text(txt)
    if layout == "grub":
        (root / "boot" / "grub").mkdir(parents=True)
        (root / "boot" / "grub" / "grub.cfg").write_text(GRUB_CFG)
    isolinux_bin = Path("/usr/lib/ISOLINUX/isolinux.bin")
    boot = []
    if isolinux_bin.is_file():
        (root / "isolinux" / "isolinux.bin").write_bytes(isolinux_bin.read_bytes())
        ldlinux = Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")
        if ldlinux.is_file():
            (root / "isolinux" / "ldlinux.c32").write_bytes(ldlinux.read_bytes())
        boot = [
            "-b",
            "isolinux/isolinux.bin",
            "-c",
            "isolinux/boot.cat",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
        ]
        boot += ["-boot-info-table"]
    procs.run(
        [
            "xorriso",
            "-as",
            "mkisofs",
            "-quiet",
            "-r",
            "-J",
            "-V",
            "Debian test netinst",
            *boot,
            "-o",
            str(dest),
            str(root),
        ]
    )
    return dest


def _place(src: Path, dest: Path) -> None:
    """Hard-link `src` to `dest` (the big d-i files), or copy it across filesystems."""
    try:
        os.link(src, dest)
    except OSError:
        dest.write_bytes(src.read_bytes())


# -- a Debian archive ------------------------------------------------------------------------------------


def _ar_member(name: str, data: bytes) -> bytes:
    header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()
    return header + data + (b"\n" if len(data) % 2 else b"")


def _tar(files: dict[str, bytes], mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_deb(
    dest: Path, package: str, version: str, files: dict[str, bytes], compression: str = "xz"
) -> Path:
    """A Debian binary package written by hand: ar of debian-binary, control.tar.gz, data.tar.<compression>."""
    control = f"Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.org>\n"
    control += "Description: test\n"
    suffix = {"xz": ".xz", "gz": ".gz", "none": ""}[compression]
    tar_mode = {"xz": "w:xz", "gz": "w:gz", "none": "w"}[compression]
    blob = b"!<arch>\n" + _ar_member("debian-binary", b"2.0\n")
    blob += _ar_member("control.tar.gz", _tar({"control": control.encode()}, "w:gz"))
    blob += _ar_member("data.tar" + suffix, _tar(files, tar_mode))
    dest.write_bytes(blob)
    return dest


@dataclass
class GpgKey:
    """A throwaway signing key in its own GNUPGHOME, and its public keyring for the verifier."""

    home: Path
    keyring: Path
    fingerprint: str = ""


def make_gpg_key(home: Path, name: str = "vmbake test archive") -> GpgKey:
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {"GNUPGHOME": str(home)}
    params = f"%no-protection\nKey-Type: eddsa\nKey-Curve: ed25519\nKey-Usage: sign\nName-Real: {name}\n"
    params += "Expire-Date: 0\n%commit\n"
    procs.run(["gpg", "--batch", "--gen-key"], input=params, env=env)
    keyring = home / "public.gpg"
    procs.run(["gpg", "--batch", "--yes", "--output", str(keyring), "--export"], env=env)
    return GpgKey(home, keyring)


@dataclass
class LoopArchive:
    root: Path
    suite: str
    key: GpgKey
    deb_path: Path | None = None
    packages_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def inrelease(self) -> Path:
        return self.root / "dists" / self.suite / "InRelease"


def make_archive(
    root: Path, suite: str, key: GpgKey, deb: Path, package: str = NETBOOT_PACKAGE, version: str = "1.0"
) -> LoopArchive:
    """dists/SUITE/{InRelease,main/binary-amd64/Packages.xz} and the .deb in pool/, signed with `key`."""
    pool = root / "pool" / "main" / "d" / "debian-installer-netboot-images"
    pool.mkdir(parents=True, exist_ok=True)
    deb_path = pool / f"{package}_{version}_all.deb"
    if deb.resolve() != deb_path.resolve():
        _place(deb, deb_path)
    data = deb_path.read_bytes()
    stanza = (
        f"Package: other-package\nVersion: 1\nFilename: pool/main/o/other.deb\nSize: 3\nSHA256: {'0' * 64}\n\n"
        f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
        f"Filename: {deb_path.relative_to(root)}\nSize: {len(data)}\nSHA256: {hashlib.sha256(data).hexdigest()}\n\n"
    )
    binary = root / "dists" / suite / "main" / "binary-amd64"
    binary.mkdir(parents=True, exist_ok=True)
    packages = binary / "Packages.xz"
    packages.write_bytes(lzma.compress(stanza.encode()))
    (binary / "Packages.gz").write_bytes(gzip.compress(stanza.encode()))
    archive = LoopArchive(root, suite, key, deb_path, packages)
    sign_release(archive)
    return archive


def sign_release(archive: LoopArchive, key: GpgKey | None = None) -> None:
    """(Re)write Release listing the current Packages files, and sign it as InRelease with `key`."""
    dists = archive.root / "dists" / archive.suite
    lines = []
    for path in sorted(dists.glob("main/binary-amd64/Packages*")):
        data = path.read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data):>8} {path.relative_to(dists)}")
    release = f"Origin: Test\nSuite: stable\nCodename: {archive.suite}\nDate: Sat, 01 Jan 2026 00:00:00 UTC\n"
    release += "Architectures: amd64\nComponents: main\nSHA256:\n" + "\n".join(lines) + "\n"
    (dists / "Release").write_text(release)
    signer = key or archive.key
    procs.run(
        [
            "gpg",
            "--batch",
            "--yes",
            "--clearsign",
            "--output",
            str(archive.inrelease),
            str(dists / "Release"),
        ],
        env={"GNUPGHOME": str(signer.home)},
    )


# -- HTTP on loopback ------------------------------------------------------------------------------------


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        server: Any = self.server
        server.requests.append((time.monotonic(), self.path))


@contextmanager
def serve_directory(root: Path) -> Iterator[tuple[str, list[tuple[float, str]]]]:
    """Serve `root` on 127.0.0.1 (a free port); yields the base URL and the (time, path) requests seen."""

    def handler(*args: Any, **kwargs: Any) -> _QuietFiles:
        return _QuietFiles(*args, directory=str(root), **kwargs)

    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def gpg_available() -> bool:
    return subprocess.run(["sh", "-c", "command -v gpg"], capture_output=True, check=False).returncode == 0
