"""Read the Debian installer's screens out of its serial console: its `[!!]` dialogs and its progress.

On a serial console d-i's newt frontend draws an 80x24 text screen with cursor moves (`ESC[row;colH`),
and its boxes with the VT100 line-drawing set (`ESC)0`, then SO/SI around the border letters). A
dialog is a box whose top border carries the question's priority and its window title, "[!!] Title" for a
critical question (the title may be empty); the box holds the question's description (the heading,
centred on its first row), its text, wrapped to the box, and the buttons. A progress window is a box
whose top border carries only a title ("Installing the base system"); inside, its scale shows the percent
done ("45%", centred on a row of its own) and a line below it says what is being done ("Unpacking
libc6...").

Reading the bytes as text loses the layout, so `InstallerScreen` feeds them to a terminal emulator
(pyte) and looks at the screen it draws. Pure: no files, no threads; vmbake.installer.console_watch
feeds it the console log while the installer runs.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

import pyte

COLUMNS, ROWS = 80, 24  # d-i sets this scroll region on a serial console (ESC[1;24r)
_PRIORITY = re.compile(r"^\[(?P<marker>!!|!|\.)\]\s*(?P<title>.*)$")
_BUTTON = re.compile(r"^(?:\s*<[^<>]+>)+\s*$")
_PERCENT = re.compile(r"^(?P<percent>\d{1,3})%$")


@dataclass(frozen=True)
class Dialog:
    """A question the installer shows and waits on: a critical one is `[!!]`."""

    marker: str  # "!!" critical, "!" high, "." medium
    title: str  # the window's title on the border; often empty for an error
    heading: str  # the question's description, the box's first line
    text: str  # the rest, paragraphs joined by newlines

    def quote(self) -> str:
        """The dialog as one paragraph, for a message."""
        parts = [p for p in (self.title, self.heading, " ".join(self.text.split())) if p]
        return ": ".join(parts)


@dataclass(frozen=True)
class Progress:
    """A progress window: its title ("Installing the base system"), the percent its scale shows (None
    when it shows none) and the line that says what is being done ("Unpacking libc6...")."""

    title: str
    percent: int | None = None
    info: str = ""

    def describe(self) -> str:
        """The window on one line: "Installing the base system 45% Unpacking libc6..."."""
        parts = [self.title, "" if self.percent is None else f"{self.percent}%", self.info]
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class _Box:
    top: int
    left: int
    right: int
    bottom: int
    title: str


def _boxes(lines: list[str]) -> list[_Box]:
    found = []
    for row, line in enumerate(lines):
        left = line.find("┌")
        if left < 0:
            continue
        right = line.find("┐", left)
        if right < 0:
            continue
        bottom = next(
            (r for r in range(row + 1, len(lines)) if lines[r][left : left + 1] == "└"),
            None,
        )
        if bottom is None:
            continue  # not drawn to its end yet: read it at the next look
        border = line[left + 1 : right]
        title = border.strip("─").strip()
        title = title.removeprefix("┤").removesuffix("├").strip()
        found.append(_Box(row, left, right, bottom, title))
    return found


def _body(lines: list[str], box: _Box) -> list[str]:
    rows = []
    for row in range(box.top + 1, box.bottom):
        inner = lines[row][box.left + 1 : box.right]
        rows.append(inner.strip())
    while rows and not rows[-1]:
        rows.pop()
    return rows


def _paragraphs(rows: list[str]) -> list[str]:
    paragraphs: list[list[str]] = [[]]
    for row in rows:
        if _BUTTON.match(row) or "█" in row or "▒" in row:
            continue  # buttons and progress bars are not text
        if not row:
            if paragraphs[-1]:
                paragraphs.append([])
            continue
        paragraphs[-1].append(row)
    return [" ".join(p) for p in paragraphs if p]


def _progress(title: str, rows: list[str]) -> Progress:
    percent: int | None = None
    info: list[str] = []
    for row in rows:
        match = _PERCENT.match(row)
        if match is not None and percent is None:
            percent = min(int(match["percent"]), 100)
        elif row and not _BUTTON.match(row) and "█" not in row and "▒" not in row:
            info.append(row)
    return Progress(title, percent, " ".join(info))


def read_screen(lines: list[str]) -> Dialog | Progress | None:
    """What the screen shows: the dialog (a box titled with a priority marker), else a progress window's
    title, else None. `lines` are the screen's rows as text."""
    progress: Progress | None = None
    for box in _boxes(lines):
        match = _PRIORITY.match(box.title)
        if match is None:
            if box.title and progress is None:
                progress = _progress(box.title, _body(lines, box))
            continue
        rows = _body(lines, box)
        while rows and not rows[0]:
            rows.pop(0)
        heading = rows[0] if rows else ""
        text = "\n".join(_paragraphs(rows[1:]))
        return Dialog(match["marker"], match["title"].strip(), heading, text)
    return progress


