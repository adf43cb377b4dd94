"""The Debian installer booted without typing, under TCG, through vmbake's own steps.

Each test boots d-i's real kernel and initrd (package debian-installer-12-netboot-amd64) and passes when the
preseed's `early_command` fetches a marker from the build's HTTP server. Then the test presses Ctrl-C (a real
SIGINT) and checks the teardown: the build is cancelled, QEMU is gone, the output directory is removed.
The installer cannot finish here, because the archive this machine reaches serves only part of d-i's .udeb
components, so reaching `early_command` is the bar. Two boots cover the three ways:

* the kernel read out of a netinst-like ISO, with the preseed injected into the initrd (no url=); its
  early_command then powers the VM off, standing for the end of an installation, and vmbake must start the
  VM again from its disk, without the installer kernel and without the CD;
* the netboot kernel fetched from a Debian-like archive on loopback (signed with a test key, checked through
  InRelease, Packages and the .deb), with the preseed fetched over HTTP through kernel_args' url=.

Timing: the ISO/initrd boot took about 4-5 minutes and the netboot/HTTP boot more than 12 minutes on a
2-core host shared with about ten other TCG guests. Reaching url= needs hw-detect and DHCP first, so that
boot is slower. The marker deadline (25 min) is only a cap for an overloaded host.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.helpers.installer import (
    NETBOOT_DIR,
    NETBOOT_PACKAGE,
    InstallerRun,
    boot_until_marker,
    early_command_preseed,
    make_archive,
    make_deb,
    make_gpg_key,
    make_netinst_iso,
    run_installer_until_it_ends,
    serve_directory,
)
from vmbake import procs
from vmbake.errors import BuildCancelled, StepError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


def _assert_clean_teardown(run: InstallerRun, tmp: Path) -> None:
    """Cancelled, QEMU gone, output removed. (Only this build's QEMU is checked: other builds may be
    running on the same machine, so the session-wide qemu guard cannot be used.)"""
    assert isinstance(run.outcome, BuildCancelled), run.explain()
    assert "Interrupt received. Cancelling build..." in run.output
    assert run.qemu_pids, "the build never started QEMU"
    for pid in run.qemu_pids:
        assert not Path(f"/proc/{pid}").exists(), f"QEMU {pid} is still running"
    assert not procs.live_children(), "vmbake left a child process running"
    assert not (tmp / "output").exists(), "a cancelled build must remove its output directory"


def test_kernel_from_iso_with_preseed_in_initrd_then_restart_from_disk(
    tmp_path: Path, di_netboot: Path
) -> None:
    iso = make_netinst_iso(tmp_path / "netinst.iso", di_netboot / "linux", di_netboot / "initrd.gz")
    port = free_port()
    preseed = tmp_path / "preseed.cfg"
    marker = f"http://10.0.2.2:{port}/marker-iso-initrd"
    preseed.write_text(early_command_preseed(marker, bring_up_network=True, poweroff=True))
    run = boot_until_marker(
        tmp_path,
        "/marker-iso-initrd",
        iso_path=iso,
        until_restart=True,
        installer_boot="kernel",
        kernel_args="auto=true priority=critical net.ifnames=0 console=ttyS0",
        preseed_file=str(preseed),
        http_content={"/marker-iso-initrd": "ok"},
        http_port_min=port,
        http_port_max=port,
    )
    assert run.marker_after is not None, run.explain()
    installer, restarted = run.argvs[0], run.argvs[-1]
    assert installer[installer.index("-initrd") + 1].endswith("initrd-preseed.gz")
    assert "url=" not in installer[installer.index("-append") + 1]
    assert "/preseed.cfg" not in run.requests  # the preseed came from the initrd, not over HTTP
    assert "The installer finished after" in run.output
    assert len(run.argvs) == 2, run.explain()
    for flag in ("-kernel", "-initrd", "-append"):
        assert flag not in restarted
    assert not any(str(iso) in arg for arg in restarted), "the installer CD must not come back"
    _assert_clean_teardown(run, tmp_path)


@pytest.fixture
def signed_archive(tmp_path: Path, di_netboot: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Debian-like archive on loopback whose netboot .deb holds the real d-i kernel and initrd."""
    key = make_gpg_key(tmp_path / "gnupg")
    deb = make_deb(
        tmp_path / "netboot.deb",
        NETBOOT_PACKAGE,
        "20230607+deb12u99",
        {
            f"{NETBOOT_DIR}/linux": (di_netboot / "linux").read_bytes(),
            f"{NETBOOT_DIR}/initrd.gz": (di_netboot / "initrd.gz").read_bytes(),
        },
        compression="none",
    )
    archive = make_archive(tmp_path / "mirror", "bookworm", key, deb, version="20230607+deb12u99")
    monkeypatch.setenv("VMBAKE_ARCHIVE_KEYRING", str(key.keyring))
    monkeypatch.setenv("PACKER_CACHE_DIR", str(tmp_path / "cache"))
    with serve_directory(archive.root) as (url, _):
        yield url


def test_netboot_from_signed_archive_with_http_preseed(
    tmp_path: Path, signed_archive: str, di_netboot: Path
) -> None:
    run = boot_until_marker(
        tmp_path,
        "/marker-netboot",
        iso_source="debian-netboot",
        suite="bookworm",
        mirror=signed_archive,
        kernel_args="auto=true priority=critical net.ifnames=0 console=ttyS0"
        " url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/preseed.cfg",
        http_content={
            "/preseed.cfg": early_command_preseed("http://{{ .HTTPIP }}:{{ .HTTPPort }}/marker-netboot"),
            "/marker-netboot": "ok",
        },
    )
    assert run.marker_after is not None, run.explain()
    assert "Fetching the Debian installer for bookworm from " + signed_archive in run.output
    assert "debian-installer-12-netboot-amd64 20230607+deb12u99" in run.output
    argv = run.argvs[0]
    kernel = Path(argv[argv.index("-kernel") + 1])
    assert kernel.parent.parent == tmp_path / "cache" / "debian-netboot"
    assert "/preseed.cfg" in run.requests
    assert not any("media=cdrom" in arg for arg in argv)  # no ISO at all
    _assert_clean_teardown(run, tmp_path)


