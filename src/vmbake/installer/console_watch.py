"""Follow the installer's serial console log and tell what its screen shows (vmbake.installer.dialogs).

`ConsoleWatch.poll()` reads what QEMU appended to the log since the last call and returns what is new on
the screen: a progress title, or a dialog. vmbake.vmwatch calls it once a second while the installer
runs, prints each progress title and dialog, and fails the build at the first `[!!]` dialog: with
priority=critical the installer shows one only when it cannot go on by itself, and it then waits for an
answer no one will give.
"""

from __future__ import annotations

from pathlib import Path

from vmbake.installer.dialogs import Dialog, InstallerScreen, Progress, advice

READ_LIMIT = 1 << 20  # bytes read per poll; the rest comes at the next


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
        self._screen.feed(data)
        seen = self._screen.look()
        if seen is None or seen == self._last:
            return []
        self._last = seen
        return [seen]


def failure(dialog: Dialog, console_log: Path) -> tuple[str, str]:
    """The message and the hint for a build that the installer stopped at `dialog`."""
    message = f"the installer stopped at a dialog: [{dialog.marker}] {dialog.quote()}"
    return message, f"{advice(dialog)}; the installer's console is in {console_log}"
