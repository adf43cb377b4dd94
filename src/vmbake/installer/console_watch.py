"""Follow the installer's serial console log and tell what its screen shows (vmbake.installer.dialogs).

`ConsoleWatch.poll()` reads what QEMU appended to the log since the last call and returns what is new on
the screen: a progress window, or a dialog. vmbake.vmwatch calls it once a second while the installer
runs, shows each through `InstallerReport`, and fails the build at the first `[!!]` dialog: with
priority=critical the installer shows one only when it cannot go on by itself, and it then waits for an
answer no one will give.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from vmbake.installer.dialogs import Dialog, InstallerScreen, Progress, advice
from vmbake.ui import BuildUi, ProgressHandle

READ_LIMIT = 1 << 20  # bytes read per poll; the rest comes at the next
LOOK_EVERY = 256  # bytes of console fed between two looks at the screen (a look takes about a millisecond)


def installer_console(config: object, kernel_path: Path | None, iso_path: Path | None) -> bool:
    """True when the VM about to start runs the installer: d-i's kernel booted directly, or an installer
    ISO whose boot menu gets a typed boot command."""
    if kernel_path is not None:
        return True
    typed = bool(getattr(config, "boot_command", None))
    return typed and iso_path is not None and not getattr(config, "disk_image", False)


class ConsoleWatch:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._position = 0
        self._screen = InstallerScreen()
        self._last: Dialog | Progress | None = None

    def poll(self) -> list[Dialog | Progress]:
        """What appeared on the installer's screen since the last call (each thing once)."""
        try:
            with self.path.open("rb") as f:
                f.seek(self._position)
                data = f.read(READ_LIMIT)
        except FileNotFoundError:
            return []
        if not data:
            return []
        self._position += len(data)
        new: list[Dialog | Progress] = []
        # d-i draws a short step's progress window and erases it within a second: the screen is looked
        # at after each small piece of the log, not once per poll, so that no step is missed.
        for start in range(0, len(data), LOOK_EVERY):
            self._screen.feed(data[start : start + LOOK_EVERY])
            seen = self._screen.look()
            if seen is not None and seen != self._last:
                self._last = seen
                new.append(seen)
        return new


def _during(step: str) -> str:
    return f" (installer step: {step})" if step else ""


def failure(dialog: Dialog, console_log: Path, step: str = "") -> tuple[str, str]:
    """The message and the hint for a build that the installer stopped at `dialog`, after the progress
    window titled `step`."""
    message = f"the installer stopped at a dialog: [{dialog.marker}] {dialog.quote()}{_during(step)}"
    return message, f"{advice(dialog)}; the installer's console is in {console_log}"


class InstallerReport:
    """Tells the user what the installer is doing, so that a 20-minute install is not 20 silent minutes:
    a line for each new step (a progress window's title) and for each dialog, naming the step it came in;
    on a terminal also a status line with the step, its percent and what it does now ("Unpacking
    libc6..."). Where output is not a terminal (a CI log), the lines alone tell the same. `close()`
    removes the status line."""

    def __init__(self, ui: BuildUi) -> None:
        self._ui = ui
        self._status: ProgressHandle | None = None
        self._stack = contextlib.ExitStack()
        self.step = ""  # the title of the last progress window

    def show(self, seen: Dialog | Progress) -> None:
        if isinstance(seen, Dialog):
            self._ui.error(
                f"The installer shows a dialog: [{seen.marker}] {seen.quote()}{_during(self.step)}"
            )
            return
        if seen.title != self.step:
            self.step = seen.title
            self._ui.say(f"Installer: {seen.title}")
        if self._status is None:
            self._status = self._stack.enter_context(self._ui.progress("Installer", 100, transfer=False))
        self._status.describe(f"Installer: {seen.title}" + (f": {seen.info}" if seen.info else ""))
        if seen.percent is not None:
            self._status.update(seen.percent, 100)

    def close(self) -> None:
        self._status = None
        self._stack.close()
