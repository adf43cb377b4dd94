"""The shipped bookworm template, built by vmbake's command line as a user runs it.

- `-only=bootstrap` bakes end to end: mmdebstrap, first boot, provision.sh, clean_shutdown, compaction.
- `-only=installer` runs as far as this machine allows. Debian's CD server is out of reach, so the ISO is
  a netinst-like one made from the d-i netboot package (tests/helpers/netinst_iso.py), given to the
  template through its own variables, with a SHA256SUMS beside it as on the CD server. The test checks
  that the ISO boots, that the boot command is typed, and that the installer fetches the preseed files
  (vmbake's login.cfg among them).
  Then it stops the build with Ctrl-C: this machine's archive lacks most of the installer's .udebs, so the
  installation itself cannot finish here.
"""

from __future__ import annotations

import hashlib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.netinst_iso import build_netinst_iso
from vmbake import procs

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "templates" / "bookworm"

pytestmark = pytest.mark.integration


def wait_for_lines(log: Path, patterns: list[str], child: procs.Child, timeout: float) -> str:
    """The log once every pattern matched a line; fails if the build ends or time runs out first."""
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text(errors="replace")
        if all(re.search(p, text, re.M) for p in patterns):
            return text
        if not child.running():
            raise AssertionError(f"the build ended ({child.returncode}) before {patterns}:\n{text[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {patterns} within {timeout:.0f}s:\n{text[-3000:]}")
        time.sleep(0.5)  # poll interval inside the deadline


@pytest.mark.timeout(1200)
def test_installer_build_boots_the_iso_and_fetches_the_preseed(tmp_path: Path, no_qemu_left: None) -> None:
    version = "12.99.0"
    cd = tmp_path / "iso-cd"
    cd.mkdir()
    iso = build_netinst_iso(cd / f"debian-{version}-amd64-netinst.iso")
    digest = hashlib.sha256(iso.read_bytes()).hexdigest()
    (cd / "SHA256SUMS").write_text(f"{digest}  {iso.name}\n")
    log = tmp_path / "build.log"
    argv = [
        sys.executable, "-m", "vmbake", "build", "-only=installer",
        "-var", f"iso_directory={cd}", "-var", f"iso_version={version}", str(TEMPLATE),
    ]  # fmt: skip
    with log.open("w") as out:
        child = procs.spawn(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env={"VMBAKE_CACHE_DIR": str(tmp_path / "cache")},
        )
    try:
        text = wait_for_lines(
            log,
            [
                r"Connecting to VM via VNC \(127\.0\.0\.1:\d+\)",
                r"Typing the boot command over VNC\.\.\.",
                r"http: GET /virtual-host\.cfg 200",
                r"http: GET /baseline\.cfg 200",
                r"http: GET /login\.cfg 200",  # vmbake's {{ .LoginPreseed }}, included after baseline.cfg
            ],
            child,
            timeout=900,
        )
        assert "Retrieving ISO" in text
    finally:
        if child.running():
            child.signal(signal.SIGINT)
            child.wait(timeout=120)
        child.stop(grace=10)
    assert not (tmp_path / "output-installer").exists() or not any((tmp_path / "output-installer").iterdir())


@pytest.mark.timeout(2400)
def test_bootstrap_build_bakes_an_image_that_boots(tmp_path: Path, no_qemu_left: None) -> None:
    result = procs.run(
        [sys.executable, "-m", "vmbake", "build", "-only=bootstrap", str(TEMPLATE)],
        cwd=tmp_path, check=False, capture=True, timeout=2200,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    for marker in ("BEGIN{apt_update}", "END{clean_history}", "END{zero_freespace}", "END{clean_identity}"):
        assert marker in out, marker
    assert "Builds finished" in out
    image = tmp_path / "output-bootstrap" / "bookworm.qcow2"
    assert image.is_file(), out[-2000:]
    size_mib = image.stat().st_size / 2**20
    print(f"bookworm bootstrap image: {size_mib:.1f} MiB (the seed's buster installer image: 289 MiB)")
    assert size_mib < 289, f"{size_mib:.0f} MiB"

    # The image boots by itself (the build's key is gone, so the test reads the serial console).
    console = tmp_path / "console.log"
    argv = [
        "qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-display", "none", "-no-user-config",
        "-drive", f"file={image},if=virtio,format=qcow2,snapshot=on", "-nic", "user,model=virtio-net-pci",
        "-serial", f"file:{console}",
    ]  # fmt: skip
    child = procs.spawn(argv, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 900
        while not re.search(
            r"^debian login:", console.read_text(errors="replace") if console.exists() else "", re.M
        ):
            assert child.running(), "qemu exited"
            assert time.monotonic() < deadline, console.read_text(errors="replace")[-3000:]
            time.sleep(1)  # poll interval inside the deadline
    finally:
        child.stop(grace=5)
