"""Notice a VM that QEMU stopped by itself, or an installer stuck at a dialog, and fail the build.

QEMU pauses a guest whose disk write fails with ENOSPC (its default `werror=enospc`): the guest, and
every step waiting on it, would then wait until a timeout, or for ever. While QEMU runs, `VmWatch` asks
it for the run state once a second. When the state is `io-error`, it names the disk and QEMU's reason
(for example "No space left on device") through `BuildContext.fail_from_watcher`, which ends the
running step the way a cancellation would, but as a failure.

While the Debian installer runs, the same thread also follows its serial console
(vmbake.installer.console_watch): it reports the installer's progress and dialogs, and fails the build
at the first dialog, quoting it, since an unattended installer that shows one waits for ever.

In every build it also fails at the guest kernel's panic: on the serial console ("Kernel panic - not
syncing: ..."), or as QEMU's `guest-panicked` state when the guest has a pvpanic device. A panicked guest
never answers SSH nor powers off, so the build would otherwise wait for ssh_timeout or shutdown_timeout
(Packer does).
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
from pathlib import Path
from typing import Any

from vmbake.installer.console_watch import ConsoleWatch, InstallerReport, failure
from vmbake.installer.dialogs import Dialog
from vmbake.qmp import Qmp, QmpError
from vmbake.state import BuildContext
from vmbake.units import format_size

log = logging.getLogger("vmbake.vmwatch")

INTERVAL = 1.0  # seconds between two run-state queries; one query costs QEMU well under a millisecond
_PANIC = re.compile(rb"Kernel panic - not syncing:?[ \t]*([^\r\n]*)(\r|\n)?")
_READ_LIMIT = 1 << 20  # bytes of console read per poll at most
_CARRY = 256  # bytes kept from the end of one read, for a panic line split across two


class PanicWatch:
    """Follows a serial console log for the guest kernel's panic line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._position = 0
        self._carry = b""
        self._pending = False  # the panic line was seen, its end not yet

    def poll(self) -> str | None:
        """The panic line ("Kernel panic - not syncing: REASON") once it appeared, else None."""
        try:
            with self.path.open("rb") as f:
                f.seek(self._position)
                data = f.read(_READ_LIMIT)
        except OSError:
            return None
        self._position += len(data)
        text = self._carry + data
        match = _PANIC.search(text)
        if match is None:
            self._carry = text[-_CARRY:]
            return None
        if match.group(2) is None and data and not self._pending:
            self._pending = True  # the reason may still be on its way: look again at the next poll
            self._carry = text[match.start() :][:_READ_LIMIT]
            return None
        reason = match.group(1).decode(errors="replace").strip()
        return "Kernel panic - not syncing" + (f": {reason}" if reason else "")


def panic_failure(line: str, console_log: Path | None) -> tuple[str, str]:
    """The message and the hint for a guest whose kernel panicked. The hint quotes the console lines
    before the panic, which say why: a failed build's output directory, with the console log, is deleted."""
    from vmbake.vm import console_tail  # vmbake.vm imports this module

    lines = console_tail(console_log, 400).splitlines()
    at = next((i for i, text in enumerate(lines) if "Kernel panic - not syncing" in text), len(lines))
    before = "\n".join(lines[max(0, at - 8) : at])
    return (
        f"the guest's kernel panicked: {line}",
        "the VM will not boot on from there"
        + (f"; the guest's console before the panic:\n{before}" if before else ""),
    )


def _failed_disk(qmp: Qmp) -> tuple[str, str]:
    """(file, io-status) of the first drive whose I/O status is not 'ok'; ('', '') if none says so."""
    try:
        blocks = qmp.execute("query-block")
    except QmpError:
        return "", ""
    for block in blocks if isinstance(blocks, list) else []:
        status = block.get("io-status", "ok")
        if status != "ok":
            inserted: dict[str, Any] = block.get("inserted") or {}
            return str(inserted.get("file", block.get("device", ""))), str(status)
    return "", ""


def describe_io_error(qmp: Qmp) -> tuple[str, str]:
    """The message and the hint for a VM that QEMU stopped on a disk I/O error."""
    events = qmp.events("BLOCK_IO_ERROR")
    data: dict[str, Any] = events[-1].get("data", {}) if events else {}
    file, status = _failed_disk(qmp)
    nospace = status == "nospace" or bool(data.get("nospace"))
    reason = str(data.get("reason") or ("No space left on device" if nospace else "I/O error"))
    operation = str(data.get("operation") or "write")
    disk = f"the disk {file}" if file else "a disk"
    message = f"QEMU stopped the VM: the guest's {operation} to {disk} failed: {reason}"
    if not nospace:
        return message, "check the disk image and the host's kernel log (dmesg), then build again"
    where = Path(file).parent if file and not file.startswith(("json:", "/dev/fdset")) else None
    if where is None:
        return message, "free space on the file system that holds the VM's disks, then build again"
    try:
        free = f" ({format_size(shutil.disk_usage(where).free)} free)"
    except OSError:
        free = ""
    return (
        message,
        f"free space on the file system that holds {where}{free}, or choose an output_directory with more",
    )


class VmWatch:
    """A thread that queries QEMU's run state while QEMU runs; see the module docstring."""

    def __init__(
        self,
        ctx: BuildContext,
        qmp: Qmp,
        *,
        interval: float = INTERVAL,
        installer_console: Path | None = None,
        console_log: Path | None = None,
    ) -> None:
        self._ctx = ctx
        self._qmp = qmp
        self._console = ConsoleWatch(installer_console) if installer_console is not None else None
        self._console_log = console_log
        self._panic = PanicWatch(console_log) if console_log is not None else None
        self._report = InstallerReport(ctx.ui)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vm-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._watch()
        finally:
            self._report.close()

    def _watch(self) -> None:
        child = self._ctx.state.qemu
        while not self._stop.wait(self._interval):
            if child is not None and not child.running():
                return
            try:
                if self._console is not None and self._installer_stuck(self._console):
                    return
                panic = self._panic.poll() if self._panic is not None else None
                if panic is not None:
                    self._ctx.fail_from_watcher(*panic_failure(panic, self._console_log))
                    return
                status = self._qmp.query_status()
                if status == "io-error":
                    self._ctx.fail_from_watcher(*describe_io_error(self._qmp))
                    return
                if status == "guest-panicked":
                    line = "QEMU's pvpanic device reported it"
                    self._ctx.fail_from_watcher(*panic_failure(line, self._console_log))
                    return
            except QmpError:
                return  # QEMU is exiting (or was asked to): the steps see that by themselves
            except Exception:  # a watcher's bug must not end the build, nor print a traceback
                log.debug("the VM watch stopped", exc_info=True)
                return

    def _installer_stuck(self, console: ConsoleWatch) -> bool:
        for seen in console.poll():
            self._report.show(seen)
            if isinstance(seen, Dialog):
                self._ctx.fail_from_watcher(*failure(seen, console.path, self._report.step))
                return True
        return False

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
