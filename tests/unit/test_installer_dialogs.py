"""Reading d-i's screens from its serial console: dialogs, progress, the advice, the console watch.

The recorded consoles (tests/data/installer/) are the real serial output of the Debian 12 netboot
installer (debian-installer-12-netboot-amd64) booted under QEMU with `auto=true priority=critical
console=ttyS0`, up to the dialog it then shows and waits on: early-command-failed.console.log with a
preseed whose early_command is `echo vmbake-early-command-test; exit 3`, bad-mirror.console.log with a
static network and a preseeded mirror on a closed port of the host (the integration test
test_unreachable_mirror_fails_the_build_at_the_dialog).
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import pytest

from vmbake.cli import main
from vmbake.installer.console_watch import ConsoleWatch, InstallerReport, failure, installer_console
from vmbake.installer.dialogs import Dialog, InstallerScreen, Progress, advice, read_console, read_screen
from vmbake.ui import BuildUi, Ui

DATA = Path(__file__).resolve().parents[1] / "data" / "installer"
RECORDED = DATA / "early-command-failed.console.log"
BAD_MIRROR = DATA / "bad-mirror.console.log"
EXPECTED = Dialog(
    marker="!!",
    title="",
    heading="Failed to run preseeded command",
    text='Execution of preseeded command "echo vmbake-early-command-test; exit 3" failed with exit code 3.',
)


def box(title: str, rows: list[str], width: int = 60) -> list[str]:
    """A newt box as d-i draws it, after the terminal has translated the line-drawing set."""
    label = f"┤ {title} ├" if title else ""
    left = (width - 2 - len(label)) // 2
    top = "┌" + "─" * left + label + "─" * (width - 2 - left - len(label)) + "┐"
    body = ["│" + row.center(width - 2) + "│" for row in rows]
    return ["", top, *body, "└" + "─" * (width - 2) + "┘", ""]


def test_the_recorded_dialog_is_read_with_its_heading_and_text() -> None:
    assert read_console(RECORDED.read_bytes()) == EXPECTED
    assert EXPECTED.quote() == (
        "Failed to run preseeded command: Execution of preseeded command"
        ' "echo vmbake-early-command-test; exit 3" failed with exit code 3.'
    )


def test_the_stream_can_come_in_any_pieces() -> None:
    data = RECORDED.read_bytes()
    screen = InstallerScreen()
    for start in range(0, len(data), 7):
        screen.feed(data[start : start + 7])
    assert screen.look() == EXPECTED


def test_a_dialog_not_yet_drawn_to_its_bottom_is_not_read() -> None:
    data = RECORDED.read_bytes()
    cut = data.rindex(b"mqqq")  # the box's bottom border, drawn in the line-drawing set
    assert read_console(data[:cut]) is None
    assert read_console(data) == EXPECTED


def test_the_boot_before_the_installer_shows_nothing() -> None:
    data = RECORDED.read_bytes()
    assert read_console(data[: data.index(b"Starting system log daemon")]) is None


def test_a_titled_dialog_and_a_progress_window() -> None:
    mirror = box(
        "[!!] Choose a mirror of the Debian archive",
        ["", "Bad archive mirror", "An error has been detected while trying to use the", "specified mirror.",
         "", "<Go Back>   <Continue>"],
    )  # fmt: skip
    dialog = read_screen(mirror)
    assert dialog == Dialog(
        "!!",
        "Choose a mirror of the Debian archive",
        "Bad archive mirror",
        "An error has been detected while trying to use the specified mirror.",
    )
    assert isinstance(dialog, Dialog)
    assert "mirror/http/proxy" in advice(dialog)
    assert read_screen(box("Installing the base system", ["", "Unpacking libc6...", "███▒▒▒▒"])) == Progress(
        "Installing the base system", None, "Unpacking libc6..."
    )
    assert read_screen(["plain text", "no box here"]) is None


@pytest.mark.parametrize(
    ("heading", "title", "key"),
    [
        ("Failed to run preseeded command", "", "preseed/early_command"),
        ("Bad archive mirror", "Choose a mirror of the Debian archive", "mirror/http/hostname"),
        ("Download installer components", "", "mirror/http/proxy"),
        ("No root file system is defined.", "Partition disks", "partman-auto/method"),
        ("Installation step failed", "Debian installer main menu", "console log"),
        ("Installation complete", "Finish the installation", "finish-install/reboot_in_progress"),
        ("Some unknown question", "", "DEBCONF_DEBUG"),
    ],
)
def test_advice_names_the_likely_fix(heading: str, title: str, key: str) -> None:
    assert key in advice(Dialog("!!", title, heading, ""))


def test_the_console_watch_reports_each_thing_once(tmp_path: Path) -> None:
    log = tmp_path / "vm.console.log"
    watch = ConsoleWatch(log)
    assert watch.poll() == []  # QEMU has not made the file yet
    data = RECORDED.read_bytes()
    half = data.rindex(b"mqqq")
    log.write_bytes(data[:half])
    assert watch.poll() == []
    with log.open("ab") as f:
        f.write(data[half:])
    assert watch.poll() == [EXPECTED]
    assert watch.poll() == []
    message, hint = failure(EXPECTED, log)
    assert message == f"the installer stopped at a dialog: [!!] {EXPECTED.quote()}"
    assert "preseed/early_command" in hint and str(log) in hint


def test_which_runs_are_the_installer(tmp_path: Path) -> None:
    from vmbake.config.qemu import QemuConfig

    iso = tmp_path / "d.iso"
    typed = QemuConfig(boot_command=["<esc>install<enter>"])
    assert installer_console(typed, None, iso)
    assert not installer_console(typed, None, None)  # after the installer: the disk boots
    assert installer_console(QemuConfig(installer_boot="kernel"), tmp_path / "linux", iso)
    assert not installer_console(QemuConfig(), None, iso)  # an ISO booted with nothing typed
    assert not installer_console(QemuConfig(boot_command=["<enter>"], disk_image=True), None, iso)


TEMPLATE = {
    "builders": [{"type": "qemu", "iso_url": "http://example.invalid/d.iso", "iso_checksum": "none",
                  "ssh_username": "root", "boot_command": ["<esc><wait>install auto=true<enter>"]}],
}  # fmt: skip


@pytest.mark.parametrize(
    ("keys", "warned"),
    [
        ({}, "builders[0].boot_command"),
        ({"boot_command": ["<esc>install<spacebar>console=ttyS0,115200n8<enter>"]}, ""),
        ({"communicator": "none"}, ""),
        (
            {"boot_command": [], "installer_boot": "kernel", "kernel_args": "auto=true"},
            "builders[0].kernel_args",
        ),
        ({"boot_command": [], "installer_boot": "kernel", "kernel_args": "auto=true console=ttyS0"}, ""),
        ({"boot_command": []}, ""),
    ],
)
def test_validate_warns_when_the_installer_console_is_not_serial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: dict[str, object], warned: str
) -> None:
    data = copy.deepcopy(TEMPLATE)
    data["builders"][0].update(keys)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    lines = [line for line in (out + err).splitlines() if "console=ttyS0" in line]
    if warned:
        assert len(lines) == 1 and f" {warned}: " in lines[0], out + err
        assert "cannot see its dialogs" in lines[0]
    else:
        assert lines == [], out + err


def test_a_progress_window_gives_its_percent_and_what_it_does() -> None:
    window = box("Installing the base system", ["", "45%", "", "Unpacking libc6...", "", "<Cancel>"])
    progress = read_screen(window)
    assert progress == Progress("Installing the base system", 45, "Unpacking libc6...")
    assert isinstance(progress, Progress)
    assert progress.describe() == "Installing the base system 45% Unpacking libc6..."
    assert read_screen(box("Detecting network hardware", ["", "0%", "", ""])) == Progress(
        "Detecting network hardware", 0, ""
    )
    assert read_screen(box("Select and install software", ["", "Running tasksel..."])) == Progress(
        "Select and install software", None, "Running tasksel..."
    )


class _Out(io.StringIO):
    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


def _report(terminal: bool) -> tuple[InstallerReport, _Out]:
    out = _Out(terminal)
    return InstallerReport(BuildUi(Ui(out=out, err=out, color=False), "qemu")), out


STEPS = [
    Progress("Detecting network hardware", 0, ""),
    Progress("Detecting network hardware", 5, "Detecting hardware, please wait..."),
    Progress("Installing the base system", 10, "Unpacking libc6..."),
    Progress("Installing the base system", 60, "Configuring apt..."),
    Dialog("!!", "Choose a mirror of the Debian archive", "Bad archive mirror", "An error."),
]


def test_without_a_terminal_each_new_step_is_one_line_and_the_dialog_names_its_step() -> None:
    report, out = _report(terminal=False)
    for seen in STEPS:
        report.show(seen)
    report.close()
    assert out.getvalue().splitlines() == [
        "==> qemu: Installer: Detecting network hardware",
        "==> qemu: Installer: Installing the base system",
        "==> qemu: The installer shows a dialog: [!!] Choose a mirror of the Debian archive: Bad archive"
        " mirror: An error. (installer step: Installing the base system)",
    ]
    assert report.step == "Installing the base system"
    message, _ = failure(STEPS[-1], Path("c.log"), report.step)  # type: ignore[arg-type]
    assert message.endswith("(installer step: Installing the base system)")


def test_on_a_terminal_a_status_line_shows_the_step_its_percent_and_what_it_does() -> None:
    report, out = _report(terminal=True)
    for seen in STEPS[:4]:
        report.show(seen)
    report.close()
    shown = out.getvalue()
    assert "Installer: Installing the base system" in shown  # the line for the new step
    assert "qemu: Installer: Installing the base system: Configuring apt..." in shown  # the status line
    assert "60%" in shown


def test_the_recorded_bad_mirror_install_shows_its_steps_then_the_dialog(tmp_path: Path) -> None:
    """The real console of d-i with a preseeded mirror on a closed port: the watch, fed the log in pieces
    as QEMU writes it, sees each step's progress window (even one shown for under a second), then the
    dialog, which names the last step."""
    data = BAD_MIRROR.read_bytes()
    log = tmp_path / "vm.console.log"
    watch = ConsoleWatch(log)
    seen: list[Dialog | Progress] = []
    for start in range(0, len(data), 512):
        with log.open("ab") as f:
            f.write(data[start : start + 512])
        seen += watch.poll()
    assert [(s.title, s.percent) for s in seen if isinstance(s, Progress)] == [
        ("Detecting network hardware", 0),
        ("Detecting link on ens3; please wait...", 0),
        ("Checking the Debian archive mirror", 0),  # drawn and erased within 1.5 kB of the log
    ]
    last = seen[-1]
    assert isinstance(last, Dialog) and last.heading == "Bad archive mirror", seen[-3:]
    assert last.title == "Choose a mirror of the Debian archive"
    assert not any(isinstance(s, Dialog) for s in seen[:-1])
    report, out = _report(terminal=False)
    for item in seen:
        report.show(item)
    assert out.getvalue().splitlines()[-1].endswith("(installer step: Checking the Debian archive mirror)")
