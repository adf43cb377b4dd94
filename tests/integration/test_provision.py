"""provision.sh for real, inside a bootstrap-built bookworm guest under TCG.

The guest boots from a qcow2 overlay on the session's bootstrapped disk (which stays unchanged), so the
provisioned system survives a power-off and boots again. One test drives the whole story, since each
boot costs tens of seconds under TCG: the default sections (and zero_freespace), --section/--exclude and
run-once, then clean_shutdown powering the guest off by itself, then a second boot from the provisioned
disk (its fstab, grub and initramfs) that must reach SSH with a new identity.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.bootstrap_disk import (
    BootstrappedDisk,
    free_port,
    qemu_disk_argv,
    ssh,
    ssh_argv,
    wait_for_ssh,
)
from vmbake import procs

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "templates" / "bookworm" / "provision.sh"
RULER = "=" * 76
HEADER = "# vmbake provisioned this file (provision.sh, section "
DEFAULT = [
    "apt_update", "clean_packages", "clean_libraries", "preconfig_udev_ifnames", "preconfig_initramfs",
    "preconfig_grub", "preconfig_fstab", "preconfig_hosts", "apt_dist_upgrade", "clean_apt", "clean_history",
]  # fmt: skip

pytestmark = pytest.mark.integration


def sections(output: str) -> list[str]:
    """The sections a run printed, in order; checks that each one has its ruler, BEGIN and END."""
    lines = output.splitlines()
    names: list[str] = []
    for i, line in enumerate(lines):
        begin = re.fullmatch(r"BEGIN\{(\w+)\}", line)
        if begin:
            assert i > 0 and lines[i - 1] == RULER, f"no ruler before {line}"
            name = begin.group(1)
            rest = lines[i + 1 :]
            ends = [j for j, other in enumerate(rest) if other == f"END{{{name}}}"]
            nexts = [j for j, other in enumerate(rest) if other.startswith("BEGIN{")]
            assert ends, f"BEGIN{{{name}}} has no END"
            assert not nexts or ends[0] < nexts[0], f"section {name} ends after the next one begins"
            names.append(name)
    return names


def guest(port: int, key: Path, command: str, timeout: float = 900) -> str:
    result = ssh(port, key, command, check=False, timeout=timeout)
    assert result.returncode == 0, (
        f"{command!r} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def boot(image: Path, port: int, console: Path) -> procs.Child:
    return procs.spawn(qemu_disk_argv(image, port, console, snapshot=False), stderr=subprocess.DEVNULL)


def wait_for_exit(child: procs.Child, console: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while child.running():
        if time.monotonic() > deadline:
            tail = "\n".join(console.read_text(errors="replace").splitlines()[-20:])
            raise AssertionError(f"the guest did not power off within {timeout:.0f}s; console:\n{tail}")
        time.sleep(0.5)  # poll interval inside the deadline


@pytest.mark.timeout(2400)
def test_provision_sections_in_a_bootstrapped_guest(
    bootstrapped_disk: BootstrappedDisk, tmp_path: Path, no_qemu_left: None
) -> None:
    overlay = tmp_path / "overlay.qcow2"
    procs.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            str(bootstrapped_disk.image),
            str(overlay),
        ]
    )
    key = bootstrapped_disk.private_key
    port = free_port()
    console = tmp_path / "console-1.log"
    child = boot(overlay, port, console)
    try:
        wait_for_ssh(port, key, child, console, timeout=900)
        copy = ["scp", "-P", str(port), *ssh_argv(port, key, "")[3:-2], str(SCRIPT), "root@127.0.0.1:/tmp/"]
        procs.run(copy, timeout=120, what="scp provision.sh")
        guest(port, key, "chmod 0755 /tmp/provision.sh")
        machine_id = guest(port, key, "cat /etc/machine-id").strip()
        host_key = guest(port, key, "cat /etc/ssh/ssh_host_ed25519_key.pub").split()[1]

        # The templates' provisioning command.
        out = guest(port, key, "/tmp/provision.sh --batch --section default --section zero_freespace")
        assert sections(out) == [*DEFAULT, "zero_freespace"]
        assert re.search(r"zero_freespace: /: (fstrim|filled with zeros)", out), out
        files = {
            "/etc/default/grub.d/90-vmbake-provision.cfg": "run 'update-grub'",
            "/etc/initramfs-tools/conf.d/resume": "update-initramfs -u",
            "/etc/systemd/network/70-vmbake-ifnames.link": "update-initramfs -u",
            "/etc/fstab": "systemctl daemon-reload",
            "/etc/hosts": "changes apply at once",
        }
        for path, apply in files.items():
            head = guest(port, key, f"head -n 2 {path}").splitlines()
            assert head[0].startswith(HEADER), (path, head)
            assert apply in head[1], (path, head)
        grub_cfg = guest(port, key, "grep -m1 -E '^\\s*linux\\s' /boot/grub/grub.cfg")
        for arg in ("net.ifnames=0", "console=ttyS0", "root=UUID="):
            assert arg in grub_cfg, grub_cfg
        fstab = guest(port, key, "grep -v '^#' /etc/fstab")
        root_uuid = guest(port, key, "findmnt -no UUID /").strip()
        assert re.search(rf"^UUID={root_uuid}\s+/\s+ext4\s+errors=remount-ro\s+0\s+1$", fstab, re.M), fstab
        assert "RESUME=none" in guest(port, key, "cat /etc/initramfs-tools/conf.d/resume")
        assert bootstrapped_disk.hostname in guest(port, key, "grep '^127.0.1.1' /etc/hosts")
        assert guest(port, key, "ls /var/lib/apt/lists | grep -c _Packages || true").strip() == "0"

        # --section, --exclude and run-once: apt_dist_upgrade needs apt_update, which is excluded here.
        out = guest(
            port,
            key,
            "/tmp/provision.sh -B -S preconfig_hosts -S apt_dist_upgrade -X apt_update -S preconfig_hosts",
        )
        assert sections(out) == ["preconfig_hosts", "apt_dist_upgrade"]
        out = guest(port, key, "/tmp/provision.sh -B -S apt_update -S apt_dist_upgrade -S apt_update")
        assert sections(out) == ["apt_update", "apt_dist_upgrade"]

        # The shutdown command, keeping root's key so that the test can log in again.
        result = ssh(
            port,
            key,
            "/tmp/provision.sh --batch --section clean_shutdown --exclude clean_root_ssh",
            check=False,
            timeout=300,
        )
        assert result.returncode in (0, 255), result.stderr  # 255: the connection went down with the guest
        printed = sections(result.stdout)
        expected = [
            "clean_apt",
            "clean_history",
            "clean_cloud_init",
            "clean_network",
            "clean_identity",
            "clean_self",
            "clean_shutdown",
        ]
        # The output may be cut short once the guest goes down, but not before the cleanups were reported.
        assert printed == expected[: len(printed)] and len(printed) >= 6, result.stdout
        wait_for_exit(child, console, timeout=600)
    finally:
        child.stop(grace=10)

    # The provisioned disk boots by itself again, with a new machine-id and new SSH host keys.
    port = free_port()
    console = tmp_path / "console-2.log"
    child = boot(overlay, port, console)
    try:
        wait_for_ssh(port, key, child, console, timeout=1200)
        state = ssh(port, key, "systemctl is-system-running --wait", check=False, timeout=600).stdout.strip()
        failed = guest(port, key, "systemctl --failed --no-legend --plain")
        assert state in ("running", "degraded"), failed
        cmdline = guest(port, key, "cat /proc/cmdline")
        assert "net.ifnames=0" in cmdline and "console=ttyS0" in cmdline
        assert "eth0" in guest(port, key, "ls /sys/class/net")
        new_id = guest(port, key, "cat /etc/machine-id").strip()
        assert re.fullmatch(r"[0-9a-f]{32}", new_id) and new_id != machine_id
        assert guest(port, key, "cat /etc/ssh/ssh_host_ed25519_key.pub").split()[1] != host_key
        assert guest(port, key, "test -e /tmp/provision.sh && echo present || echo gone").strip() == "gone"
        assert guest(port, key, "findmnt -no FSTYPE /").strip() == "ext4"
    finally:
        child.stop(grace=10)
