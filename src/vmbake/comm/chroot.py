"""The chroot communicator: commands and files in a mounted image tree, at the host's native speed.

It serves the debian-bootstrap builder's `provision_stage = "tree"`: the provisioners and the shutdown
command run in the image before its first boot, through the same interface as the SSH communicator
(implements vmbake.comm.Communicator), so the provisioners do not know the difference.

Every operation runs inside the chroot (`chroot ROOT /bin/sh -c ...`), so guest paths are resolved as the
image sees them: an absolute symlink in the image points into the image, never at the host. Files move
through the chroot's own `cat` and `tar` (both are Essential in Debian). Commands get a clean
environment (root's login defaults plus the builder's VMBAKE_* variables), not the host's.
"""

from __future__ import annotations

import os
import selectors
import shlex
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from vmbake import procs
from vmbake.comm import LineSink
from vmbake.comm.ssh import _Lines
from vmbake.errors import BuildCancelled, VmbakeError

GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What a root login over SSH would give a command, minus what only a session has.
BASE_ENV = {
    "HOME": "/root",
    "USER": "root",
    "LOGNAME": "root",
    "SHELL": "/bin/sh",
    "PATH": GUEST_PATH,
    "LANG": "C.UTF-8",
    "TERM": "dumb",
}
# The command starts in root's home, as an SSH command does.
_START = 'cd "$HOME" 2>/dev/null || cd /; exec /bin/sh -c "$1"'
_DRAIN_WAIT = 0.2  # seconds to keep reading after the command ended (a daemon it left may hold the pipes)


def chroot_argv(root: Path, env: Mapping[str, str], command: str) -> list[str]:
    """The argv that runs `command` with /bin/sh in the chroot `root`, with exactly `env` (pure)."""
    assignments = [f"{k}={v}" for k, v in {**BASE_ENV, **env}.items()]
    return ["env", "-i", *assignments, "chroot", str(root), "/bin/sh", "-c", _START, "sh", command]


