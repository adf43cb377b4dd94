"""The null builder, the breakpoint provisioner and the shell-local, artifice and vagrant post-processors.

Real parts: templates run through `vmbake build`, a real sshd on loopback for the null builder's SSH,
real qemu-img for the qcow2 disks, real tar archives read back.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from tests.helpers.sshd import Sshd, home_of, running_sshd, throwaway_user
from vmbake.cli import main
from vmbake.config.postprocessors import ArtificeConfig, ShellLocalPostConfig, VagrantConfig
from vmbake.config.provisioners import BreakpointConfig
from vmbake.config.qemu import QemuConfig
from vmbake.errors import VmbakeError
from vmbake.postprocessors import run_chain
from vmbake.provisioners import Run
from vmbake.provisioners.breakpoint import provision as breakpoint
from vmbake.state import Artifact, BuildContext, Options
from vmbake.template.model import PostProcessorSpec
from vmbake.ui import BuildUi, Ui

GiB = 1 << 30


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _ctx(inp: Any = None, accelerator: str = "tcg") -> tuple[BuildContext, io.StringIO]:
    out = io.StringIO()
    ui = Ui(out=out, err=out, color=False, inp=inp)
    ctx = BuildContext(
        "qemu", "qemu", QemuConfig(vm_name="disk.qcow2"), cast(Any, None), BuildUi(ui, "qemu"), Options()
    )
    ctx.state.accelerator = accelerator
    return ctx, out


def _qcow2(path: Path, size: str = "1536M") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0x5a 0 1M", str(path)], check=True, capture_output=True)
    return path


def _build(capsys: pytest.CaptureFixture[str], path: Path, *args: str) -> tuple[int, str]:
    code = main(["build", *args, str(path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _validate(capsys: pytest.CaptureFixture[str], path: Path, *args: str) -> tuple[int, str]:
    code = main(["validate", *args, str(path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# -- the null builder -----------------------------------------------------------------------------------
def test_null_builder_with_communicator_none_runs_host_side_only(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = here / "null.pkr.hcl"
    template.write_text(
        'source "null" "host" {\n  communicator = "none"\n}\n'
        'build {\n  sources = ["source.null.host"]\n'
        '  provisioner "shell-local" {\n'
        '    inline = ["echo \\"$PACKER_BUILD_NAME $PACKER_BUILDER_TYPE\\" > made.txt"]\n  }\n'
        '  provisioner "breakpoint" {\n    disable = true\n    note = "skipped"\n  }\n}\n'
    )
    code, out = _build(capsys, template)
    assert code == 0, out
    assert (here / "made.txt").read_text() == "null.host null\n"
    assert 'Breakpoint provisioner with note "skipped" disabled; continuing...' in out
    assert "Build 'null.host' finished" in out
    assert "--> null.host:" not in out  # no artifact, as Packer's null builder


@pytest.fixture(scope="module")
def sshd() -> Iterator[tuple[Sshd, str]]:
    with throwaway_user() as (name, _password), running_sshd(name) as server:
        yield server, home_of(name)


def test_null_builder_provisions_an_existing_host_over_ssh(
    sshd: tuple[Sshd, str], here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, home = sshd
    marker = f"{home}/null-{os.getpid()}.txt"
    template = here / "null.json"
    template.write_text(
        json.dumps(
            {
                "builders": [
                    {
                        "type": "null",
                        "ssh_host": "127.0.0.1",
                        "ssh_port": server.port,
                        "ssh_username": server.user,
                        "ssh_private_key_file": str(server.client_key),
                    }
                ],
                "provisioners": [
                    {"type": "shell", "inline": [f"echo from-$PACKER_BUILDER_TYPE > {marker}"]},
                    {"type": "shell", "inline": [f"cat {marker}"], "remote_folder": home},
                ],
            }
        )
    )
    code, out = _build(capsys, template)
    assert code == 0, out
    assert "Connected to SSH!" in out and "from-null" in out
    assert "Build 'null' finished" in out


def test_null_builder_with_ssh_needs_host_and_login(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template = here / "null.json"
    template.write_text(json.dumps({"builders": [{"type": "null", "ssh_username": "u"}]}))
    code, out = _validate(capsys, template)
    assert code == 1
    assert "builders[0].ssh_host" in out and "the null builder needs ssh_host" in out
    assert "ssh_password" in out and "ssh_private_key_file" in out and "Traceback" not in out


def test_validate_refuses_a_guest_provisioner_on_a_build_without_communicator(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = here / "none.json"
    template.write_text(
        json.dumps(
            {
                "builders": [{"type": "null", "communicator": "none"}],
                "provisioners": [
                    {"type": "shell-local", "command": "true"},
                    {"type": "file", "source": "none.json", "destination": "/tmp/x"},
                ],
            }
        )
    )
    code, out = _validate(capsys, template)
    assert code == 1
    assert "none.json" in out and "provisioners[1].type" in out
    assert "the file provisioner needs a guest" in out and 'communicator to "ssh"' in out


# -- breakpoint -----------------------------------------------------------------------------------------
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_breakpoint_waits_for_enter_on_a_terminal() -> None:
    inp = _Terminal("\n")
    ctx, out = _ctx(inp)
    breakpoint(Run(ctx, "breakpoint"), BreakpointConfig(note="look at /etc"))
    text = out.getvalue()
    assert 'Pausing at breakpoint provisioner with note "look at /etc".' in text
    assert "Press enter to continue." in text and inp.tell() == 1  # the line was read


def test_breakpoint_without_a_terminal_fails_as_packer_does() -> None:
    inp = io.StringIO("not for the breakpoint\n")
    ctx, _out = _ctx(inp)
    with pytest.raises(VmbakeError, match="stdin is not a tty") as caught:
        breakpoint(Run(ctx, "breakpoint"), BreakpointConfig())
    assert "disable = true" in str(caught.value.hint) and inp.tell() == 0


# -- shell-local and artifice ---------------------------------------------------------------------------
def test_shell_local_post_processor_passes_the_artifact_on_and_keeps_it(here: Path) -> None:
    ctx, _out = _ctx()
    disk = here / "out" / "disk.qcow2"
    disk.parent.mkdir()
    disk.write_bytes(b"disk")
    vm = Artifact("transcend.qemu", disk.parent, "VM")
    cfg = ShellLocalPostConfig(
        inline=["echo $PACKER_BUILD_NAME/$PACKER_BUILDER_TYPE/$X > env.txt"], environment_vars=["X=1"]
    )
    produced = run_chain(
        ctx, [PostProcessorSpec("shell-local", cfg, False), PostProcessorSpec("manifest", None)], [vm]
    )
    assert produced == [vm] and disk.exists()  # keep_input_artifact=false cannot drop it (Packer forces it)
    assert (here / "env.txt").read_text() == "qemu/qemu/1\n"


def test_chain_compress_shell_local_artifice_with_manifest(here: Path) -> None:
    from vmbake.config.postprocessors import CompressConfig, ManifestConfig

    ctx, _out = _ctx()
    out_dir = here / "output-qemu"
    out_dir.mkdir()
    (out_dir / "disk.qcow2").write_bytes(b"D" * 4096)
    vm = Artifact("transcend.qemu", out_dir, "VM")
    chain = [
        PostProcessorSpec("compress", CompressConfig(output="image.tar.gz")),
        PostProcessorSpec(
            "shell-local", ShellLocalPostConfig(inline=["sha256sum image.tar.gz > image.sha256"])
        ),
        PostProcessorSpec("artifice", ArtificeConfig(files=["image.tar.gz", "image.sha256"]), True),
        PostProcessorSpec("manifest", ManifestConfig(output="manifest.json", strip_path=True)),
    ]
    produced = run_chain(ctx, chain, [vm])
    assert [a.path.name for a in produced] == ["image.tar.gz", "image.sha256"]
    manifest = json.loads((here / "manifest.json").read_text())
    files = manifest["builds"][0]["files"]
    assert [f["name"] for f in files] == ["image.tar.gz", "image.sha256"]
    assert files[0]["size"] == (here / "image.tar.gz").stat().st_size
    digest = (here / "image.sha256").read_text().split()[0]
    assert (
        subprocess.run(["sha256sum", "image.tar.gz"], capture_output=True, text=True).stdout.split()[0]
        == digest
    )
    with tarfile.open(here / "image.tar.gz") as tar:
        assert tar.getnames() == ["output-qemu/disk.qcow2"]


def test_artifice_refuses_a_missing_file(here: Path) -> None:
    ctx, _out = _ctx()
    with pytest.raises(VmbakeError, match=r"artifice: gone\.img does not exist"):
        run_chain(ctx, [PostProcessorSpec("artifice", ArtificeConfig(files=["gone.img"]))], [])


# -- vagrant --------------------------------------------------------------------------------------------
def _box(tar_path: Path) -> dict[str, bytes]:
    with tarfile.open(tar_path) as tar:
        return {m.name: cast(Any, tar.extractfile(m)).read() for m in tar.getmembers() if m.isfile()}


@pytest.mark.host_tools("qemu-img")
def test_vagrant_libvirt_box_members_metadata_and_disk(here: Path) -> None:
    disk = _qcow2(here / "output-qemu" / "disk.qcow2")
    (here / "output-qemu" / "disk.console.log").write_text("boot\n")
    (here / "extra.txt").write_text("included\n")
    (here / "custom.rb").write_text('config.vm.synced_folder ".", "/vagrant", disabled: true\n')
    ctx, _out = _ctx(accelerator="kvm")
    cfg = VagrantConfig(include=["extra.txt"], vagrantfile_template="custom.rb", compression_level=9)
    vm = Artifact("transcend.qemu", disk.parent, "VM")
    produced = run_chain(ctx, [PostProcessorSpec("vagrant", cfg, True)], [vm])
    box = here / "packer_qemu_libvirt.box"
    assert [a.path.resolve() for a in produced] == [box] and disk.exists()
    with open(box, "rb") as f:
        assert f.read(2) == b"\x1f\x8b"  # gzip
    members = _box(box)
    assert sorted(members) == ["Vagrantfile", "box.img", "extra.txt", "metadata.json"]
    assert json.loads(members["metadata.json"]) == {
        "provider": "libvirt",
        "format": "qcow2",
        "virtual_size": 2,
    }
    vagrantfile = members["Vagrantfile"].decode()
    assert 'libvirt.driver = "kvm"' in vagrantfile and "synced_folder" in vagrantfile
    (here / "box.img").write_bytes(members["box.img"])
    same = subprocess.run(["qemu-img", "compare", "-q", str(disk), str(here / "box.img")])
    assert same.returncode == 0


@pytest.mark.host_tools("qemu-img")
def test_vagrant_level_zero_is_a_plain_tar_and_input_is_dropped(here: Path) -> None:
    disk = _qcow2(here / "out" / "disk.qcow2", "1G")
    ctx, _out = _ctx()
    vm = Artifact("transcend.qemu", disk.parent, "VM")
    produced = run_chain(
        ctx,
        [PostProcessorSpec("artifice", ArtificeConfig(files=[str(disk)])),
         PostProcessorSpec("vagrant", VagrantConfig(output="b/{{.BuildName}}-{{.Provider}}.box", compression_level=0, provider_override="libvirt"))],
        [vm],
    )  # fmt: skip
    box = here / "b" / "qemu-libvirt.box"
    assert produced[0].path.resolve() == box
    with open(box, "rb") as f:
        assert f.read(2) != b"\x1f\x8b"
    members = _box(box)
    assert json.loads(members["metadata.json"])["virtual_size"] == 1
    assert 'libvirt.driver = "qemu"' in members["Vagrantfile"].decode()
    assert not disk.exists()  # the libvirt provider does not keep its input (here artifice's file)


def test_vagrant_refuses_an_artifact_that_is_not_a_vm(here: Path) -> None:
    ctx, _out = _ctx()
    (here / "x.tar.gz").write_bytes(b"x")
    archive = Artifact("packer.post-processor.compress", here / "x.tar.gz", "x")
    with pytest.raises(VmbakeError, match="cannot make a box from this artifact"):
        run_chain(ctx, [PostProcessorSpec("vagrant", VagrantConfig())], [archive])


def test_validate_names_other_providers_and_vagrant_cloud(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = here / "box.json"
    template.write_text(
        json.dumps(
            {
                "builders": [{"type": "null", "communicator": "none"}],
                "post-processors": [
                    [{"type": "vagrant", "provider_override": "virtualbox"}],
                    [{"type": "vagrant-cloud", "box_tag": "me/box", "version": "1.0.0"}],
                ],
            }
        )
    )
    code, out = _validate(capsys, template)
    assert code == 1
    assert "post-processors[0][0].provider_override" in out and "libvirt provider only, not virtualbox" in out
    assert "'vagrant-cloud' is not supported" in out and "needs the network" in out
    assert "-except=vagrant-cloud" in out
    template.write_text(
        json.dumps({**json.loads(template.read_text()), "post-processors": [[{"type": "vagrant-cloud"}]]})
    )
    code, out = _validate(capsys, template, "-except=vagrant-cloud")
    assert code == 0, out


# -- communicator none in the VM builders (issue 17 §6) --------------------------------------------------
def test_vm_builders_with_communicator_none_still_run_the_provisioners(tmp_path: Path) -> None:
    from tests.helpers.sshd import make_ctx
    from vmbake.builders import bootstrap, qemu
    from vmbake.config.bootstrap import BootstrapConfig

    ctx, _out, _err = make_ctx(tmp_path / "w", communicator="none")
    names = [s.name for s in qemu.steps(cast(Any, ctx))]
    assert "StepProvision" in names and "StepConnect" not in names
    assert names.index("StepProvision") < names.index("stepShutdown")  # Packer's spelling
    boot = cast(Any, ctx)
    boot.config, boot.builder_type = BootstrapConfig(communicator="none"), "debian-bootstrap"
    names = [s.name for s in bootstrap.steps(boot)]
    assert "StepProvision" in names and "StepConnect" not in names
