"""Reading d-i's screens from its serial console: dialogs, progress, the advice, the console watch.

The recorded console (tests/data/installer/early-command-failed.console.log) is the real serial output of
the Debian 12 netboot installer (debian-installer-12-netboot-amd64) booted under QEMU with
`auto=true priority=critical console=ttyS0` and a preseed whose early_command is
`echo vmbake-early-command-test; exit 3`, up to the dialog it then shows and waits on.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from vmbake.cli import main
from vmbake.installer.console_watch import ConsoleWatch, failure, installer_console
from vmbake.installer.dialogs import Dialog, InstallerScreen, Progress, advice, read_console, read_screen

RECORDED = Path(__file__).resolve().parents[1] / "data" / "installer" / "early-command-failed.console.log"
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
        "Installing the base system"
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
