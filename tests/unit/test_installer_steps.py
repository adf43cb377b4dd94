"""The installer steps on their own: which builds they act on, and how the reboot step reads QEMU's end.

QEMU is stood in for by a real short-lived process (`sh -c 'exit N'`, `sleep`), because only its exit
matters here; the integration tests run the same step against a real installer VM.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from vmbake import procs
from vmbake.config.qemu import QemuConfig
from vmbake.errors import StepError
from vmbake.installer import kernel_boot_enabled
from vmbake.state import BuildContext, Options
from vmbake.steps.installer_extract_kernel import StepExtractInstallerKernel
from vmbake.steps.installer_fetch_netboot import StepFetchNetboot
from vmbake.steps.installer_inject_preseed import StepInjectPreseed
from vmbake.steps.installer_reboot import StepInstallerReboot
from vmbake.ui import BuildUi, Ui


def _ctx(tmp_path: Path, **config: Any) -> BuildContext:
    ctx = BuildContext(
        name="qemu",
        builder_type="qemu",
        config=QemuConfig(**config),
        template=None,  # type: ignore[arg-type]
        ui=BuildUi(Ui(out=io.StringIO()), "qemu"),
        options=Options(),
    )
    ctx.state.work_dir = tmp_path
    return ctx


def test_which_builds_boot_the_kernel() -> None:
    assert not kernel_boot_enabled(QemuConfig())
    assert kernel_boot_enabled(QemuConfig(installer_boot="kernel"))
    assert kernel_boot_enabled(QemuConfig(iso_source="debian-netboot", suite="bookworm"))


def test_steps_leave_a_typed_build_alone(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    for step in (
        StepFetchNetboot(),
        StepExtractInstallerKernel(),
        StepInjectPreseed(),
        StepInstallerReboot(),
    ):
        step.run(ctx)
    assert ctx.state.kernel_path is None and ctx.state.initrd_path is None


def test_preseed_file_without_kernel_boot_says_what_to_set(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, preseed_file="p.cfg")
    with pytest.raises(StepError) as err:
        StepInjectPreseed().run(ctx)
    assert "installer_boot to 'kernel' or iso_source to 'debian-netboot'" in (err.value.hint or "")


def test_netboot_without_suite_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StepError, match="needs a suite"):
        StepFetchNetboot().run(_ctx(tmp_path, iso_source="debian-netboot"))


def test_installer_failure_is_reported_with_the_console_log(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, installer_boot="kernel", kernel_args="auto=true")
    ctx.state.kernel_path = tmp_path / "vmlinuz"
    ctx.state.console_log = tmp_path / "console.log"
    ctx.state.qemu = procs.spawn(["sh", "-c", "exit 3"])
    with pytest.raises(StepError) as err:
        StepInstallerReboot().run(ctx)
    assert "QEMU exited with status 3 while the installer ran" in err.value.message
    assert str(tmp_path / "console.log") in (err.value.hint or "")
    assert ctx.state.kernel_path is not None  # nothing was restarted


def test_installer_that_never_ends_hits_ssh_timeout(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, installer_boot="kernel", kernel_args="auto=true", ssh_timeout=0.1)
    ctx.state.kernel_path = tmp_path / "vmlinuz"
    child = procs.spawn(["sleep", "30"])
    ctx.state.qemu = child
    try:
        with pytest.raises(StepError) as err:
            StepInstallerReboot().run(ctx)
    finally:
        child.stop()
    assert "did not finish within 0.1s (ssh_timeout)" in err.value.message
    assert "debian-installer/exit/poweroff" in (err.value.hint or "")


def test_qemu_argv_boots_the_installer_kernel_with_the_iso_attached_then_only_the_disk(
    tmp_path: Path,
) -> None:
    from vmbake.qemu_argv import RunFacts, qemu_argv

    config = QemuConfig(
        installer_boot="kernel",
        kernel_args="auto=true url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/x.cfg",
        headless=True,
    )
    ctx = _ctx(tmp_path, **{"installer_boot": "kernel"})
    state = ctx.state
    state.iso_path = tmp_path / "netinst.iso"
    state.disk_paths = [tmp_path / "disk.qcow2"]
    state.kernel_path, state.initrd_path = tmp_path / "vmlinuz", tmp_path / "initrd.gz"
    state.http_port = 8100
    facts = RunFacts(vm_name="vm", accelerator="tcg")
    installer = qemu_argv(config, state, facts)
    assert installer[installer.index("-append") + 1] == "auto=true url=http://10.0.2.2:8100/x.cfg"
    assert "-no-reboot" in installer
    assert f"file={state.iso_path},media=cdrom" in installer, "d-i finds its packages on the CD"
    # What StepInstallerReboot leaves for the second start: no installer kernel, no CD.
    state.kernel_path = state.initrd_path = state.iso_path = None
    after = qemu_argv(config, state, facts)
    for flag in ("-kernel", "-initrd", "-append", "-no-reboot"):
        assert flag not in after
    assert not any("media=cdrom" in arg for arg in after)
