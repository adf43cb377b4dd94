"""A real OpenSSH server on loopback for tests: host and client keys made per test, free port, own config.

Runs `sshd -D -e -f CONFIG -p PORT` as root (tests run as root). Logins (key and password) are as a
throwaway user made with useradd/chpasswd, whose key sits in a test-owned authorized_keys file.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vmbake import procs

PASSWORD = "s3cret pass'word"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_key(path: Path, kind: str = "ed25519", passphrase: str = "") -> Path:
    """An OpenSSH private key at `path` (public half at path.pub), made by ssh-keygen."""
    argv = ["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", "vmbake-test", "-f", str(path)]
    if kind == "rsa":
        argv[4:4] = ["-b", "1024"]  # the smallest size sshd accepts: fast to make
    if passphrase:
        argv[4:4] = ["-a", "1"]  # one KDF round: the tests stay fast
    procs.run(argv)
    return path


@dataclass
class Sshd:
    directory: Path
    port: int
    user: str
    sftp: bool = True
    host_key: Path = field(init=False)
    client_key: Path = field(init=False)
    child: procs.Child | None = None

    def __post_init__(self) -> None:
        self.host_key = self.directory / "host_ed25519"
        self.client_key = self.directory / "client_ed25519"

    @property
    def config(self) -> Path:
        return self.directory / "sshd_config"

    @property
    def log(self) -> Path:
        return self.directory / "sshd.log"

    def authorize(self, public_key_file: Path) -> None:
        with (self.directory / "authorized_keys").open("a") as f:
            f.write(public_key_file.read_text().strip() + "\n")

    def host_key_line(self) -> str:
        kind, blob = Path(str(self.host_key) + ".pub").read_text().split()[:2]
        return f"{kind} {blob}"

    def write_config(self) -> None:
        lines = [
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"PidFile {self.directory / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.directory / 'authorized_keys'}",
            "PermitRootLogin yes",
            "PasswordAuthentication yes",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "LogLevel ERROR",
            "MaxStartups 100",
        ]
        if self.sftp:
            lines.append("Subsystem sftp internal-sftp")
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.write_config()
        log = self.log.open("ab")
        try:
            argv = ["sshd", "-D", "-e", "-f", str(self.config), "-p", str(self.port)]
            self.child = procs.spawn(argv, stdout=log, stderr=log)
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not self.child.running():
                raise RuntimeError(f"sshd exited: {self.log.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5) as s:
                s.settimeout(2)
                if s.recv(64).startswith(b"SSH-"):
                    return
            time.sleep(0.02)
        raise RuntimeError("sshd did not answer within 10s")

    def stop(self) -> None:
        if self.child is not None:
            self.kill_sessions()
            self.child.stop(grace=2)
            self.child = None

    def restart(self, *, new_host_key: bool = False) -> None:
        self.stop()
        if new_host_key:
            self.host_key.unlink()
            Path(str(self.host_key) + ".pub").unlink()
            make_key(self.host_key)
        self.start()

    def freeze_sessions(self) -> int:
        """SIGSTOP the per-connection sshd processes (and their commands): the connection stays open but
        nothing answers on it, as with a guest that hung. kill_sessions() ends them."""
        assert self.child is not None
        frozen = 0
        for pid in _descendants(self.child.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                frozen += 1
        return frozen

    def kill_sessions(self) -> int:
        """SIGKILL the per-connection sshd processes: the client sees its connection drop."""
        assert self.child is not None
        killed = 0
        for pid in _descendants(self.child.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        return killed


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = _children(todo.pop())
        found += kids
        todo += kids
    return found


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@contextlib.contextmanager
def running_sshd(user: str, *, sftp: bool = True) -> Iterator[Sshd]:
    """An sshd on a free loopback port that accepts `client_key` for `user`; stopped and removed at the end.

    Its directory is world-readable (0755) because sshd reads authorized_keys as the logging-in user."""
    directory = Path(tempfile.mkdtemp(prefix="vmbake-sshd-"))
    directory.chmod(0o755)
    server = Sshd(directory, free_port(), user, sftp=sftp)
    try:
        make_key(server.host_key)
        make_key(server.client_key)
        server.authorize(Path(str(server.client_key) + ".pub"))
        (directory / "authorized_keys").chmod(0o644)
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


_USER_SERIAL = itertools.count()


def home_of(user: str) -> str:
    """The user's home directory, as the system has it (useradd's base directory may not be /home)."""
    return pwd.getpwnam(user).pw_dir


@contextlib.contextmanager
def throwaway_user() -> Iterator[tuple[str, str]]:
    """A throwaway local user (login shell /bin/sh, known password), unique to this process; removed at the end.

    Tests log in as this user rather than root so that root's shell start-up files play no part."""
    name = f"vmbt{os.getpid() % 1000000}{next(_USER_SERIAL)}"
    procs.run(["userdel", "-f", "-r", name], check=False)
    procs.run(["useradd", "-m", "-s", "/bin/sh", name])
    try:
        procs.run(["chpasswd"], input=f"{name}:{PASSWORD}\n")
        yield name, PASSWORD
    finally:
        # A command of a session whose sshd the test killed lives on, reparented to init: end it with
        # the user. -f: an sshd session of the test may still be on its way out.
        procs.run(["pkill", "-KILL", "-u", name], check=False)
        # userdel -r takes only the home directory. What the user left in the shared temporary directories
        # (scripts whose clean-up a test skipped or cut off) would keep its name under a uid that a later
        # user may not get, and a later test's random script_NNNN.sh could then not be written.
        procs.run(["find", "/tmp", "/var/tmp", "-xdev", "-user", name, "-delete"], check=False)
        procs.run(["userdel", "-f", "-r", name], check=False)


class Recorder:
    """A text stream that keeps each written line with the time it arrived."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        now = time.monotonic()
        self.lines.extend((now, line) for line in text.splitlines())
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    @property
    def text(self) -> str:
        return "\n".join(line for _t, line in self.lines)


def make_ctx(
    work_dir: Path, *, provisioners: list[object] | None = None, **config: object
) -> tuple[object, Recorder, Recorder]:
    """A BuildContext named 'qemu' with the given QemuConfig keys, and its recorded stdout and stderr."""
    from types import SimpleNamespace

    from vmbake.config.qemu import QemuConfig
    from vmbake.state import BuildContext, BuildState, Options
    from vmbake.ui import BuildUi, Ui

    out, err = Recorder(), Recorder()
    ui = Ui(out=out, err=err, color=False)  # type: ignore[arg-type]
    work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ctx = BuildContext(
        name="qemu",
        builder_type="qemu",
        config=QemuConfig(**config),  # type: ignore[arg-type]
        template=SimpleNamespace(),  # type: ignore[arg-type]
        ui=BuildUi(ui, "qemu"),
        options=Options(),
        provisioners=list(provisioners or []),  # type: ignore[arg-type]
        state=BuildState(work_dir=work_dir),
    )
    return ctx, out, err
