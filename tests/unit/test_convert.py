"""The `convert` post-processor: exact argv, the OVF descriptor, and real qemu-img on a small qcow2.

Each output is checked with qemu-img itself (check where the format has one, compare against the source),
the OVA with tarfile and xml.etree, and its manifest by summing the members again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, cast

import pytest

from vmbake.config.postprocessors import ChecksumConfig, ConvertConfig, ManifestConfig
from vmbake.config.qemu import QemuConfig
from vmbake.errors import VmbakeError
from vmbake.postprocessors import run_chain, run_chains
from vmbake.postprocessors.convert import Disk, convert_options, round_up_mib, target_path, vpc_argvs
from vmbake.postprocessors.ova import OvfDisk, OvfHardware, descriptor
from vmbake.state import Artifact, BuildContext, Options
from vmbake.template.model import PostProcessorSpec
from vmbake.ui import BuildUi, Ui

pytestmark = pytest.mark.host_tools("qemu-img")

MIB = 1 << 20
SIZE = 10_000_000  # not a whole MiB: the vhd must round it up
OVF = "{http://schemas.dmtf.org/ovf/envelope/1}"
RASD = "{http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData}"
CHECKED = {"qcow2", "vmdk", "vhdx"}  # qemu-img check supports these; raw and vpc have no check


def qemu_img(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qemu-img", *args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A qcow2 of SIZE bytes with two patterned extents, made once and copied by each test."""
    disk = tmp_path_factory.mktemp("convert-src") / "deb.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), str(SIZE)], check=True)
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 1M", "-c", "write -P 0x5a 5M 512k", str(disk)],
        check=True,
        capture_output=True,
    )
    return disk


