"""The accelerator choice: the probe guest really runs (under TCG here), and explicit choices are kept."""

from __future__ import annotations

import pytest

from vmbake import accel

pytestmark = pytest.mark.host_tools("qemu-system-x86_64")


def test_probe_boot_sector_is_a_valid_mbr() -> None:
    sector = accel.boot_sector()
    assert len(sector) == 512 and sector[510:] == b"\x55\xaa"


def test_probe_runs_under_tcg(no_qemu_left: None) -> None:
    ran, detail = accel.run_probe("qemu-system-x86_64", "tcg", timeout=5)
    assert ran, detail
    assert "TCG" in detail


def test_explicit_accelerator_is_kept_without_probing() -> None:
    choice = accel.choose("tcg")
    assert (choice.accelerator, choice.reason) == ("tcg", "set in the template")


def test_a_guest_that_does_not_finish_in_time_is_caught(no_qemu_left: None) -> None:
    """The hang this machine's KVM shows, made here with a deadline no guest can meet."""
    ran, detail = accel.run_probe("qemu-system-x86_64", "tcg", timeout=0.001)
    assert not ran
    assert "did not finish within" in detail


@pytest.mark.parametrize("name", ["hax", "hvf", "whpx"])
def test_accelerators_of_other_hosts_are_refused_before_qemu_starts(name: str) -> None:
    from vmbake.errors import VmbakeError

    with pytest.raises(VmbakeError, match=f"accelerator '{name}' .* does not run on a Linux host"):
        accel.choose(name)
