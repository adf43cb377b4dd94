"""Post-processors on real files in a temp directory; expected outputs computed independently."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, cast

import pytest

from vmbake import procs
from vmbake.config.postprocessors import (
    ChecksumConfig,
    CompressConfig,
    ManifestConfig,
    ShellLocalPostConfig,
)
from vmbake.config.qemu import QemuConfig
from vmbake.errors import BuildCancelled, VmbakeError
from vmbake.postprocessors import run_chain, run_chains
from vmbake.postprocessors.manifest import RUN_UUID
from vmbake.state import Artifact, BuildContext, Options
from vmbake.template.model import PostProcessorSpec
from vmbake.ui import BuildUi, Ui

DISK = b"QFI\xfb" + b"\0" * 5000
LOG = b"BOOT OK\n"


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "output-qemu"
    out.mkdir()
    (out / "buster.qcow2").write_bytes(DISK)
    (out / "buster.console.log").write_bytes(LOG)
    return tmp_path


def _ctx() -> tuple[BuildContext, io.StringIO]:
    out = io.StringIO()
    ctx = BuildContext(
        "qemu", "qemu", QemuConfig(), cast(Any, None), BuildUi(Ui(out=out, color=False), "qemu"), Options()
    )
    ctx.state.step_times = [("StepDownload", 1.23456), ("StepConvertDisk", 2.5)]
    return ctx, out


def _vm(work: Path) -> Artifact:
    path = work / "output-qemu"
    return Artifact("transcend.qemu", path, f"VM files in directory: {path}")


def test_checksum_files_like_packer(work: Path) -> None:
    ctx, out = _ctx()
    spec = PostProcessorSpec("checksum", ChecksumConfig(checksum_types=["md5", "sha256"]))
    produced = run_chain(ctx, [spec], [_vm(work)])
    md5 = work / "packer_qemu_qemu_md5.checksum"
    sha = work / "packer_qemu_qemu_sha256.checksum"
    assert md5.read_text() == (
        f"{hashlib.md5(LOG).hexdigest()}\tbuster.console.log\n{hashlib.md5(DISK).hexdigest()}\tbuster.qcow2\n"
    )
    assert sha.read_text() == (
        f"{hashlib.sha256(LOG).hexdigest()}\tbuster.console.log\n{hashlib.sha256(DISK).hexdigest()}\tbuster.qcow2\n"
    )
    assert [a.path for a in produced] == [
        Path("packer_qemu_qemu_md5.checksum"),
        Path("packer_qemu_qemu_sha256.checksum"),
    ]
    assert out.getvalue() == "==> qemu: Running post-processor: checksum\n"
    run_chain(ctx, [spec], [_vm(work)])  # Packer appends
    assert len(md5.read_text().splitlines()) == 4


def test_checksum_output_template_and_bad_type(work: Path) -> None:
    ctx, _ = _ctx()
    spec = PostProcessorSpec("checksum", ChecksumConfig(["sha1"], "sums/{{.BuildName}}.{{.ChecksumType}}"))
    run_chain(ctx, [spec], [_vm(work)])
    assert (
        (work / "sums" / "qemu.sha1")
        .read_text()
        .endswith(f"{hashlib.sha1(DISK).hexdigest()}\tbuster.qcow2\n")
    )
    with pytest.raises(VmbakeError, match="post-processor checksum failed: unknown checksum type 'crc32'"):
        run_chain(ctx, [PostProcessorSpec("checksum", ChecksumConfig(["crc32"]))], [_vm(work)])


def test_manifest_records_files_sizes_sha256_and_step_times(work: Path) -> None:
    ctx, _ = _ctx()
    spec = PostProcessorSpec("manifest", ManifestConfig(custom_data={"release": "buster"}))
    vm = _vm(work)
    assert run_chains(ctx, [[spec]], [vm]) == [vm]
    data = json.loads((work / "packer-manifest.json").read_text())
    assert data["last_run_uuid"] == RUN_UUID
    (build,) = data["builds"]
    assert isinstance(build.pop("build_time"), int)
    assert build == {
        "name": "qemu",
        "builder_type": "qemu",
        "files": [
            {
                "name": "output-qemu/buster.console.log",
                "size": len(LOG),
                "sha256": hashlib.sha256(LOG).hexdigest(),
            },
            {
                "name": "output-qemu/buster.qcow2",
                "size": len(DISK),
                "sha256": hashlib.sha256(DISK).hexdigest(),
            },
        ],
        "artifact_id": "VM",
        "packer_run_uuid": RUN_UUID,
        "custom_data": {"release": "buster"},
        "step_times": [
            {"step": "StepDownload", "seconds": 1.235},
            {"step": "StepConvertDisk", "seconds": 2.5},
        ],
    }
    stripped = PostProcessorSpec("manifest", ManifestConfig(strip_path=True, strip_time=True))
    run_chain(ctx, [stripped], [vm])
    data = json.loads((work / "packer-manifest.json").read_text())
    assert len(data["builds"]) == 2  # appended
    assert "build_time" not in data["builds"][1] and data["builds"][1]["custom_data"] is None
    assert [f["name"] for f in data["builds"][1]["files"]] == ["buster.console.log", "buster.qcow2"]
    assert not list(work.glob("*.lock")) and not list(work.glob(".*.tmp"))


def test_manifest_refuses_a_broken_file(work: Path) -> None:
    (work / "packer-manifest.json").write_text("{not json")
    ctx, _ = _ctx()
    with pytest.raises(VmbakeError, match="cannot add to the manifest"):
        run_chain(ctx, [PostProcessorSpec("manifest", ManifestConfig())], [_vm(work)])


def test_compress_tar_gz_replaces_the_vm_unless_kept(work: Path) -> None:
    ctx, out = _ctx()
    vm = _vm(work)
    kept = run_chains(
        ctx, [[PostProcessorSpec("compress", CompressConfig(), keep_input_artifact=True)]], [vm]
    )
    archive = Path("packer_qemu_qemu.tar.gz")
    assert [a.path for a in kept] == [vm.path, archive]
    with tarfile.open(work / archive) as tar:
        assert sorted(tar.getnames()) == ["output-qemu/buster.console.log", "output-qemu/buster.qcow2"]
        member = tar.extractfile("output-qemu/buster.qcow2")
        assert member is not None and member.read() == DISK
    result = run_chains(ctx, [[PostProcessorSpec("compress", CompressConfig(output="vm.zip"))]], [vm])
    assert [a.description for a in result] == ["compressed artifacts in: vm.zip"]
    assert not vm.path.exists()  # as Packer: the input is deleted when nothing keeps it
    assert "Deleting original artifact for build 'qemu'" in out.getvalue()
    with zipfile.ZipFile(work / "vm.zip") as z:
        assert z.read("output-qemu/buster.console.log") == LOG


@pytest.mark.host_tools("zstd")
def test_checksum_in_any_chain_keeps_the_vm(work: Path) -> None:
    ctx, _ = _ctx()
    vm = _vm(work)
    chains = [
        [PostProcessorSpec("compress", CompressConfig(output="vm.tar.zst"))],
        [PostProcessorSpec("checksum", ChecksumConfig(["sha256"]))],
    ]
    result = run_chains(ctx, chains, [vm])
    assert [a.path for a in result] == [vm.path, Path("vm.tar.zst"), Path("packer_qemu_qemu_sha256.checksum")]
    assert vm.path.is_dir() and (work / "vm.tar.zst").read_bytes()[:4] == b"\x28\xb5\x2f\xfd"


def test_compress_then_checksum_sums_the_archive(work: Path) -> None:
    ctx, _ = _ctx()
    chain = [
        PostProcessorSpec("compress", CompressConfig(output="vm.tar"), keep_input_artifact=True),
        PostProcessorSpec("checksum", ChecksumConfig(["sha256"])),
    ]
    result = run_chains(ctx, [chain], [_vm(work)])
    digest = hashlib.sha256((work / "vm.tar").read_bytes()).hexdigest()
    assert (work / "packer_qemu_qemu_sha256.checksum").read_text() == f"{digest}\tvm.tar\n"
    assert (work / "vm.tar").exists()  # checksum keeps its input
    assert len(result) == 2


def test_compress_errors(work: Path) -> None:
    ctx, _ = _ctx()
    with pytest.raises(VmbakeError, match=r"a \.gz file holds one file, the artifact has 2"):
        run_chain(ctx, [PostProcessorSpec("compress", CompressConfig(output="x.gz"))], [_vm(work)])
    with pytest.raises(VmbakeError, match="cannot make a lz4 archive"):
        run_chain(ctx, [PostProcessorSpec("compress", CompressConfig(output="x.lz4"))], [_vm(work)])
    with pytest.raises(VmbakeError, match="'vagrant-cloud' is not supported"):
        run_chain(ctx, [PostProcessorSpec("vagrant-cloud", None)], [_vm(work)])
    assert sorted(os.listdir(work)) == ["output-qemu"]


# -- a cancel during the post-processors: Packer's rule for the build's artifact ------------------------


def test_a_cancel_before_a_first_post_processor_finished_deletes_the_vm(work: Path) -> None:
    """No chain's first post-processor finished and kept the VM: it goes (packer/build.go, CoreBuild.Run)."""
    ctx, out = _ctx()
    vm = _vm(work)
    ctx.cancel.set()
    with pytest.raises(BuildCancelled):
        run_chains(ctx, [[PostProcessorSpec("checksum", ChecksumConfig())]], [vm])
    assert not vm.path.exists()
    assert "Deleting original artifact for build 'qemu'" in out.getvalue()
    assert "Running post-processor" not in out.getvalue()  # none starts once the build is cancelled