def test_failed_early_command_fails_the_build_at_the_dialog(tmp_path: Path, di_netboot: Path) -> None:
    """A preseed whose early_command exits non-zero: d-i shows "Failed to run preseeded command" and
    waits; the build must fail at once (not after ssh_timeout), quoting the dialog and the command."""
    iso = make_netinst_iso(tmp_path / "netinst.iso", di_netboot / "linux", di_netboot / "initrd.gz")
    preseed = tmp_path / "preseed.cfg"
    preseed.write_text(
        "d-i debian-installer/locale string en_US\n"
        "d-i keyboard-configuration/xkb-keymap select us\n"
        "d-i preseed/early_command string echo vmbake-broken-early; exit 7\n"
    )
    run = run_installer_until_it_ends(
        tmp_path,
        iso,
        "Failed to run preseeded command",
        installer_boot="kernel",
        kernel_args="auto=true priority=critical console=ttyS0",
        preseed_file=str(preseed),
    )
    error = run.outcome
    assert isinstance(error, StepError), f"{error!r}\n{run.output}"
    assert error.step == "StepInstallerReboot"
    assert "Failed to run preseeded command" in error.message
    assert "echo vmbake-broken-early; exit 7" in error.message
    assert "exit code 7" in error.message
    assert "early_command" in (error.hint or "")
    assert run.dialog_at is not None, run.output
    print(f"dialog on the console after {run.dialog_at:.1f}s, build failed after {run.seconds:.1f}s")
    assert run.seconds - run.dialog_at < 60, f"failed {run.seconds - run.dialog_at:.0f}s after the dialog"
    assert "The installer shows a dialog: [!!] Failed to run preseeded command" in run.output
    assert run.qemu_pids, "the build never started QEMU"
    for pid in run.qemu_pids:
        assert not Path(f"/proc/{pid}").exists(), f"QEMU {pid} is still running"
    assert not procs.live_children(), "vmbake left a child process running"


def test_unreachable_mirror_fails_the_build_at_the_dialog(tmp_path: Path, di_netboot: Path) -> None:
    """A preseed whose mirror is a closed port on the host's loopback (10.0.2.2 through SLIRP): d-i sets
    up the network, checks the mirror, shows "Bad archive mirror" and waits. The build must fail at once,
    quoting the dialog and the step it came in, and leave no QEMU. About 4 to 6 minutes under TCG on a
    loaded host, most of it the installer's boot and hardware detection."""
    iso = make_netinst_iso(tmp_path / "netinst.iso", di_netboot / "linux", di_netboot / "initrd.gz")
    closed = free_port()  # nothing listens here, and nothing is started on it: SLIRP's connect is refused
    preseed = tmp_path / "preseed.cfg"
    preseed.write_text(
        "d-i debian-installer/locale string en_US\n"
        "d-i keyboard-configuration/xkb-keymap select us\n"
        "d-i netcfg/choose_interface select auto\n"
        # SLIRP's fixed addresses, set statically: DHCP and IPv6 autoconfiguration cost a minute under TCG
        "d-i netcfg/disable_autoconfig boolean true\n"
        "d-i netcfg/get_ipaddress string 10.0.2.15\n"
        "d-i netcfg/get_netmask string 255.255.255.0\n"
        "d-i netcfg/get_gateway string 10.0.2.2\n"
        "d-i netcfg/get_nameservers string 10.0.2.3\n"
        "d-i netcfg/confirm_static boolean true\n"
        "d-i netcfg/get_hostname string vmbake\n"
        "d-i netcfg/get_domain string test\n"
        "d-i mirror/country string manual\n"
        f"d-i mirror/http/hostname string 10.0.2.2:{closed}\n"
        "d-i mirror/http/directory string /debian\n"
        "d-i mirror/http/proxy string\n"
    )
    run = run_installer_until_it_ends(
        tmp_path,
        iso,
        "Bad archive mirror",
        installer_boot="kernel",
        kernel_args="auto=true priority=critical ipv6.disable=1 console=ttyS0",
        preseed_file=str(preseed),
    )
    error = run.outcome
    assert isinstance(error, StepError), f"{error!r}\n{run.output}"
    assert error.step == "StepInstallerReboot"
    assert "Bad archive mirror" in error.message or "download" in error.message.lower(), error.message
    assert "mirror/http/hostname" in (error.hint or "")
    assert "(installer step: Checking the Debian archive mirror)" in error.message
    assert "Installer: Checking the Debian archive mirror" in run.output  # the progress, line by line
    assert run.dialog_at is not None, run.output
    print(f"dialog on the console after {run.dialog_at:.1f}s, build failed after {run.seconds:.1f}s")
    assert run.seconds - run.dialog_at < 60, f"failed {run.seconds - run.dialog_at:.0f}s after the dialog"
    assert run.qemu_pids, "the build never started QEMU"
    for pid in run.qemu_pids:
        assert not Path(f"/proc/{pid}").exists(), f"QEMU {pid} is still running"
    assert not procs.live_children(), "vmbake left a child process running"
