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


def test_the_probe_ahead_runs_once_and_the_build_finds_its_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """choose_ahead() probes on a thread (beside mmdebstrap); the build's choose() waits for that probe
    rather than starting a second one. The probe itself is replaced: this checks the sharing only."""
    import threading
    import time

    calls: list[str] = []
    started = threading.Event()

    def slow_probe(binary: str) -> accel.AccelChoice:
        calls.append(binary)
        started.set()
        time.sleep(0.3)
        return accel.AccelChoice("tcg", "probed")

    monkeypatch.setattr(accel, "_probe", slow_probe)
    accel.clear_cache()
    try:
        accel.choose_ahead("", "qemu-probe-ahead")
        assert started.wait(5), "the probe did not start on its thread"
        begun = time.monotonic()
        choice = accel.choose("", "qemu-probe-ahead")
        assert time.monotonic() - begun > 0.1  # it waited for the probe under way
        assert (choice.reason, calls) == ("probed", ["qemu-probe-ahead"])
        accel.choose_ahead("tcg", "qemu-probe-ahead")  # an explicit choice: nothing to probe
        assert calls == ["qemu-probe-ahead"]
    finally:
        accel.clear_cache()


def test_a_failed_probe_ahead_is_reported_by_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    from vmbake.errors import VmbakeError

    def broken(binary: str) -> accel.AccelChoice:
        raise VmbakeError(f"{binary}: not found", hint="install QEMU")

    monkeypatch.setattr(accel, "_probe", broken)
    accel.clear_cache()
    accel.choose_ahead("", "qemu-missing")  # swallowed on its thread
    with pytest.raises(VmbakeError, match="qemu-missing: not found"):
        accel.choose("", "qemu-missing")
