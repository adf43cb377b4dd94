"""A tiny QEMU to type keys into: its own VNC server and QMP socket, and a trace of the keys it received.

QEMU runs a `pc` machine with no disks (SeaBIOS finds nothing to boot and idles), so starting it takes a
fraction of a second. QEMU's trace events `vnc_key_event_map` (VNC) and `input_event_key_qcode` (QMP)
are written to a file, which tells the tests exactly which keys QEMU saw, by QEMU's own key names.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vmbake import procs
from vmbake.qmp import Qmp
from vmbake.rfb import RfbClient, VncUnreachable

_VNC_KEY = re.compile(r"vnc_key_event_map down (\d), sym (0x[0-9a-f]+) -> keycode 0x[0-9a-f]+ \[([^\]]*)\]")
_QMP_KEY = re.compile(r"input_event_key_qcode con -?\d+, key qcode (\S+), down (\d)")


@dataclass
class KeyVm:
    child: procs.Child
    qmp: Qmp
    port: int
    trace: Path

    def vnc_keys(self) -> list[tuple[str, bool, int]]:
        """(qcode, down, keysym) of each key event QEMU's VNC server received, in order."""
        text = self.trace.read_text(errors="replace")
        return [(m.group(3), m.group(1) == "1", int(m.group(2), 16)) for m in _VNC_KEY.finditer(text)]

    def qmp_keys(self) -> list[tuple[str, bool]]:
        """(qcode, down) of each key event QEMU received through QMP input-send-event."""
        text = self.trace.read_text(errors="replace")
        return [(m.group(1), m.group(2) == "1") for m in _QMP_KEY.finditer(text)]

    def wait_keys(self, count: int, timeout: float = 10.0, *, qmp: bool = False) -> int:
        """Poll the trace until at least `count` key events arrived; the number seen."""
        deadline = time.monotonic() + timeout
        while True:
            seen = len(self.qmp_keys() if qmp else self.vnc_keys())
            if seen >= count or time.monotonic() > deadline:
                return seen
            time.sleep(0.02)

    def rfb(self, **kwargs: object) -> RfbClient:
        """A VNC client on this VM, retrying while the server is still coming up."""
        deadline = time.monotonic() + 10
        while True:
            try:
                return RfbClient.connect("127.0.0.1", self.port, **kwargs)  # type: ignore[arg-type]
            except VncUnreachable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def gone(pid: int) -> bool:
    """True when no process `pid` exists any more (reaped, not even a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@contextmanager
def key_vm(work: Path, *, password: bool = False, share: str = "") -> Iterator[KeyVm]:
    """Start the VM; QEMU itself picks a free VNC display (`to=`), QMP reports which.

    On the way out QEMU is stopped and the test fails if its process still exists. (This checks this
    QEMU only, so it holds even while other QEMUs run on the machine.)"""
    qmp_path = work / "qmp.sock"
    trace = work / "qemu-trace.log"
    vnc = (
        "127.0.0.1:100,to=2000" + (",password=on" if password else "") + (f",share={share}" if share else "")
    )
    argv = [
        "qemu-system-x86_64", "-accel", "tcg", "-machine", "pc", "-m", "32", "-nodefaults", "-display", "none",
        "-vnc", vnc, "-qmp", f"unix:{qmp_path},server=on,wait=off",
        "-trace", "vnc_key_event_map", "-trace", "input_event_key_qcode",
    ]  # fmt: skip
    with trace.open("wb") as log:
        child = procs.spawn(argv, stderr=log)
    try:
        qmp = Qmp.connect(qmp_path, timeout=20, alive=child.running)
        try:
            port = int(qmp.execute("query-vnc")["service"])
            yield KeyVm(child, qmp, port, trace)
        finally:
            qmp.close()
    finally:
        child.stop(grace=2)
    assert gone(child.pid), f"QEMU {child.pid} was left running"
