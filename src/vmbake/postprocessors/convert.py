"""The `convert` post-processor (vmbake's own): the build's disks in the formats other hypervisors take.

For every disk of the input artifacts and every entry of `formats`, one file named after the disk with the
format's extension, beside the disk or in output_directory:
- qcow2, raw: a plain qemu-img convert;
- vmdk: subformat=streamOptimized, what VMware imports and what an OVA carries;
- vhdx: subformat=dynamic, for Hyper-V;
- vhd (vpc): a fixed VHD with force_size, for Azure, whose virtual size must be a whole number of MiB: the
  file is created at the size rounded up, then filled by convert -n;
- ova: one tar for the build (see ova.py), its disks the vmdks (made for it when vmdk is not asked for).
A disk already in a wanted format and written beside itself is its own output, not a copy.

The disks are the build's (state.disk_paths) among the artifact files, else the qcow2 files and the .raw or
.img files among them. Unlike compress, the input is kept unless keep_input_artifact is false, since the outputs
usually sit inside it beside the build's report; then only the outputs of the directory stay. When nothing
needs converting (formats = ["qcow2"] on a qcow2 build) the input passes through untouched, so a template
can always hold a convert fed by a variable.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmbake import procs, qemu_img
from vmbake.config.bootstrap import BootstrapConfig
from vmbake.config.postprocessors import CONVERT_FORMATS, ConvertConfig
from vmbake.config.qemu import MachineConfig
from vmbake.errors import VmbakeError
from vmbake.postprocessors import files_of, render_output
from vmbake.postprocessors.ova import OvfDisk, OvfHardware, write_ova
from vmbake.state import Artifact, BuildContext

BUILDER_ID = "vmbake.post-processor.convert"
EXTENSIONS = {"qcow2": "qcow2", "raw": "raw", "vmdk": "vmdk", "vhdx": "vhdx", "vpc": "vhd", "ova": "ova"}
OPTIONS = {"vmdk": "subformat=streamOptimized", "vhdx": "subformat=dynamic"}
VPC_OPTIONS = "subformat=fixed,force_size=on"
# Suffixes that name a disk; outside a build (no state.disk_paths) a disk is a qcow2 (known by its header) or
# a raw file with one of RAW_SUFFIXES, the formats builds write, so earlier conversions are not taken again.
DISK_SUFFIXES = {".qcow2", ".raw", ".img", ".vmdk", ".vhdx", ".vhd"}
RAW_SUFFIXES = {".raw", ".img"}
MIB = 1 << 20


@dataclass(frozen=True)
class Disk:
    path: Path
    format: str  # as qemu-img info names it
    virtual_size: int


def image_info(path: Path, fmt: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(
        procs.run(qemu_img.info_argv(path, fmt=fmt), what="qemu-img info").stdout
    )
    return info


def populated_size(path: Path, fmt: str) -> int:
    """Bytes of the image that hold data (its allocated extents)."""
    extents = json.loads(procs.run(qemu_img.map_argv(path, fmt=fmt), what="qemu-img map").stdout)
    return sum(int(e["length"]) for e in extents if e.get("data"))


def round_up_mib(size: int) -> int:
    return -(-size // MIB) * MIB


def find_disks(ctx: BuildContext, artifacts: list[Artifact]) -> list[Disk]:
    """The disks among the artifact files, the build's main disk first."""
    known = [p.resolve() for p in ctx.state.disk_paths]
    chosen: list[tuple[int, Path, dict[str, Any]]] = []
    for f in files_of(artifacts):
        rank = known.index(f.resolve()) if f.resolve() in known else len(known)
        if known and rank == len(known):
            continue
        info = image_info(f)
        if (
            known
            or info.get("format") == "qcow2"
            or (info.get("format") == "raw" and f.suffix in RAW_SUFFIXES)
        ):
            chosen.append((rank, f, info))
    chosen.sort(key=lambda c: c[0])
    return [Disk(f, str(info["format"]), int(info["virtual-size"])) for _, f, info in chosen]


def target_path(disk: Disk, fmt: str, out_dir: Path | None) -> Path:
    """Where `disk` in `fmt` goes: the disk itself when already in that format (and no other directory is
    asked for; a vmdk, vhdx or vhd is always rewritten in its subformat), else its name without a disk suffix plus the format's extension."""
    directory = out_dir or disk.path.parent
    if disk.format == fmt and fmt in ("qcow2", "raw") and directory.resolve() == disk.path.parent.resolve():
        return disk.path
    stem = disk.path.stem if disk.path.suffix in DISK_SUFFIXES else disk.path.name
    return directory / f"{stem}.{EXTENSIONS[fmt]}"


def convert_options(disk: Disk, fmt: str) -> list[str]:
    """What goes before -O in `qemu-img convert` from `disk` to `fmt`."""
    extra = ["-f", disk.format]
    if fmt in OPTIONS:
        extra += ["-o", OPTIONS[fmt]]
    return extra


