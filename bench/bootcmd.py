"""Time to type the seed's boot command over VNC (Packer's way) and over QMP (vmbake's option).

Each transport types the command into a real QEMU (a disk-less `pc` machine under TCG) at its default
pace: VNC pauses 100 ms after every key event, QMP sends a whole key stroke per command and pauses
20 ms. QEMU's key trace confirms every event arrived. Prints the times and the VNC/QMP ratio, with and
without the command's two `<wait5>`s. Not a test: run it by hand, `python bench/bootcmd.py`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.bootcmd import key_vm
from vmbake.bootcommand import KeyEvent, Wait, parse, to_events
from vmbake.steps.type_boot_command import key_interval, type_over_qmp, type_over_vnc

SEED = (
    "<esc><wait5>expert<spacebar>ipv6.disable=1<spacebar>net.ifnames=0<spacebar>auto=true<spacebar>"
    "priority=critical<spacebar>url=http://10.0.2.2:8080/virtual-host.cfg<wait5><enter>"
)


def measure(transport: str, events: list[KeyEvent | Wait]) -> float:
    keys = sum(1 for e in events if isinstance(e, KeyEvent))
    with tempfile.TemporaryDirectory() as work, key_vm(Path(work)) as vm:
        started = time.monotonic()
        if transport == "vnc":
            with vm.rfb() as client:
                type_over_vnc(client, events, key_interval(""), lambda: False)
        else:
            type_over_qmp(vm.qmp, events, key_interval("", qmp=True), lambda: False)
        elapsed = time.monotonic() - started
        seen = vm.wait_keys(keys, qmp=transport == "qmp")
        if seen != keys:
            raise SystemExit(f"{transport}: QEMU saw {seen} of {keys} key events")
    return elapsed


def main() -> None:
    events = to_events(parse(SEED))
    keys_only = [e for e in events if not isinstance(e, Wait)]
    count = len(keys_only)
    print(f"seed boot command: {len(SEED)} characters, {count} key events, 2 x <wait5>")
    results: dict[str, float] = {}
    for label, sequence in (("keys only", keys_only), ("whole command", events)):
        for transport in ("vnc", "qmp"):
            results[f"{transport} {label}"] = measure(transport, sequence)
            print(f"  {transport.upper():3} {label:13}: {results[f'{transport} {label}']:6.2f} s")
        ratio = results[f"vnc {label}"] / results[f"qmp {label}"]
        print(f"  ratio VNC/QMP ({label}): {ratio:.1f}x")


if __name__ == "__main__":
    main()
