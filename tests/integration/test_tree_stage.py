"""provision_stage "tree" against "vm", end to end under TCG: the same image either way.

One template (trixie, cloud kernel, the shipped provision.sh and its clean_shutdown) is built twice
through the CLI, sharing a .deb cache: provisioned in the booted guest ("vm"), then in a chroot of the
image before its first boot ("tree", with verify on). The reports' package lists must be equal, and the
tree build's artifact must boot alone and pass verify. To keep the guest build affordable, provision.sh
runs the sections that change the package set (apt_update, clean_packages, clean_libraries,
apt_dist_upgrade, clean_apt) plus preconfig_fstab and preconfig_hosts; the slow initramfs and grub
sections, which install nothing, are left to the main job (bench/mainjob.py builds it whole).
Needs root and Debian's archive (deb.debian.org).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.bootstrap_disk import make_key
from vmbake import procs

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.timeout(2700)]

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "templates" / "trixie" / "provision.sh"
SECTIONS = ("apt_update", "clean_packages", "clean_libraries", "preconfig_fstab", "preconfig_hosts",
            "apt_dist_upgrade", "clean_apt")  # fmt: skip


@dataclass(frozen=True)
class Built:
    output: str
    image: Path
    report: dict[str, object]


def template(stage: str, public_key: str) -> dict[str, object]:
    sections = " ".join(f"--section {s}" for s in SECTIONS)
    return {
        "builders": [
            {
                "type": "debian-bootstrap",
                "name": "bootstrap",
                "suite": "trixie",
                "kernel": "linux-image-cloud-amd64",
                "provision_stage": stage,
                "partitions": [
                    {"mountpoint": "/", "size": "1800M", "fs": "ext4"},
                    {"mountpoint": "swap", "fs": "swap"},
                ],
                "disk_size": "2G",
                "root_ssh_keys": [public_key],
                "accelerator": "tcg",
                "ssh_timeout": "30m",
                "disk_compression": True,
                "output_directory": "output",
                "vm_name": "image.qcow2",
                "shutdown_command": "/tmp/provision.sh --batch --section clean_shutdown",
                "shutdown_timeout": "15m",
                "verify": stage == "tree",
            }
        ],
        "provisioners": [
            {"type": "file", "source": str(SCRIPT), "destination": "/tmp/"},
            {
                "type": "shell",
                "inline": ["chmod 0755 /tmp/provision.sh", f"/tmp/provision.sh --batch {sections}"],
            },
        ],
    }


def build(directory: Path, stage: str, public_key: str, cache: Path) -> Built:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "template.json"
    path.write_text(json.dumps(template(stage, public_key), indent=2))
    result = procs.run(
        [sys.executable, "-m", "vmbake", "build", "-color=false", str(path)],
        cwd=directory, check=False, timeout=2400, env={"VMBAKE_CACHE_DIR": str(cache)},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    image = directory / "output" / "image.qcow2"
    report = json.loads((directory / "output" / "image.qcow2.report.json").read_text())
    return Built(output, image, report)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Built]]:
    if os.geteuid() != 0:
        pytest.skip("the debian-bootstrap builder needs root")
    base = tmp_path_factory.mktemp("tree-stage")
    _, public = make_key(base)
    cache = base / "cache"
    yield {stage: build(base / stage, stage, public, cache) for stage in ("vm", "tree")}


def package_list(built: Built) -> list[tuple[str, str]]:
    facts = built.report.get("facts") or built.report
    assert isinstance(facts, dict)
    packages = facts["packages"]
    assert isinstance(packages, list) and packages
    return sorted((str(p["name"]), str(p["version"])) for p in packages)


def test_tree_and_vm_builds_install_the_same_packages(builds: dict[str, Built]) -> None:
    vm, tree = package_list(builds["vm"]), package_list(builds["tree"])
    only_vm = sorted(set(vm) - set(tree))
    only_tree = sorted(set(tree) - set(vm))
    assert (only_vm, only_tree) == ([], []), "the package lists differ"
    assert len(tree) > 100


def test_tree_build_provisions_in_the_chroot_and_boots_once_for_the_report(builds: dict[str, Built]) -> None:
    out = builds["tree"].output
    assert "Provisioning the image tree in a chroot, before its first boot..." in out
    assert "BEGIN{clean_libraries}" in out and "END{apt_dist_upgrade}" in out
    assert "image tree: nothing to power off" in out
    assert "kept '/etc/fstab': the builder wrote it from its layout" in out
    # apt_update revalidated the lists mmdebstrap kept, and clean_apt removed them: nothing for the builder.
    assert "Removed the package lists that no provisioner used" not in out
    # The first boot's one-off work is done in the tree: the check boot skips it.
    assert "Doing the first boot's one-off work in the tree" in out
    console = builds["tree"].image.with_name("image.qcow2.console.log").read_text(errors="replace")
    console = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", console)  # systemd's status lines are coloured
    for unit in ("ldconfig.service", "systemd-journal-catalog-update.service", "systemd-update-done.service"):
        assert f"Starting {unit}" not in console, unit
    assert "Stopping the check VM" in out
    # The report's file facts come from the tree (devices named as the guest sees them), the running
    # system's from the check boot.
    assert "Collecting facts for the image report from the image tree..." in out
    report = builds["tree"].report
    assert report["kernel"] and report["system_state"] in ("running", "degraded")
    filesystems = report["filesystems"]
    assert isinstance(filesystems, list)
    sources = {str(fs["source"]) for fs in filesystems}
    assert sources and all(source.startswith("/dev/vda") for source in sources), sources
    assert "Gracefully halting" not in out  # no guest shutdown: the check boot ran on a snapshot
    assert out.count("Starting VM") == 1


def test_tree_image_boots_alone_and_verify_passes(builds: dict[str, Built]) -> None:
    out = builds["tree"].output
    assert "Verify PASS" in out, out[-3000:]
    info = json.loads(procs.run(["qemu-img", "info", "--output=json", str(builds["tree"].image)]).stdout)
    assert info["format"] == "qcow2"
