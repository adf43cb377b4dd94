"""The shipped Debian templates: they validate for both builds and say what the issue asks of them.

Validation downloads nothing, so the ISO URLs (on Debian's CD server, unreachable from CI) are checked for
shape only. The installer and bootstrap builds themselves run in tests/integration.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from vmbake import cli
from vmbake.config.bootstrap import BootstrapConfig
from vmbake.config.qemu import QemuConfig
from vmbake.template import load_template

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "templates"
RELEASES = ("buster", "bullseye", "bookworm", "trixie", "forky")
BUILDS = ("installer", "bootstrap")
SEED_BOOT_COMMAND = (
    "<esc><wait5>expert<spacebar>ipv6.disable=1<spacebar>net.ifnames=0<spacebar>auto=true<spacebar>"
    "priority=critical<spacebar>url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/virtual-host.cfg<wait5><enter>"
)
SHUTDOWN = "/tmp/provision.sh --batch --section clean_shutdown"
PROVISION = "/tmp/provision.sh --batch --section default --section zero_freespace"


def template_file(release: str) -> Path:
    return TEMPLATES / release / ("packer.json" if release == "buster" else "build.pkr.hcl")


@pytest.mark.parametrize("release", RELEASES)
def test_layout(release: str) -> None:
    directory = TEMPLATES / release
    for name in ("htdocs/baseline.cfg", "htdocs/virtual-host.cfg", "provision.sh", "README.md"):
        assert (directory / name).is_file(), f"{directory / name} is missing"
    assert template_file(release).is_file()
    other = directory / ("build.pkr.hcl" if release == "buster" else "packer.json")
    assert not other.exists(), (
        f"{release} must ship one template, not both {template_file(release).name} and {other.name}"
    )


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("release", RELEASES)
def test_vmbake_validate_passes(release: str, build: str, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["validate", f"-only={build}", str(TEMPLATES / release)])
    out, err = capsys.readouterr()
    assert status == 0, out + err
    # Packer's wording: one sentence for JSON templates, another for HCL2.
    assert "Template validated successfully." in out or "The configuration is valid." in out


def test_vmbake_validate_command_line_from_the_release_directory() -> None:
    """As a user runs it: `cd templates/bookworm && vmbake validate .` in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-m", "vmbake", "validate", "-only=installer", "."],
        capture_output=True, text=True, timeout=60, cwd=TEMPLATES / "bookworm", check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("release", RELEASES)
def test_installer_build(release: str) -> None:
    template = load_template(TEMPLATES / release, only=["installer"])
    (build,) = template.builds
    config = build.config
    assert isinstance(config, QemuConfig)
    assert config.boot_command == [SEED_BOOT_COMMAND]
    assert config.shutdown_command == SHUTDOWN
    assert (config.memory, config.disk_size, config.format, config.disk_compression) == (
        1024,
        5120 << 20,
        "qcow2",
        True,
    )
    assert config.headless and config.accelerator == ""
    assert config.ssh_username == "root" and not config.ssh_private_key_file and not config.ssh_password
    assert Path(config.http_directory) == TEMPLATES / release / "htdocs"
    assert config.http_content == {
        "/login.cfg": "{{ .LoginPreseed }}",
        "/proxy.cfg": "d-i mirror/http/proxy string {{ .AptProxy }}\n",
    }
    # The checksum comes from the SHA256SUMS beside the ISO, so a point release needs one edit, not two.
    iso = re.fullmatch(
        r"(https://cdimage\.debian\.org/.+)/debian-([0-9.]+|testing)-amd64-netinst\.iso", config.iso_url
    )
    assert iso, config.iso_url
    assert config.iso_checksum == f"file:{iso.group(1)}/SHA256SUMS"
    if release == "forky":  # testing: no point release yet; the ISO follows d-i's daily images
        assert iso.group(2) == "testing" and "/daily-builds/" in iso.group(1)
        assert "daily images" in template_file(release).read_text()
        assert "follows d-i's daily images" in (TEMPLATES / release / "README.md").read_text()
        return
    major = {"buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13"}[release]
    assert iso.group(2).startswith(major + ".")


def bootstrap_kernel(release: str, vars: dict[str, str]) -> str:
    (build,) = load_template(TEMPLATES / release, vars, only=["bootstrap"]).builds
    assert isinstance(build.config, BootstrapConfig)
    return build.config.kernel