class ChrootCommunicator:
    """Runs commands and moves files in the image tree mounted at `root` (see the module docstring)."""

    def __init__(self, root: Path, env: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.env = dict(env or {})
        self.cancel: threading.Event | None = None

    def argv(self, command: str) -> list[str]:
        return chroot_argv(self.root, self.env, command)

    # -- commands ----------------------------------------------------------------------------------------
    def run(
        self,
        command: str,
        *,
        on_stdout: LineSink,
        on_stderr: LineSink,
        pty: bool = False,
        timeout: float | None = None,
    ) -> int:
        """Run `command` in the chroot, streaming stdout and stderr line by line; its exit status.

        `pty` is accepted for the interface and ignored: a chroot command has no terminal to ask for."""
        child = procs.spawn(self.argv(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert child.proc.stdout is not None and child.proc.stderr is not None
        sinks = {child.proc.stdout.fileno(): _Lines(on_stdout), child.proc.stderr.fileno(): _Lines(on_stderr)}
        deadline = None if timeout is None else time.monotonic() + timeout
        ended_at: float | None = None
        try:
            with selectors.DefaultSelector() as selector:
                for fd in sinks:
                    os.set_blocking(fd, False)
                    selector.register(fd, selectors.EVENT_READ)
                while selector.get_map():
                    for key, _ in selector.select(0.1):
                        fd = int(key.fd)
                        data = os.read(fd, 65536)
                        if data:
                            sinks[fd].feed(data)
                        else:
                            selector.unregister(fd)
                    if child.returncode is not None:
                        ended_at = ended_at or time.monotonic()
                        if time.monotonic() - ended_at > _DRAIN_WAIT:
                            break  # something the command started in the background still holds the pipes
                    if self.cancel is not None and self.cancel.is_set():
                        raise BuildCancelled()
                    if deadline is not None and time.monotonic() > deadline:
                        raise VmbakeError(
                            f"the command did not finish within {timeout:.0f}s: {command}",
                            hint="raise the provisioner's timeout, or find why the command hangs",
                        )
            status = child.wait()
        finally:
            for sink in sinks.values():
                sink.close()
            child.stop(grace=2.0)
            child.proc.stdout.close()
            child.proc.stderr.close()
        assert status is not None
        return status if status >= 0 else 128 - status

    def _shell(self, script: str, *args: str, data: bytes | None = None, what: str) -> bytes:
        """Run a file operation's `script` in the chroot, with `args` as "$@" and `data` on stdin; its stdout."""
        command = f"set -- {' '.join(shlex.quote(a) for a in args)}; {script}"
        status, out, err = _binary(self.argv(command), data)
        if status != 0:
            detail = err.decode(errors="replace").strip().splitlines()
            raise VmbakeError(f"{what}: {detail[-1] if detail else f'exit status {status}'}")
        return out

    # -- files ------------------------------------------------------------------------------------------
    def upload(self, local: Path, remote: str, *, mode: int | None = None) -> None:
        try:
            data = local.read_bytes()
            st_mode = local.stat().st_mode
        except OSError as exc:
            raise VmbakeError(f"upload of {local} failed: {exc.strerror}") from None
        self.upload_bytes(data, remote, mode=mode if mode is not None else st_mode & 0o777)

    def upload_bytes(self, data: bytes, remote: str, *, mode: int | None = None) -> None:
        chmod = f"{(0o644 if mode is None else mode) & 0o7777:o}"
        self._shell(
            'cat > "$1" && chmod "$2" "$1"', remote, chmod, data=data, what=f"upload to {remote} failed"
        )

    def upload_dir(self, local: Path, remote: str) -> None:
        """Copy the contents of `local` into the directory `remote`, creating it (and its parents)."""
        remote = remote.rstrip("/") or "/"
        status, packed, err = _binary(["tar", "-C", str(local), "--owner=0", "--group=0", "-cf", "-", "."])
        if status != 0:
            raise VmbakeError(f"upload of {local} failed: {err.decode(errors='replace').strip()}")
        self._shell('mkdir -p "$1" && tar -C "$1" -xpf -', remote, data=packed,
                    what=f"upload of {local} to {remote} failed")  # fmt: skip

    def mkdir_p(self, remote: str) -> None:
        self._shell('mkdir -p "$1"', remote, what=f"cannot create {remote} in the image")

    def remove(self, remote: list[str]) -> None:
        if remote:
            self._shell('rm -f "$@"', *remote, what=f"cannot remove {', '.join(remote)}")

    def download(self, remote: str, local: Path) -> None:
        data = self._shell('cat "$1"', remote, what=f"download of {remote} failed")
        local.write_bytes(data)

    def download_dir(self, remote: str, local: Path) -> None:
        """Copy the contents of the image's directory `remote` into `local` (created if needed)."""
        packed = self._shell(
            'tar -C "$1" -cf - .', remote.rstrip("/") or "/", what=f"download of {remote} failed"
        )
        local.mkdir(parents=True, exist_ok=True)
        status, _, err = _binary(["tar", "-C", str(local), "--no-same-owner", "-xf", "-"], packed)
        if status != 0:
            raise VmbakeError(f"download of {remote} failed: {err.decode(errors='replace').strip()}")

    def close(self) -> None:
        """Nothing stays open between commands."""


def _binary(argv: list[str], data: bytes | None = None) -> tuple[int, bytes, bytes]:
    """(status, stdout, stderr) of a short command fed `data`, in bytes, through the process door."""
    result = procs.run(argv, input=data if data is not None else b"", check=False, timeout=600)
    # Binary input makes procs.run read bytes; an empty output comes back as "".
    out: object = result.stdout
    err: object = result.stderr
    return (
        result.returncode,
        out if isinstance(out, bytes) else str(out).encode(),
        err if isinstance(err, bytes) else str(err).encode(),
    )