class InstallerScreen:
    """The installer's screen, fed with console bytes as they come; `look()` says what it shows now."""

    def __init__(self) -> None:
        self._screen = pyte.Screen(COLUMNS, ROWS)
        self._stream = pyte.Stream(self._screen)
        # pyte ignores the line-drawing set in its UTF-8 mode; d-i's borders need it, so the bytes are
        # decoded here and the stream keeps the VT100 charset switches.
        self._stream.use_utf8 = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> None:
        self._stream.feed(self._decoder.decode(data))

    def lines(self) -> list[str]:
        return list(self._screen.display)

    def look(self) -> Dialog | Progress | None:
        return read_screen(self.lines())


def read_console(data: bytes) -> Dialog | Progress | None:
    """What a whole console log leaves on the screen."""
    screen = InstallerScreen()
    screen.feed(data)
    return screen.look()


# (words in the dialog, the likely fix): the first whose words are all in the dialog's text names the fix.
_ADVICE: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("installation complete",),
        "the install finished but waits to be told to reboot: add 'd-i finish-install/reboot_in_progress"
        " note' (and 'd-i debian-installer/exit/poweroff boolean true') to the preseed",
    ),
    (
        ("failed to run preseeded command",),
        "fix the command the dialog quotes: it is the preseed's preseed/early_command,"
        " partman/early_command or preseed/late_command, and it must exit 0",
    ),
    (
        ("bad archive mirror",),
        "check the preseed's mirror/http/hostname, mirror/http/directory and mirror/suite, and"
        " mirror/http/proxy if the guest needs a proxy to reach the mirror",
    ),
    (
        ("download installer components",),
        "the mirror lacks a file of the installer's (often its kernel modules: the installer's kernel must"
        " match the suite the mirror serves); check mirror/http/hostname, mirror/http/proxy and the installer's"
        " suite or ISO",
    ),
    (
        ("retriev",),
        "a file could not be downloaded: check preseed/url or the mirror keys (mirror/http/hostname,"
        " mirror/http/proxy) and that the guest reaches them",
    ),
    (
        ("partition",),
        "check the preseed's partman keys (partman-auto/method, partman-auto/expert_recipe,"
        " partman/confirm, partman/confirm_nooverwrite) and that disk_size is large enough",
    ),
    (
        ("base system",),
        "debootstrap failed: check the mirror keys (mirror/http/hostname, mirror/suite, mirror/http/proxy)"
        " and that the disk is large enough",
    ),
    (
        ("software",),
        "check the preseed's tasksel/first and pkgsel/include (a package name the mirror lacks) and"
        " the mirror",
    ),
    (
        ("grub",),
        "check grub-installer/bootdev (for example /dev/vda) and grub-installer/only_debian",
    ),
    (
        ("installation step failed",),
        "the console log's lines above the dialog name the step that failed; fix its preseed keys",
    ),
)


def advice(dialog: Dialog) -> str:
    """The likely fix for what `dialog` says, naming the preseed key, the mirror or the proxy."""
    words = dialog.quote().lower()
    for needles, fix in _ADVICE:
        if all(needle in words for needle in needles):
            return fix
    return (
        "the installer asks a question the preseed does not answer: add its answer to the preseed"
        " (run the installer once by hand with DEBCONF_DEBUG=5 to learn the question's name)"
    )
