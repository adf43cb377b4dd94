"""The seed's boot command typed into the real Debian installer by `vmbake build`, over VNC and over QMP.

The ISO is netinst-like (tests/helpers/netinst_iso.py): Debian 12's own installer kernel, initrd and
syslinux menus, laid out like the netinst CD. vmbake boots it under TCG from a template that uses the
seed's boot command (`<esc>` to the `boot:` prompt, then `expert ... url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/
virtual-host.cfg`). The preseed served by vmbake's HTTP server has a `preseed/early_command` that fetches
`/marker` from the same server with the installer's busybox wget. vmbake prints each request it serves
("qemu: http: GET /path 200"). When both the preseed and the marker show up there, the typed line
reached the installer intact: the URL, the port and every parameter.

The installer cannot go further on this machine: the package archive it can reach serves only part of
the installer's .udeb components. So the test then stops the build as a user would, with Ctrl-C
(SIGINT to the vmbake process), and checks that vmbake exits and that no QEMU of this build is left.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.helpers.netinst_iso import build_netinst_iso
from vmbake import procs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

SEED_BOOT_COMMAND = (
    "<esc><wait5>expert<spacebar>ipv6.disable=1<spacebar>net.ifnames=0<spacebar>auto=true<spacebar>"
    "priority=critical<spacebar>url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/virtual-host.cfg<wait5><enter>"
)
MARKER_DEADLINE = 1200.0  # the installer boots in 2-4 minutes under TCG, far more on a busy machine


@pytest.fixture(scope="session")
def netinst_iso(tmp_path_factory: pytest.TempPathFactory, di_netboot: Path) -> Path:
    """The netinst-like ISO, built once per test session."""
    return build_netinst_iso(tmp_path_factory.mktemp("netinst") / "netinst-like.iso", di_netboot)


def write_template(work: Path, iso: Path, transport: str) -> Path:
    port = free_port()
    htdocs = work / "htdocs"
    htdocs.mkdir()
    (htdocs / "virtual-host.cfg").write_text(
        f"d-i preseed/early_command string wget -q -O /dev/null http://10.0.2.2:{port}/marker\n"
    )
    (htdocs / "marker").write_text("reached\n")
    builder = {
        "type": "qemu",
        "iso_url": str(iso),
        "iso_checksum": "sha256:" + hashlib.sha256(iso.read_bytes()).hexdigest(),
        "output_directory": str(work / "output"),
        "accelerator": "tcg",
        "memory": 1024,
        "disk_size": "1G",
        "headless": True,
        "http_directory": "htdocs",
        "http_port_min": port,
        "http_port_max": port,
        "boot_wait": "5s",
        "boot_command": [SEED_BOOT_COMMAND],
        "boot_command_transport": transport,
        "ssh_username": "root",
        "ssh_password": "never-used",
        "ssh_timeout": "30m",
    }
    template = work / "packer.json"
    template.write_text(json.dumps({"builders": [builder]}, indent=2))
    return template


def qemu_of(work: Path) -> list[str]:
    """Command lines of running QEMU processes that belong to this build (they name its directory)."""
    found = subprocess.run(["pgrep", "-a", "-f", "qemu-system"], capture_output=True, text=True, check=False)
    return [line for line in found.stdout.splitlines() if str(work) in line]


# Over VNC, the same boot command reaches the installer in the shipped templates' test
# (tests/integration/test_provision_templates.py); one installer boot per transport keeps the suite short.
@pytest.mark.parametrize("transport", ["qmp"])
def test_seed_boot_command_reaches_the_installer(
    tmp_path: Path, netinst_iso: Path, vmbake_cmd: list[str], transport: str
) -> None:
    template = write_template(tmp_path, netinst_iso, transport)
    log_path = tmp_path / "vmbake.log"
    with log_path.open("w") as log:
        build = procs.spawn(
            [*vmbake_cmd, "build", str(template.name)], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
        )
    try:
        deadline = time.monotonic() + MARKER_DEADLINE
        while True:
            output = log_path.read_text(errors="replace")
            if "http: GET /virtual-host.cfg 200" in output and "http: GET /marker 200" in output:
                break
            assert build.running(), (
                f"vmbake stopped before the installer fetched the marker:\n{output[-3000:]}"
            )
            assert time.monotonic() < deadline, (
                f"no marker fetch within {MARKER_DEADLINE:.0f}s:\n{output[-3000:]}"
            )
            time.sleep(1)
        assert qemu_of(tmp_path), "QEMU should still be running the installer"
        build.signal(signal.SIGINT)
        code = build.wait(timeout=120)
    finally:
        build.stop(grace=10)
    output = log_path.read_text(errors="replace")
    assert code is not None and code != 0, output[-3000:]
    assert "Waiting 5s for boot..." in output
    if transport == "vnc":
        assert "Connecting to VM via VNC (127.0.0.1:" in output
        assert "Typing the boot command over VNC..." in output
    else:
        assert "Typing the boot command over QMP..." in output
        assert "via VNC (" not in output
    assert output.index("http: GET /virtual-host.cfg 200") < output.index("http: GET /marker 200")
    assert "cancelled" in output.lower()
    assert "Traceback" not in output.split("Interrupt received")[-1]
    leftover = qemu_of(tmp_path)
    assert not leftover, f"QEMU left running after the build stopped: {leftover}"
