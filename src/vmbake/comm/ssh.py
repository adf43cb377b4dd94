"""The SSH communicator (paramiko): commands streamed line by line, files over SFTP or scp.

`connect()` makes one attempt with a short timeout and says precisely what went wrong (refused, no
banner, authentication failed, host key changed), so the connect step can poll quickly and report what
it last saw. The guest's host key is pinned at the first connection; any later connection of the same
build (a reconnect after a reboot) that shows another key is refused.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import logging
import os
import posixpath
import select
import shlex
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import paramiko

from vmbake.comm import DISCONNECTED, LineSink
from vmbake.comm import scp as scp_protocol
from vmbake.errors import BuildCancelled, VmbakeError
from vmbake.ui import ProgressHandle
from vmbake.units import go_duration

log = logging.getLogger("vmbake.comm.ssh")
# paramiko logs every failed try (with a traceback) at ERROR level; without a handler of its own, Python
# would print those to stderr while vmbake is simply waiting for the guest. They still reach -debug logs.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

ProgressFactory = Callable[[str, int], contextlib.AbstractContextManager[ProgressHandle]]
PROGRESS_MIN_BYTES = 8192


class ConnectError(VmbakeError):
    """One connection attempt failed; `seen` is the short reason shown when the wait times out."""

    def __init__(self, seen: str, message: str, hint: str | None = None, *, retry: bool = True) -> None:
        super().__init__(message, hint)
        self.seen = seen
        self.retry = retry


class HostKeyChanged(ConnectError):
    def __init__(self, address: str, pinned: str, shown: str) -> None:
        super().__init__(
            "host key changed",
            f"the SSH host key of {address} changed during the build: it was {_short(pinned)} at the first "
            f"connection and is now {_short(shown)}; refusing to connect",
            hint="another machine may be answering on this port; check that the VM is the one vmbake started",
            retry=False,
        )


def _short(key_line: str) -> str:
    parts = key_line.split()
    return f"{parts[0]} ...{parts[1][-12:]}" if len(parts) >= 2 else key_line


@dataclass
class SshTarget:
    """Where and how to log in."""

    host: str
    port: int
    username: str
    password: str = ""
    key: paramiko.PKey | None = None
    agent: bool = False
    keep_alive: float = 5.0
    read_write_timeout: float = 0.0  # ssh_read_write_timeout: drop a connection silent for this long
    transfer: str = "sftp"  # "sftp" (falls back to scp) or "scp"
    pinned_host_key: str = ""  # "ssh-ed25519 AAAA..." once known
    progress: ProgressFactory | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _open_transport(target: SshTarget, timeout: float, sock: socket.socket | None) -> paramiko.Transport:
    if sock is None:
        try:
            sock = socket.create_connection((target.host, target.port), timeout=timeout)
        except ConnectionRefusedError:
            raise ConnectError("connection refused", f"{target.address}: connection refused") from None
        except TimeoutError:
            raise ConnectError(
                "connect timeout", f"{target.address}: no answer within {timeout:.0f}s"
            ) from None
        except OSError as exc:
            raise ConnectError(exc.strerror or str(exc), f"{target.address}: {exc}") from None
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    transport.handshake_timeout = timeout
    transport.auth_timeout = timeout
    started = time.monotonic()
    try:
        transport.start_client(timeout=timeout)
    except (paramiko.SSHException, EOFError, OSError) as exc:
        transport.close()
        text = str(exc) or type(exc).__name__
        if "banner" not in text.lower():
            seen = f"handshake failed ({text})"
        elif "timed out" in text or time.monotonic() - started >= timeout * 0.9:
            seen = "banner timeout"
        else:
            # QEMU's port forward accepts at once, then closes when nothing listens in the guest yet.
            seen = "connection closed before the SSH banner (no SSH server in the guest yet)"
        raise ConnectError(seen, f"{target.address}: SSH handshake failed: {text}") from None
    if transport.host_key is None:  # start_client gave up waiting without an error of its own
        transport.close()
        seen = "key exchange timeout" if transport.remote_version else "banner timeout"
        raise ConnectError(seen, f"{target.address}: no SSH handshake within {timeout:.1f}s ({seen})")
    return transport


def _check_host_key(transport: paramiko.Transport, target: SshTarget) -> str:
    key = transport.get_remote_server_key()
    shown = f"{key.get_name()} {key.get_base64()}"
    if target.pinned_host_key and shown != target.pinned_host_key:
        transport.close()
        raise HostKeyChanged(target.address, target.pinned_host_key, shown)
    return shown


def _authenticate(transport: paramiko.Transport, target: SshTarget) -> None:
    tried: list[str] = []
    keys: list[paramiko.PKey] = [target.key] if target.key is not None else []
    if target.agent:
        keys += list(paramiko.Agent().get_keys())
    for key in keys:
        tried.append(f"key {key.get_name()}")
        with contextlib.suppress(paramiko.AuthenticationException):
            transport.auth_publickey(target.username, key)
            return
    if target.password:
        tried.append("password")
        try:
            transport.auth_password(target.username, target.password)
            return
        except paramiko.BadAuthenticationType as exc:
            if "keyboard-interactive" not in exc.allowed_types:
                tried[-1] = f"password (server allows only {', '.join(exc.allowed_types)})"
            else:
                with contextlib.suppress(paramiko.AuthenticationException):
                    transport.auth_interactive(
                        target.username, lambda _t, _i, prompts: [target.password for _p in prompts]
                    )
                    return
        except paramiko.AuthenticationException:
            pass
    transport.close()
    if not tried:
        raise ConnectError(
            "no credentials",
            "no SSH credentials to try",
            retry=False,
            hint="set ssh_password or ssh_private_key_file, or leave both empty for a temporary key",
        )
    raise ConnectError(
        "authentication failure",
        f"{target.address}: authentication as {target.username!r} failed (tried {', '.join(tried)})",
        hint="check ssh_username and the password or key; the guest must accept the key in authorized_keys",
    )


def connect(
    target: SshTarget, *, timeout: float = 10.0, sock: socket.socket | None = None
) -> SshCommunicator:
    """One connection attempt, on `sock` if given (already connected, such as one a BannerProbe found);
    raises ConnectError (with `.seen`) or HostKeyChanged."""
    transport = _open_transport(target, timeout, sock)
    try:
        shown = _check_host_key(transport, target)
        _authenticate(transport, target)
    except ConnectError:
        raise
    except (paramiko.SSHException, EOFError, OSError) as exc:
        transport.close()
        raise ConnectError(f"handshake failed ({exc})", f"{target.address}: {exc}") from None
    if target.keep_alive > 0:
        transport.set_keepalive(max(1, int(target.keep_alive)))
    comm = SshCommunicator(target, transport)
    if target.read_write_timeout > 0:
        comm.dropped = watch_liveness(transport, target.read_write_timeout, target.address)
    target.pinned_host_key = shown
    return comm


def watch_liveness(transport: paramiko.Transport, timeout: float, address: str) -> threading.Event:
    """ssh_read_write_timeout: close `transport` once the server leaves a request unanswered for `timeout`
    seconds. Packer sets a read and write deadline on the connection; paramiko's keep-alive asks for no
    answer, so a thread here asks (a global request that OpenSSH's sshd refuses at once) every few
    seconds. A closed transport ends the command under way as a disconnection, as in Packer, which
    is what a provisioner with expect_disconnect (a reboot) waits for. The event returned is set then."""
    interval = min(5.0, max(0.5, timeout / 3))
    dropped = threading.Event()

    def ask(done: threading.Event) -> None:
        with contextlib.suppress(Exception):  # a closed transport: the watch ends below
            transport.global_request("keepalive@openssh.com", wait=True)
        done.set()

    def watch() -> None:
        while transport.is_active():
            done = threading.Event()
            threading.Thread(target=ask, args=(done,), name="vmbake-ssh-liveness-ask", daemon=True).start()
            if not done.wait(timeout):
                log.info("no answer from %s for %.0fs (ssh_read_write_timeout): closing", address, timeout)
                dropped.set()
                transport.close()
                return
            time.sleep(interval)

    threading.Thread(target=watch, name="vmbake-ssh-liveness", daemon=True).start()
    return dropped


class _Lines:
    """Bytes in, whole lines out, as soon as each newline arrives."""

    def __init__(self, sink: LineSink) -> None:
        self.sink = sink
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""

    def feed(self, data: bytes) -> None:
        self.pending += self.decoder.decode(data)
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.sink(line.rstrip("\r"))

    def close(self) -> None:
        self.pending += self.decoder.decode(b"", final=True)
        if self.pending:
            self.sink(self.pending.rstrip("\r"))
            self.pending = ""


class SshCommunicator:
    """A live SSH connection to the guest (implements vmbake.comm.Communicator)."""

    def __init__(self, target: SshTarget, transport: paramiko.Transport) -> None:
        self.target = target
        self._transport = transport
        self._sftp: paramiko.SFTPClient | None = None
        self._no_sftp = target.transfer == "scp"
        self.cancel: threading.Event | None = None
        self.reconnect_timeout = 10.0
        self.dropped = threading.Event()  # set when ssh_read_write_timeout closed the connection

    @property
    def host_key(self) -> str:
        return self.target.pinned_host_key

    @property
    def uses_scp(self) -> bool:
        self._ensure()
        return self._sftp_client() is None

    def connected(self) -> bool:
        return self._transport.is_active()

    def _ensure(self) -> None:
        """Reconnect when the guest dropped the connection (a reboot), to the same pinned host key."""
        if self._transport.is_active():
            return
        self._sftp = None
        fresh = connect(self.target, timeout=self.reconnect_timeout)
        self._transport, self.dropped = fresh._transport, fresh.dropped

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
        self._ensure()
        try:
            chan = self._transport.open_session(timeout=30)
            if pty:
                chan.get_pty(term="vt100", width=200)
            chan.exec_command(command)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            log.debug("cannot start %r: %s", command, exc)
            return DISCONNECTED
        out, err = _Lines(on_stdout), _Lines(on_stderr)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                busy = False
                while chan.recv_ready():
                    out.feed(chan.recv(32768))
                    busy = True
                while chan.recv_stderr_ready():
                    err.feed(chan.recv_stderr(32768))
                    busy = True
                if busy:
                    continue
                if chan.exit_status_ready() or chan.closed or not self._transport.is_active():
                    break
                if self.cancel is not None and self.cancel.is_set():
                    raise BuildCancelled()
                if deadline is not None and time.monotonic() > deadline:
                    raise VmbakeError(
                        f"the command did not finish within {timeout:.0f}s: {command}",
                        hint="raise the provisioner's timeout, or find why the command hangs",
                    )
                select.select([chan], [], [], 0.5)
            # Output sent before the exit status may still sit in the buffers.
            while chan.recv_ready():
                out.feed(chan.recv(32768))
            while chan.recv_stderr_ready():
                err.feed(chan.recv_stderr(32768))
        finally:
            out.close()
            err.close()
            chan.close()
        status = chan.exit_status if chan.status_event.is_set() else -1
        if status < 0 and self.dropped.is_set():
            on_stderr(
                f"vmbake: no answer from {self.target.address} for "
                f"{go_duration(self.target.read_write_timeout)} (ssh_read_write_timeout): connection closed"
            )
        return DISCONNECTED if status < 0 else status

    # -- files ------------------------------------------------------------------------------------------
    def _sftp_client(self) -> paramiko.SFTPClient | None:
        if self._sftp is None and not self._no_sftp:
            try:
                self._sftp = paramiko.SFTPClient.from_transport(self._transport)
            except (paramiko.SSHException, EOFError) as exc:
                log.debug("no sftp subsystem (%s); using scp", exc)
                self._no_sftp = True
        return self._sftp

    @contextlib.contextmanager
    def _progress(self, name: str, size: int) -> Iterator[Callable[[int], None]]:
        if self.target.progress is None or size < PROGRESS_MIN_BYTES:
            yield lambda _n: None
            return
        with self.target.progress(name, size) as bar:
            yield lambda n: bar.advance(n)

    def _check(self, what: str, exc: Exception) -> VmbakeError:
        if isinstance(exc, VmbakeError):
            return exc
        if isinstance(exc, OSError) and exc.errno is not None:
            return VmbakeError(f"{what}: {os.strerror(exc.errno)}", hint="check the path and its permissions")
        return VmbakeError(f"{what}: {exc or type(exc).__name__}")

    def _put(self, f: BinaryIO, size: int, remote: str, mode: int, name: str) -> None:
        self._ensure()
        sftp = self._sftp_client()
        with self._progress(name, size) as advance:
            try:
                if sftp is not None:
                    done = [0]

                    def step(sent: int, _total: int) -> None:
                        advance(sent - done[0])
                        done[0] = sent

                    sftp.putfo(f, remote, file_size=size, callback=step, confirm=True)
                    sftp.chmod(remote, mode & 0o7777)
                else:
                    scp_protocol.upload(self._transport, f, size, remote, mode, advance)
            except (OSError, paramiko.SSHException, EOFError) as exc:
                raise self._check(f"upload to {remote} failed", exc) from None

    def upload(self, local: Path, remote: str, *, mode: int | None = None) -> None:
        st = local.stat()
        with local.open("rb") as f:
            self._put(f, st.st_size, remote, mode if mode is not None else st.st_mode & 0o777, local.name)

    def upload_bytes(self, data: bytes, remote: str, *, mode: int | None = None) -> None:
        name = posixpath.basename(remote)
        self._put(io.BytesIO(data), len(data), remote, 0o644 if mode is None else mode, name)

    def upload_dir(self, local: Path, remote: str) -> None:
        """Copy the contents of `local` into the directory `remote`, creating it (and its parents)."""
        self._ensure()
        remote = remote.rstrip("/") or "/"
        self.mkdir_p(remote)
        sftp = self._sftp_client()
        try:
            if sftp is None:
                scp_protocol.upload_dir(self._transport, local, remote)
                return
            for root, dirs, files in os.walk(local):
                rel = os.path.relpath(root, local)
                base = remote if rel == "." else posixpath.join(remote, *Path(rel).parts)
                for d in sorted(dirs):
                    path = posixpath.join(base, d)
                    with contextlib.suppress(OSError):
                        sftp.mkdir(path)
                    sftp.chmod(path, os.stat(os.path.join(root, d)).st_mode & 0o7777)
                for name in sorted(files):
                    src = os.path.join(root, name)
                    sftp.put(src, posixpath.join(base, name))
                    sftp.chmod(posixpath.join(base, name), os.stat(src).st_mode & 0o7777)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._check(f"upload of {local} to {remote} failed", exc) from None

    def mkdir_p(self, remote: str) -> None:
        """Create the guest's directory `remote` and its parents, as `mkdir -p` does.

        Over SFTP when the guest has it: no command is started, which under TCG saves a second or so of
        session start-up (login shell, PAM) per upload."""
        self._ensure()
        sftp = self._sftp_client()
        if sftp is None:
            self._run_shell(f"mkdir -p {shlex.quote(remote)}", f"cannot create {remote} in the guest")
            return
        path = posixpath.normpath(remote) if remote else "."
        missing: list[str] = []
        while True:
            try:
                mode = sftp.stat(path).st_mode or 0
            except FileNotFoundError:
                missing.append(path)
                parent = posixpath.dirname(path)
                if parent in (path, ""):
                    break
                path = parent
                continue
            except (OSError, paramiko.SSHException, EOFError) as exc:
                raise self._check(f"cannot create {remote} in the guest", exc) from None
            if not stat.S_ISDIR(mode):
                raise VmbakeError(f"cannot create {remote} in the guest: {path} is not a directory")
            break
        try:
            for directory in reversed(missing):
                sftp.mkdir(directory)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._check(f"cannot create {remote} in the guest", exc) from None

    def _run_shell(self, command: str, failure: str, timeout: float | None = None) -> None:
        """Run a file command for a guest without SFTP; a non-zero status raises `failure` with its output."""
        lines: list[str] = []
        status = self.run(command, on_stdout=lines.append, on_stderr=lines.append, timeout=timeout)
        if status != 0:
            raise VmbakeError(f"{failure}: {' '.join(lines) or status}")

    def remove(self, remote: list[str]) -> None:
        """Remove the guest's files `remote`; over SFTP when the guest has it, like mkdir_p."""
        self._ensure()
        sftp = self._sftp_client()
        if sftp is None:
            command = "rm -f " + " ".join(shlex.quote(path) for path in remote)
            self._run_shell(command, f"cannot remove {', '.join(remote)}", timeout=60)
            return
        for path in remote:
            try:
                sftp.remove(path)
            except FileNotFoundError:
                continue
            except (OSError, paramiko.SSHException, EOFError) as exc:
                raise self._check(f"cannot remove {path}", exc) from None

    def download(self, remote: str, local: Path) -> None:
        self._ensure()
        sftp = self._sftp_client()
        try:
            with local.open("wb") as f:
                if sftp is not None:
                    size = sftp.stat(remote).st_size or 0
                    with self._progress(posixpath.basename(remote), size) as advance:
                        done = [0]

                        def step(got: int, _total: int) -> None:
                            advance(got - done[0])
                            done[0] = got

                        sftp.getfo(remote, f, callback=step)
                else:
                    scp_protocol.download(self._transport, remote, f, lambda _n: None)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            with contextlib.suppress(OSError):
                local.unlink()
            raise self._check(f"download of {remote} failed", exc) from None

    def download_dir(self, remote: str, local: Path) -> None:
        """Copy the contents of the guest's directory `remote` into `local` (created if needed)."""
        self._ensure()
        local.mkdir(parents=True, exist_ok=True)
        sftp = self._sftp_client()
        try:
            if sftp is None:
                scp_protocol.download_dir(self._transport, remote.rstrip("/") or "/", local)
                return
            self._sftp_walk_get(sftp, remote.rstrip("/") or "/", local)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._check(f"download of {remote} failed", exc) from None

    def _sftp_walk_get(self, sftp: paramiko.SFTPClient, remote: str, local: Path) -> None:
        for attr in sftp.listdir_attr(remote):
            src = posixpath.join(remote, attr.filename)
            dst = local / attr.filename
            mode = attr.st_mode or 0
            if stat.S_ISDIR(mode):
                dst.mkdir(exist_ok=True)
                self._sftp_walk_get(sftp, src, dst)
            elif stat.S_ISREG(mode):
                sftp.get(src, str(dst))
                dst.chmod(mode & 0o777)

    def close(self) -> None:
        if self._sftp is not None:
            with contextlib.suppress(Exception):
                self._sftp.close()
            self._sftp = None
        self._transport.close()
