"""The image report, the size budget and `vmbake verify`, on a real bookworm guest under TCG.

One module-scoped build boots the session's bootstrapped disk (tests/conftest.py) as a disk_image, runs
a provisioner that prints df's figures, collects the report, compacts, and verifies the artifact
(`verify: true`, which passes). The tests read that build's output and files. The fstab test adds a line
naming a missing UUID to /etc/fstab in a copy of the disk with debugfs (no boot) and runs `vmbake verify`
on it, which fails.
Boots in all: the build, its verify step, the verify command on the artifact and on the bad copy.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers.bootstrap_disk import BootstrappedDisk
from tests.helpers.report import (
    chromium,
    chromium_dump_dom,
    chromium_screenshot,
    edit_file_in_image,
    png_colour_count,
)

# TCG guests on a busy 2-core host can take minutes to boot; the module's build boots twice.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(3000)]

DF_TOTAL = (
    "df -B1 --local --output=used -x tmpfs -x devtmpfs -x efivarfs | tail -n +2 | "
    "awk '{s += $1} END {print \"DFUSED=\" s}'"
)
MISSING_UUID = "0badc0de-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Baked:
    returncode: int
    output: str
    artifact: Path
    report_json: Path
    report_html: Path
    key: Path
    work: Path


def vmbake(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmbake", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip


def qemu_left(marker: Path) -> str:
    return subprocess.run(["pgrep", "-af", f"qemu-system.*{marker}"], capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def baked(bootstrapped_disk: BootstrappedDisk, tmp_path_factory: pytest.TempPathFactory) -> Baked:
    """One build of the bootstrapped disk with the report on and `verify: true`."""
    work = tmp_path_factory.mktemp("report-build")
    out = work / "output"
    template = {
        "builders": [
            {
                "type": "qemu",
                "iso_url": str(bootstrapped_disk.image),
                "iso_checksum": "none",
                "disk_image": True,
                "skip_resize_disk": True,
                "format": "qcow2",
                "disk_compression": True,
                "accelerator": "tcg",
                "headless": True,
                "memory": 1024,
                "cpus": 1,
                "communicator": "ssh",
                "ssh_username": "root",
                "ssh_private_key_file": str(bootstrapped_disk.private_key),
                "ssh_timeout": "15m",
                "shutdown_command": "systemctl poweroff",
                "output_directory": str(out),
                "vm_name": "report.qcow2",
                "verify": True,
            }
        ],
        "provisioners": [{"type": "shell", "inline": [DF_TOTAL]}],
    }
    path = work / "template.json"
    path.write_text(json.dumps(template, indent=2))
    result = vmbake("build", "-color=false", str(path))
    assert not qemu_left(work), "the build left a QEMU running"
    return Baked(
        result.returncode,
        result.stdout + result.stderr,
        out / "report.qcow2",
        out / "report.qcow2.report.json",
        out / "report.qcow2.report.html",
        bootstrapped_disk.private_key,
        work,
    )


def test_build_writes_the_report_and_verifies_the_image(baked: Baked) -> None:
    assert baked.returncode == 0, baked.output[-4000:]
    text = baked.output
    assert "==> qemu: Collecting facts for the image report..." in text
    assert re.search(
        r"Artifact: [\d.]+ MiB \(qcow2\), virtual size 2\.0 GiB, compression ratio [\d.]+:1", text
    )
    assert "The 10 biggest packages:" in text
    assert "Verify PASS: all checks passed" in text
    # The summary comes after the conversion, the verification last.
    assert text.index("Converting hard drive...") < text.index("Image report:") < text.index("Verify PASS")


def test_report_lists_openssh_server_and_its_total_matches_df(baked: Baked) -> None:
    data = json.loads(baked.report_json.read_text())
    names = {p["name"] for p in data["packages"]}
    assert "openssh-server" in names and "systemd" in names
    df_used = int(re.search(r"DFUSED=(\d+)", baked.output).group(1))  # type: ignore[union-attr]
    assert abs(data["used_bytes"] - df_used) <= 0.05 * df_used, (data["used_bytes"], df_used)
    assert data["kernel"].endswith("-cloud-amd64")
    assert data["system_state"] in ("running", "degraded")
    assert data["artifact"]["file_bytes"] == baked.artifact.stat().st_size
    assert data["artifact"]["virtual_bytes"] == 2 << 30


def test_report_page_renders_in_chromium(baked: Baked, tmp_path: Path) -> None:
    if chromium() is None:
        pytest.fail("chromium is not installed: apt-get install chromium (see .ci/install)")
    data = json.loads(baked.report_json.read_text())
    biggest = data["packages"][0]["name"]
    dom = chromium_dump_dom(baked.report_html)
    assert "<svg" in dom and f">{biggest}<" in dom
    assert "Size by package" in dom and "openssh-server" in dom
    png = chromium_screenshot(baked.report_html, tmp_path / "report.png")
    # The package bars (#3b78b5) and the directory bars (#5a9e5a) are on the screen.
    assert png_colour_count(png, (0x3B, 0x78, 0xB5)) > 2000
    assert png_colour_count(png, (0x5A, 0x9E, 0x5A)) > 1000


def test_verify_command_passes_on_the_built_image(baked: Baked) -> None:
    before = baked.artifact.stat().st_mtime_ns
    result = vmbake("verify", "-ssh-key", str(baked.key), "-timeout", "15m", str(baked.artifact))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"PASS: {baked.artifact}: all checks passed" in result.stdout
    assert "ok    the root filesystem is mounted read-write" in result.stdout
    assert baked.artifact.stat().st_mtime_ns == before  # -snapshot: the image is not changed
    assert not qemu_left(baked.artifact.parent)


def test_verify_fails_when_fstab_names_a_missing_uuid(
    bootstrapped_disk: BootstrappedDisk, tmp_path: Path
) -> None:
    # A second filesystem that is not there (nofail: the boot goes on, as it would for a data disk).
    bad = edit_file_in_image(
        bootstrapped_disk.image,
        tmp_path / "bad.qcow2",
        "/etc/fstab",
        lambda text: text + f"UUID={MISSING_UUID}\t/srv/data\text4\tdefaults,nofail\t0\t2\n",
        tmp_path,
    )
    result = vmbake("verify", "-ssh-key", str(bootstrapped_disk.private_key), "-timeout", "15m", str(bad))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"FAIL: {bad}: fstab: /etc/fstab line" in result.stdout
    assert f"UUID={MISSING_UUID} (/srv/data) matches no partition on the disk" in result.stdout
    assert "ok    systemctl is-system-running" in result.stdout  # the boot itself was fine
    assert "The last lines of the guest's console:" in result.stdout
    assert not qemu_left(tmp_path)
