"""Read the Debian installer's kernel and initrd out of an installer ISO with pycdlib: no mount, no root.

The ISO's own boot configuration says where they are: isolinux (isolinux.cfg and the files it
includes) for BIOS, GRUB (boot/grub/grub.cfg) for UEFI. The first text-mode install entry wins; the
graphical (gtk) entries are passed over because the serial-friendly text installer is what a build wants.
When no configuration names them, d-i's usual places are tried (install.amd/vmlinuz, install.amd/initrd.gz).
"""

from __future__ import annotations

import io
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pycdlib  # type: ignore[import-untyped,unused-ignore]

from vmbake.errors import VmbakeError

ISOLINUX_CONFIGS = ("/isolinux/isolinux.cfg", "/isolinux.cfg", "/boot/isolinux/isolinux.cfg", "/syslinux.cfg")
GRUB_CONFIGS = ("/boot/grub/grub.cfg", "/efi/boot/grub.cfg")
KNOWN_PAIRS = (
    ("/install.amd/vmlinuz", "/install.amd/initrd.gz"),
    ("/install/vmlinuz", "/install/initrd.gz"),
    ("/install.386/vmlinuz", "/install.386/initrd.gz"),
    ("/install.a64/vmlinuz", "/install.a64/initrd.gz"),
)
_INCLUDE = re.compile(r"^\s*(?:include|menu\s+include)\s+(\S+)", re.IGNORECASE)
_KERNEL = re.compile(r"^\s*(?:kernel|linux)\s+(\S+)", re.IGNORECASE)
_APPEND_INITRD = re.compile(r"\binitrd=(\S+)")
_GRUB_LINUX = re.compile(r"^\s*linux(?:efi)?\s+(\S+)")
_GRUB_INITRD = re.compile(r"^\s*initrd(?:efi)?\s+(\S+)")


@dataclass(frozen=True)
class InstallerFiles:
    """Where the installer's kernel and initrd are inside the ISO, and which file said so."""

    kernel: str
    initrd: str
    found_in: str


class _Iso:
    """Case-insensitive lookups in an opened ISO, through Rock Ridge, Joliet or plain ISO 9660 names."""

    def __init__(self, iso: Any) -> None:
        self.iso = iso
        if iso.has_rock_ridge():
            self.facet = "rr_path"
        elif iso.has_joliet():
            self.facet = "joliet_path"
        else:
            self.facet = "iso_path"
        self.names: dict[str, str] = {}
        for dirpath, _dirs, files in iso.walk(**{self.facet: "/"}):
            for name in files:
                real = posixpath.join(dirpath, name)
                self.names[self._key(real)] = real

    def _key(self, path: str) -> str:
        if self.facet == "iso_path":
            path = path.split(";", 1)[0].rstrip(".")
        return path.lower()

    def exists(self, path: str) -> bool:
        return self._key(path) in self.names

    def read_text(self, path: str) -> str:
        buf = io.BytesIO()
        self.iso.get_file_from_iso_fp(buf, **{self.facet: self.names[self._key(path)]})
        return buf.getvalue().decode("utf-8", "replace")

    def extract(self, path: str, dest: Path) -> None:
        tmp = dest.with_name(dest.name + ".part")
        with tmp.open("wb") as out:
            self.iso.get_file_from_iso_fp(out, **{self.facet: self.names[self._key(path)]})
        tmp.replace(dest)


def _resolve(iso: _Iso, name: str, cfg_dir: str) -> str | None:
    """An isolinux/GRUB path as an ISO path: absolute, else relative to the config's directory or the root."""
    if name.startswith("/"):
        return name if iso.exists(name) else None
    for base in (cfg_dir, "/"):
        candidate = posixpath.normpath(posixpath.join(base, name))
        if iso.exists(candidate):
            return candidate
    return None


