"""arm64 guests: the aarch64 machine defaults, the arm64 bootstrap's argv, layout and checks, and how
`vmbake run`/`verify` tell an arm64 disk from its partition table."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmbake import arch, procs
from vmbake.bootstrap.disk import grub_install_argvs
from vmbake.bootstrap.layout import efi_modules, plan_layout
from vmbake.bootstrap.rootfs import customize_script, grub_defaults, mmdebstrap_argv, packages
from vmbake.builders.bootstrap import qemu_view
from vmbake.config.bootstrap import BootstrapConfig, host_problem, validate_bootstrap, with_arch_defaults
from vmbake.config.fields import Decoder
from vmbake.config.qemu import QemuConfig
from vmbake.qemu_argv import RunFacts, qemu_argv
from vmbake.run_image import RunOptions, RunPaths, arch_of, read_head, run_config
from vmbake.state import BuildState
from vmbake.template import load_template

AARCH64 = "qemu-system-aarch64"


def loaded(tmp_path: Path, body: str) -> object:
    path = tmp_path / "t.pkr.hcl"
    path.write_text(body + '\nbuild { sources = ["source.x.y"] }\n'.replace("x.y", _source(body)))
    return load_template(path).builds[0].config


def _source(body: str) -> str:
    kind, name = body.split('"')[1], body.split('"')[3]
    return f"{kind}.{name}"


# -- the qemu builder follows qemu_binary ------------------------------------------------------------------
def test_aarch64_binary_gets_virt_uefi_and_aavmf(tmp_path: Path) -> None:
    config = loaded(
        tmp_path,
        f'source "qemu" "a" {{\n qemu_binary = "{AARCH64}"\n iso_url = "x.img"\n iso_checksum = "none"\n ssh_username = "root"\n}}',
    )
    assert isinstance(config, QemuConfig)
    assert (config.machine_type, config.efi_boot) == ("virt", True)
    assert (config.efi_firmware_code, config.efi_firmware_vars) == (arch.AAVMF_CODE, arch.AAVMF_VARS)


def test_keys_the_template_gives_are_kept(tmp_path: Path) -> None:
    body = (
        f'source "qemu" "a" {{\n qemu_binary = "/opt/q/{AARCH64}"\n machine_type = "virt,gic-version=3"\n'
        ' efi_firmware_code = "/f/CODE.fd"\n qemuargs = [["-bios", "/f/QEMU_EFI.fd"]]\n iso_url = "x.img"\n iso_checksum = "none"\n ssh_username = "root"\n}'
    )
    config = loaded(tmp_path, body)
    assert isinstance(config, QemuConfig)
    assert config.machine_type == "virt,gic-version=3"
    assert config.efi_firmware_code == "/f/CODE.fd"
    assert config.efi_firmware_vars == arch.AAVMF_VARS
    assert config.efi_boot is False  # qemuargs give the firmware


def test_x86_configs_are_unchanged() -> None:
    config = QemuConfig(iso_url="x.iso")
    assert arch.machine_defaults(config, set()) is not None
    assert arch.machine_defaults(config, set()) == config


def test_cpu_max_under_tcg_host_under_kvm_and_the_templates_own() -> None:
    config = arch.machine_defaults(QemuConfig(qemu_binary=AARCH64, disk_image=True), set())
    st = BuildState(disk_paths=[Path("d.qcow2")], efivars_path=Path("v.fd"))

    def cpu(c: QemuConfig, accel: str) -> str:
        argv = qemu_argv(c, st, RunFacts(vm_name="vm", accelerator=accel))
        return argv[argv.index("-cpu") + 1]

    assert cpu(config, "tcg") == "max,pauth-impdef=on"
    assert cpu(config, "kvm") == "host"
    assert cpu(QemuConfig(**{**config.__dict__, "cpu_model": "cortex-a72"}), "tcg") == "cortex-a72"
    argv = qemu_argv(config, st, RunFacts(vm_name="vm", accelerator="tcg"))
    assert argv[:3] == [AARCH64, "-name", "vm"]
    assert argv[argv.index("-machine") + 1] == "type=virt,accel=tcg"
    assert f"file={arch.AAVMF_CODE},if=pflash,unit=0,format=raw,readonly=on" in argv
    assert "-boot" not in argv
    x86 = qemu_argv(QemuConfig(disk_image=True), st, RunFacts(vm_name="vm", accelerator="tcg"))
    assert "-cpu" not in x86


def test_a_foreign_binary_is_emulated() -> None:
    assert arch.emulated(AARCH64) == (arch.host_arch() != "arm64")
    assert not arch.emulated("qemu-system-riscv64")  # no defaults known: left to the probe


# -- debian-bootstrap with architecture = "arm64" ----------------------------------------------------------
def arm64_config(tmp_path: Path, extra: str = "") -> BootstrapConfig:
    config = loaded(tmp_path, f'source "debian-bootstrap" "b" {{\n architecture = "arm64"\n{extra}}}')
    assert isinstance(config, BootstrapConfig)
    return config


def test_arm64_bootstrap_defaults(tmp_path: Path) -> None:
    config = arm64_config(tmp_path)
    assert (config.qemu_binary, config.machine_type, config.kernel, config.firmware) == (
        AARCH64, "virt", "linux-image-arm64", "efi",
    )  # fmt: skip
    assert config.kernel_cmdline == "console=ttyAMA0,115200"
    view = qemu_view(config)
    assert (view.qemu_binary, view.machine_type, view.efi_boot) == (AARCH64, "virt", True)
    assert view.efi_firmware_code == arch.AAVMF_CODE


def test_arm64_mmdebstrap_argv_packages_and_grub(tmp_path: Path) -> None:
    config = arm64_config(tmp_path, ' kernel = "linux-image-cloud-arm64"\n')
    argv = mmdebstrap_argv(config, Path("/w/rootfs.tar"), Path("/w/c.sh"), None)
    assert argv[:4] == ["mmdebstrap", "--variant=apt", "--components=main", "--architectures=arm64"]
    assert packages(config)[0] == "linux-image-cloud-arm64"
    assert "grub-efi-arm64" in packages(config) and "grub-pc" not in packages(config)
    script = customize_script(config, ["ssh-ed25519 AAAA k"])
    assert "grub-efi-arm64 grub2/force_efi_extra_removable boolean true" in script
    assert "grub-efi-amd64" not in script
    defaults = grub_defaults(config)
    assert 'GRUB_TERMINAL="console"' in defaults and "serial" not in defaults
    assert grub_install_argvs(config.firmware, "/dev/loop0") == []
    assert "efi_uga" not in efi_modules("arm64") and "efi_uga" in efi_modules("amd64")
    root = next(p for p in plan_layout(config) if p.mountpoint == "/")
    assert root.type_guid == arch.ARM64.root_type
    amd = next(p for p in plan_layout(BootstrapConfig()) if p.mountpoint == "/")
    assert amd.type_guid == arch.AMD64.root_type


def _problems(block: dict[str, object]) -> list[str]:
    decoder = Decoder("t.json")
    config = with_arch_defaults(decoder.decode(BootstrapConfig, block, "b"), set(block))
    validate_bootstrap(config, decoder, "b")
    return [p.render() for p in decoder.problems]


def test_arm64_refuses_an_amd64_kernel_and_bios(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arch, "host_problems", lambda _a: [])
    text = "\n".join(_problems({"architecture": "arm64", "kernel": "linux-image-amd64", "firmware": "bios"}))
    assert "b.kernel: kernel 'linux-image-amd64' is not an arm64 kernel" in text
    assert "b.firmware: an arm64 image cannot boot with firmware 'bios'" in text
    assert _problems({"architecture": "arm64"}) == []
    assert "not an amd64 kernel" in "\n".join(_problems({"kernel": "linux-image-arm64"}))


def test_a_build_names_the_missing_host_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """validate accepts an arm64 build on a host without the emulators (a template may hold builds this
    host never runs); the build refuses to start, naming the packages."""
    # A fake host: an empty binfmt_misc directory and a PATH without the emulators (this host has them).
    monkeypatch.setattr(arch, "BINFMT_DIR", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(arch, "host_arch", lambda: "amd64")
    assert _problems({"architecture": "arm64"}) == []
    config = with_arch_defaults(Decoder("t.json").decode(BootstrapConfig, {"architecture": "arm64"}, "b"),
                                {"architecture"})  # fmt: skip
    lacking = host_problem(config)
    assert lacking is not None
    message, hint = lacking
    assert message.startswith("building arm64 images here needs")
    for package in ("qemu-system-arm", "qemu-user-static", "binfmt-support"):
        assert f"Debian package {package}" in message
    assert hint.startswith("apt-get install qemu-system-arm")
    assert host_problem(BootstrapConfig()) is None  # amd64 needs nothing beyond vmbake's base packages


# -- run and verify tell arm64 disks apart -----------------------------------------------------------------
def test_arch_of_a_real_partition_table(tmp_path: Path) -> None:
    image = tmp_path / "disk.raw"
    procs.run(["qemu-img", "create", "-f", "raw", str(image), "64M"])
    esp = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    table = f"label: gpt\nsize=16MiB, type={esp}\ntype={arch.ARM64.root_type}\n"
    procs.run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(image)], input=table)
    assert arch_of(read_head(image, "raw")) == "arm64"
    procs.run(["sfdisk", "--part-type", str(image), "2", arch.AMD64.root_type], check=True)
    assert arch_of(read_head(image, "raw")) == "amd64"


def test_run_config_for_arm64(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "d.qcow2", tmp_path / "q.sock", tmp_path / "c.log", None, tmp_path / "v.fd")
    config = run_config(RunOptions(tmp_path / "d.qcow2"), "qcow2", "uefi", paths, "arm64")
    assert (config.qemu_binary, config.machine_type, config.efi_boot) == (AARCH64, "virt", True)
    assert config.efi_firmware_vars == arch.AAVMF_VARS
    amd = run_config(RunOptions(tmp_path / "d.qcow2"), "qcow2", "bios", paths)
    assert (amd.qemu_binary, amd.machine_type) == ("qemu-system-x86_64", "pc")


def test_verify_boots_an_arm64_disk_on_the_aarch64_machine(tmp_path: Path) -> None:
    from vmbake.verify import _parse

    image = tmp_path / "disk.raw"
    procs.run(["qemu-img", "create", "-f", "raw", str(image), "64M"])
    table = (
        f"label: gpt\nsize=16MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\ntype={arch.ARM64.root_type}\n"
    )
    procs.run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(image)], input=table)
    _, config = _parse([str(image)])
    assert (config.qemu_binary, config.machine_type, config.efi_boot) == (AARCH64, "virt", True)
    assert (config.firmware, config.efi_firmware_code) == ("", arch.AAVMF_CODE)