@pytest.fixture
def build(tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An output directory as a qemu build leaves it: the disk, a report beside it."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "output-qemu"
    out.mkdir()
    (out / "deb.qcow2").write_bytes(source.read_bytes())
    (out / "deb.report.json").write_text("{}\n")
    return out


def _ctx(disks: list[Path], config: QemuConfig | None = None) -> BuildContext:
    ui = BuildUi(Ui(out=io.StringIO(), color=False), "qemu")
    ctx = BuildContext("deb", "qemu", config or QemuConfig(), cast(Any, None), ui, Options())
    ctx.state.disk_paths = disks
    return ctx


def _vm(out: Path) -> Artifact:
    return Artifact("transcend.qemu", out, f"VM files in directory: {out}")


def _convert(*formats: str, keep: bool | None = None, **kw: str) -> PostProcessorSpec:
    return PostProcessorSpec("convert", ConvertConfig(formats=list(formats), **kw), keep_input_artifact=keep)


def test_argv_and_names_are_exact() -> None:
    disk = Disk(Path("out/deb.qcow2"), "qcow2", SIZE)
    assert round_up_mib(SIZE) == 10 * MIB and round_up_mib(10 * MIB) == 10 * MIB
    assert vpc_argvs(disk, Path("out/t.vhd")) == [
        [
            "qemu-img",
            "create",
            "-f",
            "vpc",
            "-o",
            "subformat=fixed,force_size=on",
            "out/t.vhd",
            str(10 * MIB),
        ],
        [
            "qemu-img",
            "convert",
            "-f",
            "qcow2",
            "-n",
            "--target-is-zero",
            "-O",
            "vpc",
            "out/deb.qcow2",
            "out/t.vhd",
        ],
    ]
    assert convert_options(disk, "vmdk") == ["-f", "qcow2", "-o", "subformat=streamOptimized"]
    assert convert_options(disk, "vhdx") == ["-f", "qcow2", "-o", "subformat=dynamic"]
    assert convert_options(disk, "raw") == ["-f", "qcow2"]
    assert target_path(disk, "vpc", None) == Path("out/deb.vhd")
    assert target_path(disk, "qcow2", None) == disk.path  # already a qcow2 where it would go
    assert target_path(disk, "qcow2", Path("elsewhere")) == Path("elsewhere/deb.qcow2")
    bare = Disk(Path("out/packer-deb"), "qcow2", SIZE)
    assert target_path(bare, "ova", None) == Path("out/packer-deb.ova")


def test_descriptor_lists_hardware_in_schema_order(tmp_path: Path) -> None:
    vmdk = tmp_path / "d.vmdk"
    vmdk.write_bytes(b"x" * 1234)
    text = descriptor("deb & co", [OvfDisk(vmdk, "deb-disk1.vmdk", 5 * MIB, MIB)], OvfHardware(3, 2048, True))
    root = ET.fromstring(text)
    system = root.find(f"{OVF}VirtualSystem")
    assert system is not None and system.get(f"{OVF}id") == "deb & co"
    os_section = system.find(f"{OVF}OperatingSystemSection")
    assert os_section is not None and os_section.get(f"{OVF}id") == "96"
    items = system.findall(f"{OVF}VirtualHardwareSection/{OVF}Item")
    for item in items:
        names = [child.tag for child in item]
        assert names == sorted(names)
    by_type = {item.findtext(f"{RASD}ResourceType"): item for item in items}
    assert by_type["3"].findtext(f"{RASD}VirtualQuantity") == "3"
    assert by_type["4"].findtext(f"{RASD}VirtualQuantity") == "2048"
    assert by_type["17"].findtext(f"{RASD}HostResource") == "ovf:/disk/vmdisk1"
    assert by_type["10"].findtext(f"{RASD}Connection") == "VM Network"
    file = root.find(f"{OVF}References/{OVF}File")
    assert file is not None and file.get(f"{OVF}size") == "1234"
    assert 'vmw:value="efi"' in text


def test_every_format_checks_and_compares_equal(build: Path) -> None:
    disk = build / "deb.qcow2"
    ctx = _ctx([disk], QemuConfig(cpus=2, memory=1536))
    chain = [
        _convert("raw", "qcow2", "vmdk", "vhdx", "vpc", "ova"),
        PostProcessorSpec("checksum", ChecksumConfig(checksum_types=["sha256"], output="sums.txt")),
    ]
    listed = run_chains(ctx, [chain], [_vm(build)])
    outputs = {p.suffix.lstrip("."): p for p in (build / f"deb.{e}" for e in ("raw", "vmdk", "vhdx", "vhd"))}
    outputs["qcow2"] = disk
    for fmt, path in outputs.items():
        qemu_fmt = "vpc" if fmt == "vhd" else fmt
        if qemu_fmt in CHECKED:
            assert qemu_img("check", "-f", qemu_fmt, str(path)).returncode == 0, fmt
        compared = qemu_img("compare", "-f", "qcow2", "-F", qemu_fmt, str(disk), str(path))
        assert compared.returncode == 0, (fmt, compared.stdout, compared.stderr)
    info = json.loads(qemu_img("info", "--output=json", str(outputs["vmdk"])).stdout)
    assert info["format-specific"]["data"]["create-type"] == "streamOptimized"
    vhd = outputs["vhd"]
    assert vhd.stat().st_size == 10 * MIB + 512  # fixed: the data, then the 512-byte footer
    assert vhd.stat().st_blocks * 512 < 4 * MIB  # but sparse: the zeros were not written
    vhd_info = json.loads(qemu_img("info", "--output=json", "-f", "vpc", str(vhd)).stdout)
    assert vhd_info["virtual-size"] == 10 * MIB
    with open(vhd, "rb") as f:
        f.seek(-512, 2)
        footer = f.read()
    assert footer[:8] == b"conectix" and int.from_bytes(footer[60:64], "big") == 2  # disk type 2: fixed
    # The checksum post-processor got every output; the build's directory is kept, report and all.
    sums = dict(line.split("\t")[::-1] for line in Path("sums.txt").read_text().splitlines())
    assert sorted(sums) == sorted(["deb.ova", "deb.qcow2", "deb.raw", "deb.vhd", "deb.vhdx", "deb.vmdk"])
    assert sums["deb.ova"] == hashlib.sha256((build / "deb.ova").read_bytes()).hexdigest()
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in build.iterdir() if p.name in sums}
    assert modes == dict.fromkeys(sums, 0o666 & ~umask)  # as qemu-img makes its files
    assert (build / "deb.report.json").exists() and listed[0].path == build
    _check_ova(build / "deb.ova", outputs["vmdk"], cpus=2, memory=1536)