@pytest.mark.parametrize("release", RELEASES)
def test_the_kernel_variable_picks_the_bootstrap_kernel(release: str) -> None:
    """The cloud kernel by default (as Debian's cloud images and debvm); -var kernel=... for any hardware.
    The installer build keeps d-i's generic kernel from its preseed."""
    assert bootstrap_kernel(release, {}) == "linux-image-cloud-amd64"
    assert bootstrap_kernel(release, {"kernel": "linux-image-amd64"}) == "linux-image-amd64"
    baseline = (TEMPLATES / release / "htdocs" / "baseline.cfg").read_text()
    assert "d-i base-installer/kernel/image string linux-image-amd64" in baseline


@pytest.mark.parametrize("release", ["bookworm", "trixie"])
def test_vmware_formats_get_the_generic_kernel(release: str) -> None:
    """The cloud kernel has no driver for the LSI Logic controller and E1000 card an OVA describes."""
    assert bootstrap_kernel(release, {"formats": '["qcow2", "ova"]'}) == "linux-image-amd64"
    assert bootstrap_kernel(release, {"formats": '["vmdk"]'}) == "linux-image-amd64"
    assert bootstrap_kernel(release, {"formats": '["vhdx", "raw"]'}) == "linux-image-cloud-amd64"
    given = {"formats": '["ova"]', "kernel": "linux-image-cloud-amd64"}
    assert bootstrap_kernel(release, given) == "linux-image-cloud-amd64"  # the user's choice stands


@pytest.mark.parametrize("release", RELEASES)
def test_bootstrap_build(release: str) -> None:
    template = load_template(TEMPLATES / release, only=["bootstrap"])
    (build,) = template.builds
    config = build.config
    assert isinstance(config, BootstrapConfig)
    assert (config.suite, config.kernel) == (release, "linux-image-cloud-amd64")
    assert config.shutdown_command == SHUTDOWN
    assert (config.disk_size, config.format, config.disk_compression) == (5120 << 20, "qcow2", True)
    layout = [(p.mountpoint, p.size, p.fs) for p in config.partitions]
    assert layout == [
        ("/boot", 512 << 20, "ext4"), ("/", 2 << 30, "ext4"), ("/var", 1 << 30, "ext4"), ("/tmp", 512 << 20, "ext4"),
        ("swap", None, "swap"),
    ]  # fmt: skip


@pytest.mark.parametrize("release", RELEASES)
def test_apt_proxy_variable_feeds_both_builds(release: str) -> None:
    for build in BUILDS:
        (default,) = load_template(TEMPLATES / release, only=[build]).builds
        assert default.config.apt_proxy == "", build  # empty: the environment's APT_PROXY/http_proxy, or none
        (spec,) = load_template(TEMPLATES / release, {"apt_proxy": "http://cache:3142"}, only=[build]).builds
        assert spec.config.apt_proxy == "http://cache:3142", build
    # The baseline leaves the proxy to proxy.cfg, and the image does not keep what the installer wrote.
    assert "d-i mirror/http/proxy" not in answers(preseed(release, "baseline.cfg"))
    clean_apt = (TEMPLATES / release / "provision.sh").read_text().split("section_clean_apt() {", 1)[1]
    assert "sed -i '/^Acquire::http::Proxy /d' /etc/apt/apt.conf" in clean_apt.split("\n}", 1)[0]


@pytest.mark.parametrize("release", RELEASES)
def test_both_builds_share_the_provisioners(release: str) -> None:
    for build in BUILDS:
        template = load_template(TEMPLATES / release, only=[build])
        (spec,) = template.builds
        steps = [(p.type, p.config) for p in spec.provisioners]
        assert [kind for kind, _ in steps] == ["file", "shell"], build
        upload, shell = steps[0][1], steps[1][1]
        assert Path(upload.source) == TEMPLATES / release / "provision.sh"
        assert upload.destination == "/tmp/"
        assert shell.inline[-1] == PROVISION


def preseed(release: str, name: str) -> str:
    return (TEMPLATES / release / "htdocs" / name).read_text()


def answers(text: str) -> dict[str, str]:
    """'owner question' -> value, with continuation lines joined as debconf-set-selections does."""
    joined = re.sub(r"\\\n\s*", " ", text)
    found: dict[str, str] = {}
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            owner, question, _kind, *value = line.split(None, 3)
            found[f"{owner} {question}"] = value[0] if value else ""
    return found


