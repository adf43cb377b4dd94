"""Helpers shared by the QEMU builder's steps: the typed config, the VM's name, its main disk, the size budget."""

from __future__ import annotations

from pathlib import Path

from vmbake.config.qemu import QemuConfig
from vmbake.errors import StepError
from vmbake.qemu_argv import output_dir_of, vm_name_of
from vmbake.state import BuildContext


def qemu_config(ctx: BuildContext, step: str) -> QemuConfig:
    if not isinstance(ctx.config, QemuConfig):
        raise StepError(step, f"this step needs a qemu builder, not {ctx.builder_type!r}")
    return ctx.config


def vm_name(ctx: BuildContext) -> str:
    return vm_name_of(qemu_config(ctx, "vm_name"), ctx.name)


def output_dir(ctx: BuildContext) -> Path:
    if ctx.state.output_dir is not None:
        return ctx.state.output_dir
    return output_dir_of(qemu_config(ctx, "output_directory"), ctx.name)


def main_disk(ctx: BuildContext) -> Path:
    if ctx.state.disk_paths:
        return ctx.state.disk_paths[0]
    return output_dir(ctx) / vm_name(ctx)
