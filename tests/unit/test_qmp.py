"""QMP client against a real QEMU with no guest (-machine none)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmbake import procs
from vmbake.procs import Child
from vmbake.qmp import Qmp, QmpError, make_key_event

pytestmark = pytest.mark.host_tools("qemu-system-x86_64")


@pytest.fixture
def qemu(tmp_path: Path, no_qemu_left: None) -> Iterator[tuple[Child, Path]]:
    sock = tmp_path / "qmp.sock"
    child = procs.spawn(
        ["qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none",
         "-qmp", f"unix:{sock},server=on,wait=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield child, sock
    finally:
        child.stop()


def test_connect_polls_until_qemu_listens_then_answers(qemu: tuple[Child, Path]) -> None:
    child, sock = qemu
    with Qmp.connect(sock, timeout=10, alive=child.running) as qmp:
        assert "QMP" in qmp.greeting
        assert qmp.query_status() in ("running", "prelaunch")
        with pytest.raises(QmpError, match="no-such-command"):
            qmp.execute("no-such-command")
        qmp.quit()
    assert child.wait(5) == 0


def test_connect_gives_up_when_qemu_is_gone(tmp_path: Path) -> None:
    with pytest.raises(QmpError, match="exited"):
        Qmp.connect(tmp_path / "nothing.sock", timeout=5, alive=lambda: False)


def test_connect_deadline(tmp_path: Path) -> None:
    with pytest.raises(QmpError, match="did not answer within"):
        Qmp.connect(tmp_path / "nothing.sock", timeout=0.2)


def test_key_event_shape() -> None:
    assert make_key_event("ret", True) == {
        "type": "key",
        "data": {"down": True, "key": {"type": "qcode", "data": "ret"}},
    }


def test_events_are_kept_and_waited_for(qemu: tuple[Child, Path]) -> None:
    child, sock = qemu
    with Qmp.connect(sock, timeout=10, alive=child.running) as qmp:
        qmp.execute("stop")
        event = qmp.wait_event("STOP", timeout=5)
        assert event is not None and event["event"] == "STOP"
        assert qmp.query_status() == "paused"
        assert qmp.wait_event("RESUME", timeout=0.2) is None
        qmp.quit()
