"""The seed's whole pipeline through the Debian installer, wherever the archive serves what it needs.

`vmbake build -only=installer-netboot trixie` with the shipped template: d-i's netboot kernel and initrd
from the archive, the shipped preseed over HTTP, the install itself (from the archive), SSH,
provision.sh, the clean shutdown and the compaction. Then the image is checked: it has the seed's LVM
layout (the report's filesystems), and it boots alone and reaches SSH (`vmbake verify`).

The install downloads the installer's .udebs from the archive, and an archive that lacks one stops it
after minutes under TCG. So each test first asks the archive for every .udeb the install needs
(tests/helpers/udebs.py: HEAD requests, seconds) and is skipped when one is missing, naming the files.
Where the archive serves them all the install takes 30 to 60 minutes under TCG.

The typed way runs the same install: the netinst-like ISO made from the same suite's netboot package
(debian-installer-13-netboot-amd64 of the archive), booted by the template's boot command over VNC.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from tests.helpers.netinst_iso import build_netinst_iso, netboot_tree
from tests.helpers.udebs import check_archive
from vmbake import procs
from vmbake.config.bootstrap import DEFAULT_MIRROR
from vmbake.installer.netboot import package_name

REPO = Path(__file__).resolve().parents[2]
SUITE = "trixie"
TEMPLATE = REPO / "templates" / SUITE
# The seed's layout (templates/trixie/htdocs/virtual-host.cfg): /boot on a partition, the rest in LVM.
LVM_MOUNTS = {"/": "vg.local-lv.root", "/var": "vg.local-lv.var", "/tmp": "vg.local-lv.tmp"}

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.timeout(5400)]


@pytest.fixture(scope="module")
def archive_serves_the_installer() -> None:
    """Skips (naming the missing files) unless the archive serves every .udeb the install needs."""
    try:
        check = check_archive(DEFAULT_MIRROR, SUITE, package_name(SUITE))
    except OSError as err:
        pytest.skip(f"cannot read the installer's indexes from {DEFAULT_MIRROR}: {err}")
    print(f"{check.asked} .udebs asked for (netboot kernel linux {check.kernel}, ABI {check.abi or '?'})")
    if check.problems:
        pytest.skip(check.reason())


def _key(tmp: Path) -> Path:
    key = tmp / "id_ed25519"
    procs.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    return key


def _build(tmp: Path, key: Path, only: str, *extra: str) -> tuple[Path, str]:
    argv = [
        sys.executable, "-m", "vmbake", "build", f"-only={only}", "-color=false",
        "-var", f'ssh_authorized_keys=["{key}.pub"]', *extra, str(TEMPLATE),
    ]  # fmt: skip
    result = procs.run(argv, cwd=tmp, check=False, capture=True, timeout=5000)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    for marker in ("BEGIN{apt_update}", "END{zero_freespace}", "END{clean_identity}", "Builds finished"):
        assert marker in out, marker
    assert "Installer: Installing the base system" in out  # the installer's progress was reported
    image = tmp / f"output-{only}" / f"{SUITE}.qcow2"
    assert image.is_file(), out[-3000:]
    return image, out


def _assert_layout_and_boot(image: Path, key: Path, tmp: Path) -> None:
    report = json.loads(image.with_name(image.name + ".report.json").read_text())
    sources = {fs["mountpoint"]: fs["source"] for fs in report["filesystems"]}
    for mount, lv in LVM_MOUNTS.items():
        assert lv in sources.get(mount, ""), f"{mount} is not on {lv}: {sources}"
    assert "/boot" in sources and "mapper" not in sources["/boot"], sources
    verify = procs.run(
        [sys.executable, "-m", "vmbake", "verify", "-ssh-key", str(key), "-timeout", "20m", str(image)],
        cwd=tmp,
        check=False,
        capture=True,
        timeout=1800,
    )
    assert verify.returncode == 0, (verify.stdout + verify.stderr)[-4000:]


def test_installer_netboot_build_end_to_end(
    tmp_path: Path, archive_serves_the_installer: None, no_qemu_left: None
) -> None:
    key = _key(tmp_path)
    image, _ = _build(tmp_path, key, "installer-netboot")
    _assert_layout_and_boot(image, key, tmp_path)


def test_typed_installer_build_end_to_end(
    tmp_path: Path, archive_serves_the_installer: None, no_qemu_left: None
) -> None:
    """The `installer` build, its boot command typed over VNC, from the netinst-like ISO of trixie."""
    version = "13.99.0"
    cd = tmp_path / "iso-cd"
    cd.mkdir()
    iso = build_netinst_iso(cd / f"debian-{version}-amd64-netinst.iso", netboot_tree(SUITE, DEFAULT_MIRROR))
    (cd / "SHA256SUMS").write_text(f"{hashlib.sha256(iso.read_bytes()).hexdigest()}  {iso.name}\n")
    key = _key(tmp_path)
    image, out = _build(
        tmp_path, key, "installer", "-var", f"iso_directory={cd}", "-var", f"iso_version={version}"
    )
    assert "Typing the boot command over VNC..." in out
    _assert_layout_and_boot(image, key, tmp_path)
