"""The `vagrant` post-processor for the libvirt provider: a qcow2 artifact packed as a Vagrant box.

The box is a tar (gzip'd at compression_level; level 0 leaves it a plain tar, as Packer does) of:
`metadata.json` (provider libvirt, format qcow2, virtual_size in GiB rounded up), a `Vagrantfile` (the
libvirt driver, then the text of vagrantfile_template if given), the `include` files, and `box.img`, the
artifact's disk itself. As Packer's libvirt provider, the input artifact is not kept by default.

Only libvirt boxes are made: a box for VirtualBox, VMware, Hyper-V, Parallels or a cloud holds that
platform's own disk format and machine description, which a QEMU build does not produce.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

from vmbake import procs
from vmbake.config.postprocessors import VagrantConfig, unsupported_provider
from vmbake.errors import VmbakeError
from vmbake.postprocessors import add_to_tar, files_of, render_output
from vmbake.state import Artifact, BuildContext

BUILDER_ID = "mitchellh.post-processor.vagrant"
GiB = 1 << 30
# The artifacts that hold a qcow2 disk a libvirt box can carry.
LIBVIRT_ARTIFACTS = frozenset({"transcend.qemu", "vmbake.debian-bootstrap"})

VAGRANTFILE_HEADER = "# Vagrantfile of a libvirt box made by vmbake's vagrant post-processor.\n"
LIBVIRT_VAGRANTFILE = """
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.driver = "{driver}"
  end
end
"""
CUSTOM_HEADER = "\n# From the template's vagrantfile_template:\n"


def provider_of(cfg: VagrantConfig, artifacts: list[Artifact]) -> str:
    if cfg.provider_override:
        return cfg.provider_override
    ids = {a.builder_id for a in artifacts}
    if ids and ids <= LIBVIRT_ARTIFACTS:
        return "libvirt"
    raise VmbakeError(
        f"vagrant: cannot make a box from this artifact ({', '.join(sorted(ids)) or 'no artifact'})",
        hint='put vagrant right after a qemu build, or set provider_override = "libvirt" (after artifice)',
    )


def disk_of(ctx: BuildContext, artifacts: list[Artifact]) -> tuple[Path, int]:
    """The artifact's qcow2 disk and its virtual size in bytes."""
    files = files_of(artifacts)
    name = getattr(ctx.config, "vm_name", "")
    ordered = [f for f in files if f.name == name] + [f for f in files if f.name != name]
    for path in ordered:
        if path.suffix in (".json", ".txt", ".sha256", ".md5", ".log") or path.name.startswith("efivars"):
            continue
        out = procs.run(["qemu-img", "info", "--output=json", "-U", str(path)], check=False, what="qemu-img")
        if out.returncode != 0:
            continue
        info = json.loads(out.stdout)
        if info.get("format") == "qcow2":
            return path, int(info["virtual-size"])
    raise VmbakeError(
        "vagrant: the artifact has no qcow2 disk", hint='a libvirt box needs format = "qcow2" in the builder'
    )


def vagrantfile(ctx: BuildContext, cfg: VagrantConfig) -> str:
    accel = ctx.state.accelerator or getattr(ctx.config, "accelerator", "")
    text = VAGRANTFILE_HEADER + LIBVIRT_VAGRANTFILE.format(driver="kvm" if accel == "kvm" else "qemu")
    if cfg.vagrantfile_template:
        try:
            custom = Path(cfg.vagrantfile_template).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise VmbakeError(
                f"vagrant: cannot read vagrantfile_template {cfg.vagrantfile_template}: {exc}",
                hint="check the path (relative paths are taken from the current directory)",
            ) from None
        text += CUSTOM_HEADER + custom
    return text


def _add_text(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def write_box(
    out: Path, level: int, members: dict[str, str], files: list[tuple[Path, str]], cancel: threading.Event
) -> None:
    """A box at `out`: text `members` then `files` (path, name in the box), written through a temporary
    file; stops with BuildCancelled once `cancel` is set."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tar_open: Any = tarfile.open  # its overloads want a literal mode
    try:
        args: dict[str, Any] = {"compresslevel": level} if level else {}
        with tar_open(tmp, "w:gz" if level else "w", **args) as tar:
            for name, text in members.items():
                _add_text(tar, name, text)
            for path, name in files:
                add_to_tar(tar, path, name, cancel)
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def run(ctx: BuildContext, config: Any, artifacts: list[Artifact]) -> tuple[list[Artifact], bool, bool]:
    cfg: VagrantConfig = config if isinstance(config, VagrantConfig) else VagrantConfig()
    provider = provider_of(cfg, artifacts)
    keys = {f.name for f in dataclasses.fields(VagrantConfig)} - {"override", "provider_override"}
    chosen = cfg.override.get(provider)
    if isinstance(chosen, dict):
        cfg = dataclasses.replace(cfg, **{k: v for k, v in chosen.items() if k in keys})
    reason = unsupported_provider(provider)
    if reason:
        raise VmbakeError(f"vagrant: {reason}", hint="build a libvirt box, or skip this post-processor")
    disk, size = disk_of(ctx, artifacts)
    out = render_output(ctx, cfg.output, Provider=provider, ArtifactId="VM")
    ctx.ui.say(f"Creating a Vagrant box for '{provider}' provider")
    metadata = {"provider": provider, "format": "qcow2", "virtual_size": -(-size // GiB)}
    for item in cfg.include:
        if not Path(item).is_file():
            raise VmbakeError(f"vagrant: include file {item} does not exist", hint="check the path")
    level = 6 if cfg.compression_level < 0 else cfg.compression_level
    ctx.ui.message(f"Copying from artifact: {disk}")
    ctx.ui.message(f"Compressing: {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_box(
        out,
        level,
        {"metadata.json": json.dumps(metadata) + "\n", "Vagrantfile": vagrantfile(ctx, cfg)},
        [(Path(i), Path(i).name) for i in cfg.include] + [(disk, "box.img")],
        ctx.cancel,
    )
    return [Artifact(BUILDER_ID, out, f"'{provider}' provider box: {out}")], False, False