def test_a_cancel_after_checksum_kept_the_vm_keeps_it(work: Path) -> None:
    """checksum finished first in its chain and keeps its input: the cancel of the command after it (seen
    by the one door for processes, as on a worker thread where no signal lands) leaves the VM and the sums."""
    ctx, out = _ctx()
    vm = _vm(work)
    chain = [
        PostProcessorSpec("checksum", ChecksumConfig(output="sums.md5")),
        PostProcessorSpec("shell-local", ShellLocalPostConfig(inline=["sleep 30"])),
        PostProcessorSpec("compress", CompressConfig(output="never.tar.gz")),
    ]
    timer = threading.Timer(0.5, ctx.cancel.set)
    started = time.monotonic()
    timer.start()
    try:
        with procs.cancelled_by(ctx.cancel), pytest.raises(BuildCancelled):
            run_chains(ctx, [chain], [vm])
    finally:
        timer.cancel()
    assert time.monotonic() - started < 10
    assert sorted(p.name for p in vm.path.iterdir()) == ["buster.console.log", "buster.qcow2"]
    assert "buster.qcow2" in (work / "sums.md5").read_text()
    assert not (work / "never.tar.gz").exists()
    assert "Deleting original artifact" not in out.getvalue()


@pytest.mark.parametrize("output", ["vm.tar.xz", "vm.zip"])
def test_a_cancel_from_another_thread_stops_compress_within_a_block(work: Path, output: str) -> None:
    """On a worker thread (-parallel-builds) no signal interrupts the in-process compression; the cancel
    event does, within one block of the disk (zip: between members). Noise keeps xz busy for seconds."""
    ctx, _ = _ctx()
    vm = _vm(work)
    (vm.path / "noise.bin").write_bytes(os.urandom(16 << 20))
    if output.endswith(".zip"):  # zip sees the cancel between members: many small ones
        for i in range(400):
            (vm.path / f"part{i:03}.bin").write_bytes(os.urandom(64 << 10))
    level = 9 if output.endswith(".xz") else 1
    timer = threading.Timer(0.3, ctx.cancel.set)
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(BuildCancelled):
            run_chains(
                ctx, [[PostProcessorSpec("compress", CompressConfig(output, compression_level=level))]], [vm]
            )
    finally:
        timer.cancel()
    assert time.monotonic() - started < 3
    assert sorted(p.name for p in work.iterdir()) == []  # no archive, no temporary file, the VM deleted


def test_a_set_cancel_stops_checksum_before_it_reads(work: Path) -> None:
    from vmbake.postprocessors.checksum import digests

    cancel = threading.Event()
    assert (
        digests(work / "output-qemu" / "buster.qcow2", ["md5"], cancel)["md5"]
        == hashlib.md5(DISK).hexdigest()
    )
    cancel.set()
    with pytest.raises(BuildCancelled):
        digests(work / "output-qemu" / "buster.qcow2", ["md5"], cancel)
