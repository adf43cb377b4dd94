"""`vmbake run`, driven through tmux as a person would drive it, on the session's bootstrapped disk.

The disk has no root password, so a copy of it gets one in /etc/shadow (debugfs, no boot): that copy is
the IMAGE. One test logs in on the serial console, runs `uname -a` and powers off; another presses Ctrl-C
(which must reach the guest, not end vmbake) and then Ctrl-] before the login prompt; a third opens a shell
with -ssh-key (the disk's key) and ends it, which powers the VM off. Each asserts that
tmux's command ended with status 0, that the image's checksum is unchanged, and that no QEMU is left.
One boot each, one vCPU.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, qemu_pids
from tests.helpers.bootstrap_disk import BootstrappedDisk
from tests.helpers.report import edit_file_in_image

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

PASSWORD = "run-test-pw"
BOOT_TIMEOUT = 900.0  # TCG, one vCPU, a busy 2-core host


@dataclass(frozen=True)
class LoginImage:
    path: Path
    sha256: str


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def login_image(bootstrapped_disk: BootstrappedDisk, tmp_path_factory: pytest.TempPathFactory) -> LoginImage:
    """A copy of the bootstrapped disk whose root logs in with PASSWORD."""
    work = tmp_path_factory.mktemp("run-image")
    hashed = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", "vmbakerun", PASSWORD],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    def set_root_password(shadow: str) -> str:
        lines = [
            ":".join([f[0], hashed, *f[2:]]) if (f := line.split(":"))[0] == "root" else line
            for line in shadow.splitlines()
        ]
        assert any(line.startswith(f"root:{hashed}:") for line in lines), "no root line in /etc/shadow"
        return "\n".join(lines) + "\n"

    image = edit_file_in_image(
        bootstrapped_disk.image, work / "login.qcow2", "/etc/shadow", set_root_password, work
    )
    return LoginImage(image, sha256(image))


class Tmux:
    """A private tmux server (its own socket) with one session that runs one command."""

    def __init__(self, command: list[str]) -> None:
        self.socket = f"vmbake-run-test-{uuid.uuid4().hex[:8]}"
        # The command's exit status is written by a shell around it. tmux alone is not enough: in full
        # suite runs its server (3.3a) at times never reaped the ended command, which stayed a zombie
        # while the pane showed as dead with no status.
        self.status_dir = Path(tempfile.mkdtemp(prefix="run-test-status-"))
        self.status_file = self.status_dir / "status"
        wrapped = ["sh", "-c", f'"$@"; echo "$?" > {shlex.quote(str(self.status_file))}', "sh", *command]
        self.tmux(
            "new-session", "-d", "-s", "run", "-x", "200", "-y", "50", "-c", str(REPO), shlex.join(wrapped)
        )
        self.tmux("set-option", "-t", "run", "remain-on-exit", "on")  # keep the pane to read its end

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-t", "run", "-S", "-")

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "run", *keys)

    def wait_for(self, pattern: str, timeout: float = BOOT_TIMEOUT) -> re.Match[str]:
        """Polls the pane (twice a second) until `pattern` shows, or fails with what the pane shows."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.screen(), re.MULTILINE)
            if found:
                return found
            if self.dead() is not None or time.monotonic() > deadline:
                pytest.fail(f"{pattern!r} did not show; the pane:\n{self.screen()[-4000:]}")
            time.sleep(0.5)

    def dead(self) -> int | None:
        """The command's exit status once it ended, else None."""
        try:
            text = self.status_file.read_text()
        except FileNotFoundError:
            return None
        return int(text) if text.endswith("\n") else None  # else the shell is still writing it

    def wait_dead(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (status := self.dead()) is None:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"vmbake run did not end within {timeout:.0f}s; the pane:\n{self.screen()[-3000:]}\n"
                    f"its processes:\n{self.processes()}"
                )
            time.sleep(0.5)
        return status

    def processes(self) -> str:
        """What the pane's processes are doing: each one's state, kernel wait channel and, for Python, its
        stack (py-spy, when installed), so that a hang says where it is."""
        pane_pid = self.tmux("display-message", "-p", "-t", "run", "#{pane_pid}").strip()
        listing = subprocess.run(
            ["ps", "-e", "-o", "pid=,ppid=,sid=,stat=,wchan:24=,etime=,args="],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        rows = [row for row in listing.splitlines() if row.split()[2:3] == [pane_pid]]
        report = list(rows)
        for row in rows:
            pid = row.split()[0]
            with contextlib.suppress(OSError):
                report.append(f"-- /proc/{pid}/stack:\n" + Path(f"/proc/{pid}/stack").read_text())
            if "python" in row and shutil.which("py-spy"):
                dump = subprocess.run(
                    ["py-spy", "dump", "--pid", pid], capture_output=True, text=True, check=False, timeout=60
                )
                report.append(f"-- py-spy dump {pid}:\n{dump.stdout}{dump.stderr}")
        return "\n".join(report) or f"no process in the pane's session {pane_pid}"

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)
        shutil.rmtree(self.status_dir, ignore_errors=True)