def _check_ova(ova: Path, vmdk: Path, *, cpus: int, memory: int) -> None:
    with tarfile.open(ova) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["deb.ovf", "deb.mf", "deb-disk1.vmdk"]
        assert all(m.isfile() for m in members)
        data = {m.name: cast(io.BufferedReader, tar.extractfile(m)).read() for m in members}
    root = ET.fromstring(data["deb.ovf"])
    hrefs = [f.get(f"{OVF}href") for f in root.iter(f"{OVF}File")]
    assert hrefs == ["deb-disk1.vmdk"]
    assert data["deb-disk1.vmdk"] == vmdk.read_bytes()
    (file,) = root.iter(f"{OVF}File")
    assert file.get(f"{OVF}size") == str(len(data["deb-disk1.vmdk"]))
    (disk,) = root.iter(f"{OVF}Disk")
    assert disk.get(f"{OVF}fileRef") == file.get(f"{OVF}id")
    info = json.loads(qemu_img("info", "--output=json", str(vmdk)).stdout)
    assert disk.get(f"{OVF}capacity") == str(info["virtual-size"])
    extents = json.loads(qemu_img("map", "--output=json", str(vmdk)).stdout)
    assert disk.get(f"{OVF}populatedSize") == str(1536 * 1024)  # the two extents written: 1 MiB + 512 KiB
    assert sum(e["length"] for e in extents if e["data"]) == 1536 * 1024
    quantities = {
        item.findtext(f"{RASD}ResourceType"): item.findtext(f"{RASD}VirtualQuantity")
        for item in root.iter(f"{OVF}Item")
    }
    assert quantities["3"] == str(cpus) and quantities["4"] == str(memory)
    lines = data["deb.mf"].decode().splitlines()
    assert lines == [
        f"SHA256({n})= {hashlib.sha256(data[n]).hexdigest()}" for n in ("deb.ovf", "deb-disk1.vmdk")
    ]


def test_ova_alone_makes_its_own_vmdk_and_leaves_no_scratch(build: Path, tmp_path: Path) -> None:
    ctx = _ctx([])  # no disk_paths: the disk is found by its header, the report is not a disk
    produced = run_chain(ctx, [_convert("ova", output_directory="images")], [_vm(build)])
    ova = tmp_path / "images" / "deb.ova"
    assert [a.path.resolve() for a in produced] == [ova]
    assert [p.name for p in (tmp_path / "images").iterdir()] == ["deb.ova"]
    with tarfile.open(ova) as tar:
        vmdk = tmp_path / "x.vmdk"
        vmdk.write_bytes(cast(io.BufferedReader, tar.extractfile("deb-disk1.vmdk")).read())
    assert qemu_img("compare", "-F", "vmdk", str(build / "deb.qcow2"), str(vmdk)).returncode == 0


def test_manifest_after_convert_and_input_not_kept(build: Path) -> None:
    ctx = _ctx([build / "deb.qcow2"])
    chain = [_convert("vmdk", keep=False), PostProcessorSpec("manifest", ManifestConfig(output="m.json"))]
    listed = run_chains(ctx, [chain], [_vm(build)])
    assert [a.path for a in listed] == [build / "deb.vmdk"]
    assert sorted(p.name for p in build.iterdir()) == ["deb.vmdk"]  # the qcow2 and report are gone
    record = json.loads(Path("m.json").read_text())["builds"][0]
    assert [f["name"] for f in record["files"]] == ["output-qemu/deb.vmdk"]


def test_nothing_to_convert_passes_the_input_through(build: Path) -> None:
    ctx = _ctx([build / "deb.qcow2"])
    before = (build / "deb.qcow2").stat().st_mtime_ns
    listed = run_chains(ctx, [[_convert("qcow2", keep=False)]], [_vm(build)])
    assert listed == [_vm(build)]
    assert (build / "deb.qcow2").stat().st_mtime_ns == before and (build / "deb.report.json").exists()


def test_bad_formats_and_no_disk(build: Path) -> None:
    ctx = _ctx([build / "deb.qcow2"])
    with pytest.raises(VmbakeError, match="unknown format 'vdi'") as err:
        run_chain(ctx, [_convert("vdi")], [_vm(build)])
    assert err.value.hint and "vmdk" in err.value.hint
    log = build / "notes.txt"
    log.write_text("not a disk\n")
    with pytest.raises(VmbakeError, match="no disk image"):
        run_chain(_ctx([]), [_convert("vmdk")], [Artifact("x", log, "")])


def test_a_raw_disk_named_qcow2_is_converted_in_place(build: Path, source: Path) -> None:
    disk = build / "deb.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(source), str(disk)], check=True)
    ctx = _ctx([disk])
    listed = run_chains(ctx, [[_convert("qcow2")]], [_vm(build)])
    assert [a.path for a in listed] == [build, disk]
    assert json.loads(qemu_img("info", "--output=json", str(disk)).stdout)["format"] == "qcow2"
    assert qemu_img("compare", "-F", "qcow2", str(source), str(disk)).returncode == 0
    assert sorted(p.name for p in build.iterdir()) == ["deb.qcow2", "deb.report.json"]  # no scratch left
