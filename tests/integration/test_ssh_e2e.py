"""End to end under TCG: a disk_image build that connects over SSH, provisions, downloads, halts, compacts.

The guest is the session's bootstrapped bookworm disk (it boots by itself and lets root in with a key).
The build runs the real `vmbake build` command; the test reads its output line by line as it arrives.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.bootstrap_disk import BootstrappedDisk
from vmbake import procs

PROVISION_SH = """#!/bin/sh
set -e
echo "BEGIN{hello}"
echo "greeting=$GREETING user=$(id -un) build=$PACKER_BUILD_NAME"
sleep 2
echo "END{hello}"
echo "BEGIN{artifact}"
grep VERSION_CODENAME /etc/os-release > /tmp/e2e-result.txt
echo "END{artifact}"
"""


def template(disk: BootstrappedDisk, work: Path) -> dict[str, object]:
    return {
        "builders": [
            {
                "type": "qemu",
                "iso_url": str(disk.image),
                "iso_checksum": "none",
                "disk_image": True,
                "skip_resize_disk": True,
                "accelerator": "tcg",
                "headless": True,
                "memory": 512,
                "boot_wait": "0s",
                "output_directory": str(work / "output"),
                "vm_name": "e2e.qcow2",
                "communicator": "ssh",
                "ssh_username": "root",
                "ssh_private_key_file": str(disk.private_key),
                "ssh_timeout": "20m",  # TCG on a busy 2-core host can take many minutes to boot
                "shutdown_command": "echo 'BEGIN{clean_shutdown}'; shutdown --poweroff now; echo 'END{clean_shutdown}'",
                "shutdown_timeout": "2m",
            }
        ],
        "provisioners": [
            {"type": "file", "source": str(work / "provision.sh"), "destination": "/tmp/"},
            {
                "type": "shell",
                "inline": ["chmod +x /tmp/provision.sh", "/tmp/provision.sh"],
                "environment_vars": ["GREETING=hi 'there'"],
            },
            {
                "type": "file",
                "direction": "download",
                "source": "/tmp/e2e-result.txt",
                "destination": str(work / "downloaded") + "/",
            },
        ],
    }


def qemu_of(directory: Path) -> list[int]:
    """QEMU processes whose command line names a file under `directory` (this test's VM only)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and "qemu-system" in argv and str(directory) in argv:
            found.append(int(proc.name))
    return found


def build(spec: dict[str, object], work: Path) -> tuple[int, list[tuple[float, str]]]:
    """Run `vmbake build` on `spec` as a user would; its exit status and each output line with its time."""
    path = work / "e2e.json"
    path.write_text(json.dumps(spec, indent=2))
    lines: list[tuple[float, str]] = []
    env = {"VMBAKE_CACHE_DIR": str(work / "cache"), "PACKER_CACHE_DIR": str(work / "cache")}
    result = procs.run(
        [sys.executable, "-m", "vmbake", "build", "-color=false", str(path)],
        check=False,
        on_line=lambda line: lines.append((time.monotonic(), line)),
        env={**os.environ, **env},
        cwd=work,
        timeout=900,
    )
    return result.returncode, lines


@pytest.mark.integration
@pytest.mark.timeout(2700)
def test_build_provisions_over_ssh_and_halts(bootstrapped_disk: BootstrappedDisk, tmp_path: Path) -> None:
    (tmp_path / "provision.sh").write_text(PROVISION_SH)
    code, lines = build(template(bootstrapped_disk, tmp_path), tmp_path)
    text = "\n".join(line for _t, line in lines)
    assert not qemu_of(tmp_path), "QEMU was left running"
    assert code == 0, text
    seen = {line: t for t, line in lines}
    for expected in (
        "==> qemu: Using ssh communicator to connect: 127.0.0.1",
        "==> qemu: Waiting for SSH to become available...",
        "==> qemu: Connected to SSH!",
        f"==> qemu: Uploading {tmp_path / 'provision.sh'} => /tmp/",
        "    qemu: BEGIN{hello}",
        "    qemu: greeting=hi 'there' user=root build=qemu",
        "    qemu: END{hello}",
        "==> qemu: Gracefully halting virtual machine...",
        "    qemu: BEGIN{clean_shutdown}",
    ):
        assert expected in seen, f"missing {expected!r} in:\n{text}"
    # Streamed: BEGIN was printed while the script still slept, not with END at the very end.
    assert seen["    qemu: END{hello}"] - seen["    qemu: BEGIN{hello}"] > 1.5
    assert any(line.startswith("==> qemu: Provisioning with shell script: ") for line in seen)
    assert any(line.startswith("Build 'qemu' finished") for line in seen)
    assert (tmp_path / "downloaded" / "e2e-result.txt").read_text().strip() == "VERSION_CODENAME=bookworm"
    image = tmp_path / "output" / "e2e.qcow2"
    info = json.loads(procs.run(["qemu-img", "info", "--output=json", str(image)]).stdout)
    assert info["format"] == "qcow2"
    # Halting is not a failure, whether or not the connection closed before the echo after shutdown.
    assert "Script disconnected" not in text and "Error" not in text


@pytest.mark.integration
@pytest.mark.timeout(1800)
def test_output_file_system_fills_while_the_guest_writes(
    bootstrapped_disk: BootstrappedDisk, tmp_path: Path
) -> None:
    """QEMU pauses a VM whose disk write fails with ENOSPC. vmbake must notice that, fail the running step
    with QEMU's reason and clean up, instead of waiting for the provisioner as long as it would run."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    small = tmp_path / "small"
    small.mkdir()
    room = bootstrapped_disk.image.stat().st_size + (48 << 20)  # the copy of the disk, and 48 MiB more
    procs.run(["mount", "-t", "tmpfs", "-o", f"size={room}", "tmpfs", str(small)])
    try:
        spec = template(bootstrapped_disk, tmp_path)
        builder = spec["builders"][0]  # type: ignore[index]
        builder["output_directory"] = str(small / "output")
        # Random bytes: zeros would not take space in the image (detect-zeroes). More than the room left.
        spec["provisioners"] = [
            {"type": "shell", "inline": ["echo filling", "head -c 256M /dev/urandom > /fill", "sync"]}
        ]
        code, lines = build(spec, tmp_path)
        text = "\n".join(line for _t, line in lines)
        assert not qemu_of(tmp_path), "QEMU was left running"
        assert code == 1, text
        assert "    qemu: filling" in text, text
        error = next((line for _t, line in lines if "QEMU stopped the VM" in line), "")
        assert "StepProvision" in error and "No space left on device" in error, text
        assert str(small / "output") in text, "the hint does not name the full file system"
        assert list(small.iterdir()) == [], "the output directory was not removed"
    finally:
        procs.run(["umount", "-l", str(small)], check=False)
