"""Choose the accelerator: KVM only when a tiny guest really runs under it, else TCG.

Packer picks KVM whenever /dev/kvm can be opened. That is not enough: on some hosts (nested
virtualisation, a broken module) /dev/kvm opens but guests crawl or hang. vmbake boots a 512-byte boot
sector through the real firmware; it writes to QEMU's isa-debug-exit port, so QEMU exits with a known
status. If that does not happen within a few seconds under KVM, vmbake uses TCG and says why.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from vmbake import arch, procs
from vmbake.errors import VmbakeError

PROBE_TIMEOUT = 2.0  # a working KVM needs about 0.1 s; TCG about 0.2 s
_EXIT_VALUE = 0x2A
_EXPECTED_STATUS = (_EXIT_VALUE << 1) | 1  # isa-debug-exit turns a write of V into exit status 2V+1

# mov dx, 0xf4; mov al, 0x2a; out dx, al; hlt; jmp $-1
_BOOT_CODE = bytes.fromhex("baf400b02aeef4ebfd")


@dataclass(frozen=True)
class AccelChoice:
    accelerator: str
    reason: str  # why: shown to the user when vmbake did not take what Packer would have


_cache: dict[str, AccelChoice] = {}
_lock = threading.Lock()
log = logging.getLogger("vmbake")


def boot_sector() -> bytes:
    sector = bytearray(512)
    sector[: len(_BOOT_CODE)] = _BOOT_CODE
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def probe_argv(qemu_binary: str, accel: str, image: Path) -> list[str]:
    return [
        qemu_binary, "-accel", accel, "-machine", "pc", "-m", "16", "-nodefaults", "-display", "none",
        "-drive", f"file={image},format=raw,if=ide,snapshot=on",
        "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ]  # fmt: skip


def run_probe(qemu_binary: str, accel: str, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """(ran, detail): whether the probe guest finished under `accel` within `timeout` seconds."""
    with tempfile.TemporaryDirectory(prefix="vmbake-accel-") as tmp:
        image = Path(tmp) / "probe.img"
        image.write_bytes(boot_sector())
        started = time.monotonic()
        child = procs.spawn(
            probe_argv(qemu_binary, accel, image), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            code = child.wait(timeout)
        finally:
            child.stop(grace=1.0)
        took = time.monotonic() - started
    name = accel.upper()
    if code is None:
        return False, f"a tiny test guest did not finish within {timeout:.0f}s under {name}"
    if code != _EXPECTED_STATUS:
        return False, f"a tiny test guest failed under {name} (QEMU exit status {code})"
    return True, f"a tiny test guest ran under {name} in {took:.2f}s"


# Accelerators of other host systems: the QEMU plugin takes them (builder/qemu/config.go, accels).
FOREIGN = {"hax": "Intel HAXM, for Windows and macOS", "hvf": "macOS Hypervisor.framework", "whpx": "Windows"}


def choose(configured: str, qemu_binary: str = "qemu-system-x86_64") -> AccelChoice:
    """The accelerator to use. An explicit choice is kept; "" probes KVM once per process.

    Raises VmbakeError for the accelerators of other host systems, which Packer's plugin accepts."""
    if configured in FOREIGN:
        raise VmbakeError(
            f"accelerator {configured!r} ({FOREIGN[configured]}) does not run on a Linux host",
            hint="use accelerator kvm or tcg, or leave it empty to let vmbake choose",
        )
    if configured:
        return AccelChoice(configured, "set in the template")
    with _lock:
        cached = _cache.get(qemu_binary)
        if cached is not None:
            return cached
        choice = _probe(qemu_binary)
        _cache[qemu_binary] = choice
        return choice


def choose_ahead(configured: str, qemu_binary: str = "qemu-system-x86_64") -> None:
    """Start choose() on a thread and return at once: a build calls this before long host work (mmdebstrap),
    so that the KVM probe (up to PROBE_TIMEOUT) runs meanwhile. choose() then finds the answer made, or
    waits for the probe under way. A failure here is left to that later choose() to report."""
    if configured:
        return

    def probe() -> None:
        try:
            choose(configured, qemu_binary)
        except Exception:  # the build's own choose() tries again and reports it
            log.debug("accelerator probe ahead of the build failed", exc_info=True)

    threading.Thread(target=probe, name="vmbake-accel-probe", daemon=True).start()


def _probe(qemu_binary: str) -> AccelChoice:
    if arch.emulated(qemu_binary):
        return AccelChoice(
            "tcg", f"{os.path.basename(qemu_binary)} emulates another architecture than the host's"
        )
    if not os.path.exists("/dev/kvm"):
        return AccelChoice("tcg", "/dev/kvm does not exist")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return AccelChoice("tcg", "/dev/kvm cannot be opened by this user (add yourself to group kvm)")
    ran, detail = run_probe(qemu_binary, "kvm")
    if ran:
        return AccelChoice("kvm", detail)
    return AccelChoice("tcg", detail)


def clear_cache() -> None:
    with _lock:
        _cache.clear()
