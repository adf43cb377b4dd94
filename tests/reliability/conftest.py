"""Fixtures of the reliability suite: tiny guests (one that powers off, one that never does), a blank
disk image, and a `Rig` that writes a template, runs vmbake as a subprocess and checks what it left."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.faults import VmbakeRun, files_under, kill_all, procs_with_argv, wait_gone
from tests.helpers.guests import tiny_guest_template, write_initramfs
from vmbake import procs


@dataclass(frozen=True)
class GuestFiles:
    initrd: Path  # prints a marker and powers off
    hanging: Path  # prints a marker and waits forever
    disk: Path  # a blank 64 MiB qcow2 (the guests boot with -kernel; the disk is only copied)


@pytest.fixture(scope="session")
def guest_files(tmp_path_factory: pytest.TempPathFactory) -> GuestFiles:
    from tests.helpers.faults import hanging_initramfs

    base = tmp_path_factory.mktemp("reliability-guests")
    disk = base / "blank.qcow2"
    procs.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"])
    return GuestFiles(write_initramfs(base / "initrd"), hanging_initramfs(base / "hanging"), disk)


class Rig:
    """One test's build: a unique vm_name (to find its QEMU), a private TMPDIR, an output dir."""

    def __init__(self, base: Path, guests: GuestFiles) -> None:
        self.base = base
        self.guests = guests
        self.vm_name = f"rel-{uuid.uuid4().hex[:12]}.qcow2"
        self.output = base / "output"
        self.cache = base / "cache"
        self.runs: list[VmbakeRun] = []

    def template(self, *, hanging: Any = True, **extra: object) -> dict[str, object]:
        initrd = self.guests.hanging if hanging else self.guests.initrd
        extra.setdefault("vm_name", self.vm_name)
        extra.setdefault("shutdown_timeout", "2m")
        return tiny_guest_template(self.guests.disk, initrd, self.output, **extra)

    def write(self, template: dict[str, object], name: str = "template.json") -> Path:
        path = self.base / name
        path.write_text(json.dumps(template, indent=2))
        return path

    def start(
        self, template: dict[str, object] | Path, *flags: str, env: dict[str, str] | None = None
    ) -> VmbakeRun:
        path = template if isinstance(template, Path) else self.write(template)
        run = VmbakeRun(
            ["build", *flags, str(path)],
            self.base,
            env={"VMBAKE_CACHE_DIR": str(self.cache), **(env or {})},
        )
        self.runs.append(run)
        return run

    def build(
        self,
        template: dict[str, object] | Path,
        *flags: str,
        timeout: float = 120,
        env: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        return self.start(template, *flags, env=env).finish(timeout)

    def qemu_pids(self) -> list[int]:
        return procs_with_argv(self.vm_name)

    def assert_clean(self, *, output: str = "removed") -> None:
        """No QEMU of this build, no child of vmbake, nothing in TMPDIR; the output dir as `output` says:
        'removed' (or never made), 'incomplete' (kept with the INCOMPLETE marker) or 'any'."""
        left = wait_gone(self.vm_name)
        assert not left, f"QEMU of this build still running: {left}"
        for run in self.runs:
            assert run.proc.poll() is not None, "vmbake still running"
        assert files_under(self.base / "tmp") == [], "temporary files left behind"
        if output == "removed":
            assert not self.output.exists(), f"output dir left: {files_under(self.output)}"
        elif output == "incomplete":
            assert (self.output / "INCOMPLETE").is_file(), f"no INCOMPLETE marker: {files_under(self.output)}"
            assert "not a finished image" in (self.output / "INCOMPLETE").read_text()

    def stop(self) -> None:
        for run in self.runs:
            run.kill()
        kill_all(self.qemu_pids())


@pytest.fixture
def rig(tmp_path: Path, guest_files: GuestFiles) -> Iterator[Rig]:
    r = Rig(tmp_path, guest_files)
    try:
        yield r
    finally:
        r.stop()
