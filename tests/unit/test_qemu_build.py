"""The QEMU build without a guest: output directory rules, disk steps with real qemu-img, the build's report.

Builds here fail or stop before QEMU starts, so they are fast; the full run is in tests/integration.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmbake import procs
from vmbake.build import BuildResult, packer_duration, report, run_builds, runnable_builds
from vmbake.config.qemu import QemuConfig, QemuImgArgs
from vmbake.errors import StepError, VmbakeError
from vmbake.state import Artifact, BuildContext, Options
from vmbake.steps.convert_disk import StepConvertDisk
from vmbake.steps.copy_disk import StepCopyDisk
from vmbake.steps.create_disk import StepCreateDisk
from vmbake.steps.prepare_output_dir import StepPrepareOutputDir
from vmbake.steps.resize_disk import StepResizeDisk
from vmbake.template.model import BuildSpec, Template
from vmbake.ui import BuildUi, Ui

pytestmark = pytest.mark.host_tools("qemu-img")


@pytest.fixture(scope="module", autouse=True)
def import_every_step() -> None:
    """Import all step modules once (some pull in paramiko: a second or more), so no test pays for it."""
    from vmbake.builders.qemu import steps

    steps(
        BuildContext(
            "q", "qemu", QemuConfig(), template(Path()), BuildUi(Ui(out=io.StringIO()), "q"), Options()
        )
    )


def template(tmp_path: Path, *specs: BuildSpec) -> Template:
    return Template(path=tmp_path / "t.json", directory=tmp_path, format="json", builds=list(specs))


def context(tmp_path: Path, config: QemuConfig, *, force: bool = False) -> tuple[BuildContext, io.StringIO]:
    out = io.StringIO()
    ctx = BuildContext(
        "qemu",
        "qemu",
        config,
        template(tmp_path),
        BuildUi(Ui(out=out, err=out), "qemu"),
        Options(force=force),
    )
    ctx.state.work_dir = tmp_path
    return ctx, out


def virtual_size(path: Path) -> int:
    return int(
        json.loads(procs.run(["qemu-img", "info", "--output=json", "-U", str(path)]).stdout)["virtual-size"]
    )


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point tempfile at a fresh directory so a test can see every temporary file vmbake leaves."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    yield tmp


def test_existing_output_dir_is_an_error_unless_force(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "old").write_text("x")
    ctx, _ = context(tmp_path, QemuConfig(output_directory=str(out_dir)))
    with pytest.raises(StepError, match=r"already exists\. It must not exist\."):
        StepPrepareOutputDir().run(ctx)
    assert (out_dir / "old").exists()

    ctx, text = context(tmp_path, QemuConfig(output_directory=str(out_dir)), force=True)
    StepPrepareOutputDir().run(ctx)
    assert "==> qemu: Deleting previous output directory..." in text.getvalue()
    assert out_dir.is_dir() and not (out_dir / "old").exists()


def test_output_dir_is_removed_on_failure_and_kept_on_success(tmp_path: Path) -> None:
    for failed in (False, True):
        out_dir = tmp_path / f"out-{failed}"
        ctx, _ = context(tmp_path, QemuConfig(output_directory=str(out_dir)))
        step = StepPrepareOutputDir()
        step.run(ctx)
        ctx.failed = failed
        step.cleanup(ctx)
        assert out_dir.exists() is not failed


def test_default_names_follow_packer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ctx, _ = context(tmp_path, QemuConfig(disk_size=16 << 20))
    StepPrepareOutputDir().run(ctx)
    StepCreateDisk().run(ctx)
    assert ctx.state.disk_paths == [Path("output-qemu/packer-qemu")]
    assert (tmp_path / "output-qemu" / "packer-qemu").exists()


def test_create_disk_with_additional_disks(tmp_path: Path) -> None:
    config = QemuConfig(
        output_directory=str(tmp_path / "out"),
        vm_name="vm",
        disk_size=16 << 20,
        disk_additional_size=[8 << 20, 1 << 30],
    )
    ctx, text = context(tmp_path, config)
    StepPrepareOutputDir().run(ctx)
    StepCreateDisk().run(ctx)
    assert [p.name for p in ctx.state.disk_paths] == ["vm", "vm-1", "vm-2"]
    assert [virtual_size(p) for p in ctx.state.disk_paths] == [16 << 20, 8 << 20, 1 << 30]
    assert "==> qemu: Creating required virtual machine disks" in text.getvalue()


def test_disk_image_copy_resize_and_backing_file(tmp_path: Path) -> None:
    base = tmp_path / "base.img"
    base.write_bytes(b"\1" * (1 << 20))
    config = QemuConfig(
        output_directory=str(tmp_path / "a"), vm_name="vm", disk_image=True, disk_size=32 << 20
    )
    ctx, text = context(tmp_path, config)
    ctx.state.iso_path = base
    for step in (StepPrepareOutputDir(), StepCreateDisk(), StepCopyDisk(), StepResizeDisk()):
        step.run(ctx)
    disk = ctx.state.disk_paths[0]
    assert "==> qemu: Copying hard drive..." in text.getvalue()
    assert "==> qemu: Resizing hard drive..." in text.getvalue()
    info = json.loads(procs.run(["qemu-img", "info", "--output=json", str(disk)]).stdout)
    assert (info["format"], info["virtual-size"]) == ("qcow2", 32 << 20)

    backed = QemuConfig(
        output_directory=str(tmp_path / "b"),
        vm_name="vm",
        disk_image=True,
        use_backing_file=True,
        disk_size=64 << 20,
    )
    ctx, _ = context(tmp_path, backed)
    ctx.state.iso_path = disk
    for step in (StepPrepareOutputDir(), StepCreateDisk(), StepCopyDisk(), StepResizeDisk()):
        step.run(ctx)
    info = json.loads(procs.run(["qemu-img", "info", "--output=json", str(ctx.state.disk_paths[0])]).stdout)
    assert info["backing-filename"] == str(disk.resolve())
    assert info["virtual-size"] == 64 << 20


def test_same_extension_is_copied_as_is(tmp_path: Path) -> None:
    base = tmp_path / "base.qcow2"
    procs.run(["qemu-img", "create", "-f", "qcow2", str(base), "8M"])
    config = QemuConfig(
        output_directory=str(tmp_path / "out"), vm_name="vm", disk_image=True, skip_resize_disk=True
    )
    ctx, text = context(tmp_path, config)
    ctx.state.iso_path = base
    for step in (StepPrepareOutputDir(), StepCreateDisk(), StepCopyDisk(), StepResizeDisk()):
        step.run(ctx)
    assert ctx.state.disk_paths[0].read_bytes() == base.read_bytes()
    assert "Skipping qemu-img convert step" in text.getvalue()
    assert "Resizing" not in text.getvalue()


def test_convert_disk_honours_skip_compaction(tmp_path: Path) -> None:
    disk = tmp_path / "vm"
    procs.run(
        ["qemu-img", "convert", "-S", "0", "-f", "raw", "-O", "qcow2", "/dev/zero", str(disk)], check=False
    )
    procs.run(["qemu-img", "create", "-f", "qcow2", "-o", "preallocation=full", str(disk), "4M"])
    before = disk.stat().st_size
    ctx, text = context(tmp_path, QemuConfig(skip_compaction=True))
    ctx.state.disk_paths = [disk]
    StepConvertDisk().run(ctx)
    assert disk.stat().st_size == before
    assert "Converting" not in text.getvalue()

    ctx, text = context(tmp_path, QemuConfig(qemu_img_args=QemuImgArgs(convert=["-m", "2"])))
    ctx.state.disk_paths = [disk]
    StepConvertDisk().run(ctx)
    assert "==> qemu: Converting hard drive..." in text.getvalue()
    assert disk.stat().st_size < before


def failing_build(tmp_path: Path, on_error: str, private_tmp: Path) -> tuple[int, str, Path]:
    """A build that fails in stepResizeDisk (it asks to shrink the image), after the output dir exists."""
    base = tmp_path / "base.qcow2"
    procs.run(["qemu-img", "create", "-f", "qcow2", str(base), "64M"])
    out_dir = tmp_path / f"out-{on_error}"
    config = QemuConfig(
        iso_url=str(base),
        iso_checksum="none",
        disk_image=True,
        disk_size=1 << 20,
        output_directory=str(out_dir),
        communicator="none",
    )
    text = io.StringIO()
    code = run_builds(
        template(tmp_path, BuildSpec("qemu", "qemu", config)),
        Options(on_error=on_error),
        Ui(out=text, err=text),
    )
    return code, text.getvalue(), out_dir


def test_failed_build_exits_1_removes_output_and_temp_files(tmp_path: Path, private_tmp: Path) -> None:
    code, text, out_dir = failing_build(tmp_path, "cleanup", private_tmp)
    assert code == 1
    assert "==> qemu: stepResizeDisk: Error resizing hard drive" in text
    assert "Build 'qemu' errored after" in text
    assert "==> qemu: Deleting output directory..." in text
    assert not out_dir.exists()
    assert list(private_tmp.iterdir()) == []


def test_abort_keeps_output_marked_incomplete(tmp_path: Path, private_tmp: Path) -> None:
    code, _, out_dir = failing_build(tmp_path, "abort", private_tmp)
    assert code == 1
    assert (out_dir / "INCOMPLETE").exists()
    assert (out_dir / "packer-qemu").exists()
    assert list(private_tmp.iterdir()) == []


def test_existing_output_dir_fails_the_build_and_keeps_it(tmp_path: Path, private_tmp: Path) -> None:
    base = tmp_path / "base.qcow2"
    procs.run(["qemu-img", "create", "-f", "qcow2", str(base), "8M"])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "mine").write_text("precious")
    config = QemuConfig(
        iso_url=str(base), iso_checksum="none", disk_image=True, output_directory=str(out_dir)
    )
    text = io.StringIO()
    code = run_builds(
        template(tmp_path, BuildSpec("qemu", "qemu", config)), Options(), Ui(out=text, err=text)
    )
    assert code == 1
    assert f"Output directory '{out_dir}' already exists" in text.getvalue()
    assert (out_dir / "mine").read_text() == "precious"
    assert list(private_tmp.iterdir()) == []


def test_builds_of_other_types_are_named_and_skipped(tmp_path: Path) -> None:
    specs = [BuildSpec("qemu", "qemu", QemuConfig()), BuildSpec("vbox", "virtualbox-iso", None, runs=False)]
    text = io.StringIO()
    assert [b.name for b in runnable_builds(template(tmp_path, *specs), Ui(out=text, err=text))] == ["qemu"]
    assert (
        text.getvalue().strip()
        == "==> build 'vbox' skipped: vmbake does not run builder type 'virtualbox-iso'"
    )
    with pytest.raises(VmbakeError, match="no build to run"):
        runnable_builds(template(tmp_path, specs[1]), Ui(out=text, err=text))


def test_packer_duration() -> None:
    assert packer_duration(0.0314) == "31 milliseconds"
    assert packer_duration(1.0) == "1 second"
    assert packer_duration(259.4) == "4 minutes 19 seconds"
    assert packer_duration(3725) == "1 hour 2 minutes"


def test_report_lists_artifacts_and_machine_readable_records(tmp_path: Path) -> None:
    out_dir = tmp_path / "output"
    out_dir.mkdir()
    (out_dir / "vm.qcow2").write_bytes(b"x")
    artifact = Artifact("transcend.qemu", out_dir, f"VM files in directory: {out_dir}")
    result = BuildResult(
        "qemu", 3.0, artifacts=[artifact], step_times=[("stepRun", 2.0), ("stepShutdown", 0.01)]
    )
    text = io.StringIO()
    report(Ui(out=text), [result])
    lines = text.getvalue().splitlines()
    assert "==> Builds finished. The artifacts of successful builds are:" in lines
    assert f"--> qemu: VM files in directory: {out_dir}" in lines
    assert any(line.startswith("    qemu: stepRun") for line in lines)
    assert not any("stepShutdown" in line for line in lines)  # quicker than the table's threshold

    machine = io.StringIO()
    report(Ui(out=machine, machine_readable=True), [result])
    records = [line.split(",", 2)[1:] for line in machine.getvalue().splitlines()]
    assert ["qemu", "artifact-count,1"] in records
    assert ["qemu", "artifact,0,builder-id,transcend.qemu"] in records
    assert ["qemu", f"artifact,0,file,0,{out_dir / 'vm.qcow2'}"] in records
    assert ["qemu", "artifact,0,end"] in records
    assert ["qemu", "step-time,stepRun,2.000"] in records


@pytest.mark.host_tools("xorriso")
def test_cd_files_and_content_become_a_labelled_iso(tmp_path: Path) -> None:
    import pycdlib

    from vmbake.steps.create_cd import StepCreateCD

    (tmp_path / "meta-data").write_text("instance-id: vmbake\n")
    config = QemuConfig(
        cd_files=[str(tmp_path / "meta-*")], cd_content={"user-data": "#cloud-config\n"}, cd_label="cidata"
    )
    ctx, text = context(tmp_path, config)
    step = StepCreateCD()
    step.run(ctx)
    assert "==> qemu: Creating CD disk..." in text.getvalue()
    image = ctx.state.cd_path
    assert image is not None and image.parent == tmp_path
    iso = pycdlib.PyCdlib()
    iso.open(str(image))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
        names = sorted(
            child.rock_ridge.name().decode() for child in iso.list_children(rr_path="/") if child.rock_ridge
        )
        assert [n for n in names if n not in (".", "..")] == ["meta-data", "user-data"]
    finally:
        iso.close()
    step.cleanup(ctx)
    assert not image.exists()


def test_force_never_deletes_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep").write_text("x")
    for where in (".", str(tmp_path.parent)):
        ctx, _ = context(tmp_path, QemuConfig(output_directory=where), force=True)
        with pytest.raises(StepError, match="refusing to delete"):
            StepPrepareOutputDir().run(ctx)
    assert (tmp_path / "keep").exists()