@pytest.fixture
def run_in_tmux(no_qemu_left: None) -> Iterator[type[Tmux]]:
    started: list[Tmux] = []

    class Started(Tmux):
        def __init__(self, command: list[str]) -> None:
            super().__init__(command)
            started.append(self)

    yield Started
    for tmux in started:
        tmux.close()


def vmbake_run(image: Path) -> list[str]:
    return [sys.executable, "-m", "vmbake", "run", "-cpus", "1", str(image)]


def test_login_on_the_console_uname_and_poweroff(login_image: LoginImage, run_in_tmux: type[Tmux]) -> None:
    before = qemu_pids()
    tmux = run_in_tmux(vmbake_run(login_image.path))
    port = tmux.wait_for(r"ssh -p (\d+) root@127\.0\.0\.1", 60).group(1)
    tmux.wait_for(r"vmbake-test login: *$")
    tmux.send("root", "Enter")
    tmux.wait_for(r"Password: *$", 60)
    tmux.send(PASSWORD, "Enter")
    tmux.wait_for(r"root@vmbake-test:~# *$", 120)
    tmux.send("uname -a", "Enter")
    uname = tmux.wait_for(r"\nLinux vmbake-test \S+ .*x86_64 GNU/Linux", 60).group(0)
    assert "cloud-amd64" in uname
    tmux.send("poweroff", "Enter")
    assert tmux.wait_dead(300) == 0
    assert "The guest powered off." in tmux.screen()
    assert int(port) > 0
    assert not (qemu_pids() - before), "vmbake run left a QEMU running"
    assert sha256(login_image.path) == login_image.sha256, "the image was written"


def test_ctrl_c_goes_to_the_guest_and_ctrl_bracket_ends_the_vm(
    login_image: LoginImage, run_in_tmux: type[Tmux]
) -> None:
    before = qemu_pids()
    tmux = run_in_tmux(vmbake_run(login_image.path))
    tmux.wait_for(r"Linux version \S+")  # the guest's kernel writes to the terminal
    assert qemu_pids() - before, "no QEMU runs while the console shows the boot"
    tmux.send("C-c")  # raw terminal: a byte for the guest, vmbake goes on
    tmux.send("C-]")
    # Ctrl-C ending vmbake would be status 130 and "Error: interrupted". The wait is long for a busy host:
    # in a CI run beside two other guest tests, stopping QEMU took over 60 s.
    assert tmux.wait_dead(300) == 0
    screen = tmux.screen()
    assert "Ctrl-]: stopping the VM." in screen and "interrupted" not in screen
    assert not (qemu_pids() - before), "vmbake run left a QEMU running"
    assert sha256(login_image.path) == login_image.sha256, "the image was written"
    assert not list(Path(tempfile.gettempdir()).glob("vmbake-run-*/overlay.qcow2")), (
        "an overlay was left behind"
    )


def test_ssh_key_opens_a_shell_and_its_end_powers_off(
    login_image: LoginImage, bootstrapped_disk: BootstrappedDisk, run_in_tmux: type[Tmux]
) -> None:
    before = qemu_pids()
    key = str(bootstrapped_disk.private_key)
    tmux = run_in_tmux([*vmbake_run(login_image.path)[:-1], "-ssh-key", key, str(login_image.path)])
    tmux.wait_for(r"root@vmbake-test:~# *$")
    tmux.send("echo logged-in-over-$(echo $SSH_CONNECTION | cut -d' ' -f3)", "Enter")
    tmux.wait_for(r"^logged-in-over-10\.0\.2\.15\s*$", 60)  # the guest's SLIRP address: this is SSH
    tmux.send("exit", "Enter")
    status = tmux.wait_dead(600)  # an ACPI power-off under TCG on a busy host
    assert status == 0, tmux.screen()[-3000:]
    assert "Powering off the VM..." in tmux.screen()
    assert not (qemu_pids() - before), "vmbake run left a QEMU running"
    assert sha256(login_image.path) == login_image.sha256, "the image was written"