def vpc_argvs(disk: Disk, target: Path) -> list[list[str]]:
    """A fixed VHD of `disk` at `target`: create at the size rounded up to 1 MiB, then fill it."""
    size = str(round_up_mib(disk.virtual_size))
    return [
        qemu_img.create_argv(target, size, fmt="vpc", extra=["-o", VPC_OPTIONS]),
        # The new file reads as zeros: --target-is-zero keeps convert from writing them, so it stays sparse.
        qemu_img.convert_argv(
            disk.path, target, fmt="vpc", extra=["-f", disk.format, "-n", "--target-is-zero"]
        ),
    ]


def write_format(ctx: BuildContext, disk: Disk, fmt: str, target: Path) -> bool:
    """Write `disk` as `fmt` into `target` (through a temporary file beside it, renamed at the end, so the
    target may be the disk itself); False when the disk already is that file."""
    if target == disk.path and disk.format == fmt:
        return False
    ctx.ui.say(f"Converting {disk.path.name} to {fmt}: {target}")
    if fmt != "vpc":
        qemu_img.convert(
            disk.path,
            target,
            fmt=fmt,
            extra=convert_options(disk, fmt),
            ui=ctx.ui,
            cancelled=ctx.cancel.is_set,
        )
        return True
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".convert", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        for argv in vpc_argvs(disk, tmp):
            qemu_img.run_qemu_img(argv, what=f"qemu-img {argv[1]}")
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)  # mkstemp made it 0600
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return True


def hardware(ctx: BuildContext) -> OvfHardware:
    """The OVF's CPUs, memory and firmware, from the build's config (cpus, else sockets*cores*threads, else 1)."""
    # A null build has no machine to describe: the defaults.
    config = ctx.config if isinstance(ctx.config, MachineConfig) else MachineConfig()
    topology = 1
    for n in (config.sockets, config.cores, config.threads):
        topology *= max(n, 1)
    efi = config.efi_boot or (isinstance(config, BootstrapConfig) and config.firmware == "efi")
    return OvfHardware(cpus=config.cpus or topology, memory_mib=config.memory, efi=efi)


def check_formats(formats: list[str]) -> None:
    unknown = [f for f in formats if f not in CONVERT_FORMATS]
    if unknown:
        raise VmbakeError(
            f"unknown format {unknown[0]!r}", hint=f"formats takes: {', '.join(CONVERT_FORMATS)}"
        )
    if not formats:
        raise VmbakeError("formats is empty", hint=f"list one or more of: {', '.join(CONVERT_FORMATS)}")


def write_ova_of(ctx: BuildContext, disks: list[Disk], vmdks: dict[Path, Path], out: Path) -> None:
    """The OVA `out` of `disks`, with the streamOptimized vmdks in `vmdks` (made here when missing)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    name = out.stem
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        members: list[OvfDisk] = []
        for i, disk in enumerate(disks, 1):
            vmdk = vmdks.get(disk.path)
            if vmdk is None:
                vmdk = scratch / f"disk{i}.vmdk"
                write_format(ctx, disk, "vmdk", vmdk)
            info = image_info(vmdk, "vmdk")
            members.append(
                OvfDisk(
                    path=vmdk,
                    name=f"{name}-disk{i}.vmdk",
                    capacity=int(info["virtual-size"]),
                    populated=populated_size(vmdk, "vmdk"),
                )
            )
        ctx.ui.say(f"Writing OVA: {out}")
        tmp = scratch / "ova.tmp"
        write_ova(tmp, name, members, hardware(ctx), scratch)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run(ctx: BuildContext, config: Any, artifacts: list[Artifact]) -> tuple[list[Artifact], bool, bool]:
    cfg: ConvertConfig = config if isinstance(config, ConvertConfig) else ConvertConfig()
    formats = list(dict.fromkeys(cfg.formats))
    check_formats(formats)
    disks = find_disks(ctx, artifacts)
    if not disks:
        raise VmbakeError(
            "the artifact holds no disk image to convert",
            hint="put convert first in its chain, right after the build",
        )
    out_dir = render_output(ctx, cfg.output_directory) if cfg.output_directory else None
    produced: list[Artifact] = []
    vmdks: dict[Path, Path] = {}
    converted = False
    for fmt in [f for f in formats if f != "ova"]:
        for disk in disks:
            target = target_path(disk, fmt, out_dir)
            converted = write_format(ctx, disk, fmt, target) or converted
            if fmt == "vmdk":
                vmdks[disk.path] = target
            produced.append(Artifact(BUILDER_ID, target, f"{fmt} disk: {target}"))
    if "ova" in formats:
        out = target_path(disks[0], "ova", out_dir)
        write_ova_of(ctx, disks, vmdks, out)
        produced.append(Artifact(BUILDER_ID, out, f"OVA: {out}"))
        converted = True
    if not converted:
        ctx.ui.say("The disks are already in the formats asked for: nothing to convert")
        return artifacts, True, True
    return produced, True, False