@pytest.mark.parametrize("release", RELEASES)
def test_baseline_preseed(release: str) -> None:
    got = answers(preseed(release, "baseline.cfg"))
    assert got["d-i mirror/suite"] == release
    assert got["d-i mirror/http/hostname"] == (
        "archive.debian.org" if release == "buster" else "deb.debian.org"
    )
    assert got["d-i debian-installer/locale"] == "en_US.UTF-8"
    assert got["d-i keyboard-configuration/xkb-keymap"] == "us"
    assert got["d-i time/zone"] == "Etc/UTC"
    assert got["d-i passwd/root-login"] == "true"
    assert got["d-i passwd/make-user"] == "false"
    assert got["d-i base-installer/install-recommends"] == "false"
    assert got["tasksel tasksel/first"] == "ssh-server"
    assert got["d-i grub-installer/bootdev"] == "default"
    assert ("usrmerge" in got["d-i pkgsel/include"].split()) == (release == "buster")


@pytest.mark.parametrize("release", RELEASES)
def test_virtual_host_preseed(release: str) -> None:
    text = preseed(release, "virtual-host.cfg")
    got = answers(text)
    assert got["d-i preseed/include"] == "baseline.cfg proxy.cfg login.cfg"
    assert got["d-i partman-auto/method"] == "lvm"
    assert got["d-i partman-auto-lvm/new_vg_name"] == "vg.local"
    assert "net.ifnames=0" in got["d-i debian-installer/add-kernel-opts"].split()
    recipe = [part.split() for part in got["d-i partman-auto/expert_recipe"].split(" . ")]
    boot = recipe[0]  # "vmbake :: 512 512 512 ext4 ... mountpoint{ /boot }"
    start = boot.index("::") + 1
    assert boot[start : start + 4] == ["512", "512", "512", "ext4"]
    assert "$primary{" in boot and "/boot" in boot
    volumes = {
        re.search(r"lv_name\{ (\S+) \}", " ".join(p)).group(1): p[:4]  # type: ignore[union-attr]
        for p in recipe
        if "lv_name{" in " ".join(p)
    }
    assert volumes["lv.root"] == ["2048", "2048", "2048", "ext4"]
    assert volumes["lv.var"] == ["1024", "1024", "1024", "ext4"]
    assert volumes["lv.tmp"] == ["512", "512", "512", "ext4"]
    assert volumes["lv.swap"][2:] == ["-1", "linux-swap"]  # takes the rest
    # login.cfg (vmbake's) owns the late_command that installs the keys.
    assert "d-i preseed/late_command" not in got


def test_no_private_key_is_shipped() -> None:
    for path in TEMPLATES.rglob("*"):
        if path.is_file():
            assert "PRIVATE KEY" not in path.read_text(errors="replace"), path


@pytest.mark.parametrize("release", ("bookworm", "trixie"))
def test_installer_netboot_build(release: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The installer build that needs no CD server: netboot from the archive, the same preseed, the
    console on the serial port (so validate has no warning about it)."""
    template = load_template(TEMPLATES / release, only=["installer-netboot"])
    (build,) = template.builds
    config = build.config
    assert isinstance(config, QemuConfig)
    assert (config.iso_source, config.suite, config.boot_command) == ("debian-netboot", release, [])
    args = config.kernel_args.split()
    assert "console=ttyS0" in args and "auto=true" in args and "priority=critical" in args
    assert config.kernel_args.endswith(" url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/virtual-host.cfg")
    assert config.http_directory.endswith(f"{release}/htdocs")
    assert config.output_directory == "output-installer-netboot"
    assert cli.main(["validate", "-only=installer-netboot", str(TEMPLATES / release)]) == 0
    out, err = capsys.readouterr()
    assert "Warning" not in out + err, out + err


def test_hcl_templates_are_formatted(capsys: pytest.CaptureFixture[str]) -> None:
    """`vmbake fmt -check` finds nothing to change in the shipped HCL2 templates (status 3 and the file
    names when it does), so a user's `fmt` of a copy changes only what they changed."""
    status = cli.main(["fmt", "-check", "-recursive", str(TEMPLATES)])
    assert status == 0, capsys.readouterr().out
