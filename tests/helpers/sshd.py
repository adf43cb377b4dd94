"""A real OpenSSH server on loopback for tests: host and client keys made per test, free port, own config.

Runs `sshd -D -e -f CONFIG -p PORT` as root (tests run as root). Key logins are as root with a key in a
test-owned authorized_keys file; password logins use a throwaway user made with useradd/chpasswd.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vmbake import procs

PASSWORD_USER = "vmbaketest"
PASSWORD = "s3cret pass'word"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_key(path: Path, kind: str = "ed25519", passphrase: str = "") -> Path:
    """An OpenSSH private key at `path` (public half at path.pub), made by ssh-keygen."""
    argv = ["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", "vmbake-test", "-f", str(path)]
    if kind == "rsa":
        argv[4:4] = ["-b", "2048"]
    procs.run(argv)
    return path


@dataclass
class Sshd:
    directory: Path
    port: int
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
            self.child.stop(grace=2)
            self.child = None

    def restart(self, *, new_host_key: bool = False) -> None:
        self.stop()
        if new_host_key:
            self.host_key.unlink()
            Path(str(self.host_key) + ".pub").unlink()
            make_key(self.host_key)
        self.start()

    def kill_sessions(self) -> int:
        """SIGKILL the per-connection sshd processes: the client sees its connection drop."""
        assert self.child is not None
        killed = 0
        for pid in _children(self.child.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        return killed


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
def running_sshd(directory: Path, *, sftp: bool = True) -> Iterator[Sshd]:
    """An sshd on a free loopback port, accepting `client_key` for root; stopped at the end."""
    directory.mkdir(parents=True, exist_ok=True)
    server = Sshd(directory, free_port(), sftp=sftp)
    make_key(server.host_key)
    make_key(server.client_key)
    server.authorize(Path(str(server.client_key) + ".pub"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def password_user() -> Iterator[tuple[str, str]]:
    """A throwaway local user with a known password; removed at the end."""
    procs.run(["userdel", "-r", PASSWORD_USER], check=False)
    procs.run(["useradd", "-m", "-s", "/bin/sh", PASSWORD_USER])
    try:
        procs.run(["chpasswd"], input=f"{PASSWORD_USER}:{PASSWORD}\n")
        yield PASSWORD_USER, PASSWORD
    finally:
        procs.run(["userdel", "-r", PASSWORD_USER], check=False)