def _isolinux_entries(iso: _Iso, cfg: str, seen: set[str]) -> list[tuple[str, str]]:
    """(kernel, initrd) pairs of the labels in `cfg` and the files it includes, in reading order."""
    if cfg in seen or not iso.exists(cfg):
        return []
    seen.add(cfg)
    cfg_dir = posixpath.dirname(cfg)
    entries: list[tuple[str, str]] = []
    kernel: str | None = None
    for line in iso.read_text(cfg).splitlines():
        if match := _INCLUDE.match(line):
            target = _resolve(iso, match.group(1), cfg_dir)
            if target:
                entries += _isolinux_entries(iso, target, seen)
        elif match := _KERNEL.match(line):
            kernel = _resolve(iso, match.group(1), cfg_dir)
        elif line.strip().lower().startswith("append") and kernel:
            if match := _APPEND_INITRD.search(line):
                initrd = _resolve(iso, match.group(1).split(",")[0], cfg_dir)
                if initrd:
                    entries.append((kernel, initrd))
            kernel = None
    return entries


def _grub_entries(iso: _Iso, cfg: str) -> list[tuple[str, str]]:
    if not iso.exists(cfg):
        return []
    entries: list[tuple[str, str]] = []
    kernel: str | None = None
    for line in iso.read_text(cfg).splitlines():
        if match := _GRUB_LINUX.match(line):
            kernel = _resolve(iso, match.group(1), "/")
        elif (match := _GRUB_INITRD.match(line)) and kernel:
            initrd = _resolve(iso, match.group(1), "/")
            if initrd:
                entries.append((kernel, initrd))
            kernel = None
    return entries


def _text_mode(entry: tuple[str, str]) -> bool:
    """Not the graphical installer (its initrd lives in gtk/) nor the Xen one."""
    return not any(part in path for path in entry for part in ("/gtk/", "/xen/"))


def _choose(iso: _Iso) -> InstallerFiles | None:
    for cfg in ISOLINUX_CONFIGS:
        entries = _isolinux_entries(iso, cfg, set())
        text_mode = [e for e in entries if _text_mode(e)]
        if text_mode or entries:
            kernel, initrd = (text_mode or entries)[0]
            return InstallerFiles(kernel, initrd, cfg)
    for cfg in GRUB_CONFIGS:
        entries = _grub_entries(iso, cfg)
        text_mode = [e for e in entries if _text_mode(e)]
        if text_mode or entries:
            kernel, initrd = (text_mode or entries)[0]
            return InstallerFiles(kernel, initrd, cfg)
    for kernel, initrd in KNOWN_PAIRS:
        if iso.exists(kernel) and iso.exists(initrd):
            return InstallerFiles(kernel, initrd, "d-i's usual layout")
    return None


def _open(iso_path: Path) -> Any:
    iso = pycdlib.PyCdlib()
    try:
        iso.open(str(iso_path))
    except (OSError, pycdlib.pycdlibexception.PyCdlibException) as err:
        raise VmbakeError(
            f"cannot read {iso_path} as an ISO 9660 image: {err}",
            hint="check iso_url and iso_checksum; installer_boot 'kernel' needs an installer ISO",
        ) from err
    return iso


def _not_found(iso_path: Path) -> VmbakeError:
    return VmbakeError(
        f"{iso_path} names no installer kernel and initrd: no isolinux or GRUB entry, no install.amd/",
        hint="use installer_boot 'cdrom' with a boot_command for this ISO, or iso_source 'debian-netboot'",
    )


def find_installer(iso_path: Path) -> InstallerFiles:
    """Where the installer's kernel and initrd are in the ISO at `iso_path`."""
    iso = _open(iso_path)
    try:
        found = _choose(_Iso(iso))
    finally:
        iso.close()
    if found is None:
        raise _not_found(iso_path)
    return found


def extract_installer(iso_path: Path, dest_dir: Path) -> tuple[Path, Path, InstallerFiles]:
    """Copy the installer's kernel and initrd out of the ISO into `dest_dir` (as vmlinuz and initrd.gz)."""
    iso = _open(iso_path)
    try:
        view = _Iso(iso)
        found = _choose(view)
        if found is None:
            raise _not_found(iso_path)
        kernel = dest_dir / "vmlinuz"
        initrd = dest_dir / (
            "initrd.gz" if found.initrd.endswith(".gz") else posixpath.basename(found.initrd)
        )
        view.extract(found.kernel, kernel)
        view.extract(found.initrd, initrd)
    finally:
        iso.close()
    return kernel, initrd, found
