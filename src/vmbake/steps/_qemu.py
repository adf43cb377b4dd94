"""Helpers shared by the QEMU builder's steps: the typed config, the VM's name, its main disk, its stop."""

from __future__ import annotations

from pathlib import Path

from vmbake.config.qemu import QemuConfig
from vmbake.errors import StepError
from vmbake.qemu_argv import output_dir_of, vm_name_of
from vmbake.state import BuildContext
from vmbake.units import parse_duration
from vmbake.vm import stop_qemu


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


def seconds(text: str, default: float) -> float:
    """A duration key in seconds ('' means the default); the loader has already checked the syntax."""
    if not text:
        return default
    try:
        return parse_duration(text)
    except ValueError:
        return default


def stop_vm(ctx: BuildContext, *, quit_timeout: float = 5.0) -> None:
    """Stop the build's QEMU if it runs (vm.stop_qemu: QMP quit, SIGTERM, SIGKILL). Idempotent."""
    if ctx.state.vm_watch is not None:
        ctx.state.vm_watch.stop()  # first: stopping QEMU is no failure of the VM
        ctx.state.vm_watch = None
    stop_qemu(ctx.state.qemu, ctx.state.qmp, quit_timeout)
    ctx.state.qmp = None
