"""The one door for external processes: qemu, qemu-img, mmdebstrap, ssh-keygen and friends.

Every child gets stdin from /dev/null unless input is given, its exact argv is logged at debug level, and
a child is killed on any exception (Ctrl-C included). Long-running children (`spawn`) live in their own
process group and receive SIGKILL when vmbake dies, even by SIGKILL (Linux parent-death signal).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from vmbake.errors import BuildCancelled, VmbakeError

log = logging.getLogger("vmbake.procs")

# Which Debian package brings each tool, for the "install X" hint.
TOOL_PACKAGES: dict[str, str] = {
    "qemu-img": "qemu-utils",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-system-i386": "qemu-system-x86",
    "qemu-system-aarch64": "qemu-system-arm",
    "mmdebstrap": "mmdebstrap",
    "ssh-keygen": "openssh-client",
    "sshd": "openssh-server",
    "xorriso": "xorriso",
    "sfdisk": "fdisk",
    "mkfs.ext4": "e2fsprogs",
    "mkfs.vfat": "dosfstools",
    "mkswap": "util-linux",
    "partx": "util-linux",
    "mcopy": "mtools",
    "mmd": "mtools",
    "losetup": "mount",
    "gpgv": "gpgv",
    "sqv": "sqv",
    "dpkg-deb": "dpkg",
    "grub-install": "grub2-common",
    "tar": "tar",
    "zstd": "zstd",
    "cpio": "cpio",
}

_PR_SET_PDEATHSIG = 1
_live: set[Child] = set()
_live_lock = threading.Lock()
# The cancel event of the build running on each thread (see `cancelled_by`): `run` polls it, so a
# build on a worker thread, where no signal can interrupt a wait, still stops its command on Ctrl-C.
_thread_cancel = threading.local()
CANCEL_POLL = 0.2  # seconds between two looks at the cancel event while a command runs


@contextlib.contextmanager
def cancelled_by(event: threading.Event | None) -> Iterator[None]:
    """Commands run by this thread inside the block stop (and raise BuildCancelled) once `event` is set;
    None: they run to their end (a cleanup's commands, after the cancel)."""
    previous = getattr(_thread_cancel, "event", None)
    _thread_cancel.event = event
    try:
        yield
    finally:
        _thread_cancel.event = previous


def _cancel_event() -> threading.Event | None:
    event: threading.Event | None = getattr(_thread_cancel, "event", None)
    return event


def which(tool: str) -> str:
    """The absolute path of `tool`, or an error naming the Debian package that brings it."""
    if os.sep in tool:
        if os.access(tool, os.X_OK):
            return tool
        raise VmbakeError(f"{tool} is not an executable file", hint="check the path in the template")
    found = shutil.which(tool)
    if found is None:
        # Tools such as sshd and mkfs live in sbin, which is not always on a user's PATH.
        for extra in ("/usr/sbin", "/sbin"):
            candidate = os.path.join(extra, tool)
            if os.access(candidate, os.X_OK):
                return candidate
        package = TOOL_PACKAGES.get(tool)
        hint = f"install it: apt-get install {package}" if package else f"install {tool} and put it on PATH"
        raise VmbakeError(f"{tool} was not found in PATH", hint=hint)
    return found


def _child_setup(parent_pid: int) -> Callable[[], None]:
    def setup() -> None:
        # Die with vmbake: the kernel sends SIGKILL when the parent goes away, even when it was SIGKILLed.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return setup


def _tail(text: str, lines: int = 12) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    capture: bool = True,
    input: str | bytes | None = None,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    on_line: Callable[[str], None] | None = None,
    what: str | None = None,
    hint: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a short-lived command to completion.

    With `on_line`, stdout and stderr are merged and each line is passed to it as it arrives (the text is
    still returned in `stdout`). A non-zero exit raises VmbakeError naming the command and its last output.
    """
    argv = [str(a) for a in argv]
    argv[0] = which(argv[0])
    log.debug("run: %s", shlex.join(argv))
    text_input = input if isinstance(input, str) or input is None else None
    stdin: int | None = subprocess.PIPE if input is not None else subprocess.DEVNULL
    full_env = None if env is None else {**os.environ, **env}
    proc = subprocess.Popen(
        argv,
        stdin=stdin,
        stdout=subprocess.PIPE if (capture or on_line) else None,
        stderr=(subprocess.STDOUT if on_line else subprocess.PIPE) if (capture or on_line) else None,
        text=isinstance(input, str) or input is None,
        env=full_env,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=_child_setup(os.getpid()),
    )
    try:
        if on_line is not None:
            stdout, stderr = _stream_lines(proc, argv, input, on_line, timeout), ""
        else:
            stdout, stderr = _communicate(proc, text_input if text_input is not None else input, timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise VmbakeError(
            f"{what or os.path.basename(argv[0])} did not finish within {timeout:.0f}s",
            hint=hint or "see the command with -debug and run it by hand",
        )
    except BaseException:
        _kill_group(proc)
        raise
    result = subprocess.CompletedProcess(argv, proc.returncode, stdout or "", stderr or "")
    if check and proc.returncode != 0:
        raise process_error(result, what=what, hint=hint)
    return result


def _slices(timeout: float | None) -> Iterator[float | None]:
    """Wait slices of at most CANCEL_POLL seconds until `timeout`; between two, raise BuildCancelled
    if this thread's build was cancelled. Ends (the caller then times out) once the deadline passed."""
    cancel = _cancel_event()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        if cancel is None:
            yield left
        elif left is None or left > 0:
            yield CANCEL_POLL if left is None else min(CANCEL_POLL, left)
        else:
            return
        if cancel is not None and cancel.is_set():
            raise BuildCancelled()
        if deadline is not None and time.monotonic() >= deadline:
            return


def _communicate(proc: subprocess.Popen[Any], input: Any, timeout: float | None) -> tuple[Any, Any]:
    """proc.communicate(), in slices so that a cancel is seen (communicate may be called again after a
    timeout without losing output; the input goes with the first call only)."""
    first = True
    for wait in _slices(timeout):
        try:
            return proc.communicate(input=input if first else None, timeout=wait)
        except subprocess.TimeoutExpired:
            first = False
    raise subprocess.TimeoutExpired(proc.args, timeout or 0)


def _stream_lines(
    proc: subprocess.Popen[Any],
    argv: list[str],
    input: str | bytes | None,
    on_line: Callable[[str], None],
    timeout: float | None,
) -> str:
    """Pass each output line to `on_line` as it arrives; the deadline holds even when the child is silent."""
    assert proc.stdout is not None
    collected: list[str] = []
    stream = proc.stdout

    def pump() -> None:
        for line in stream:
            collected.append(line)
            on_line(line.rstrip("\n"))

    if input is not None and proc.stdin is not None:
        proc.stdin.write(input)
        proc.stdin.close()
    reader = threading.Thread(target=pump, name="vmbake-output", daemon=True)
    reader.start()
    for wait in _slices(timeout):
        reader.join(wait)
        if not reader.is_alive():
            break
    if reader.is_alive():
        raise subprocess.TimeoutExpired(argv, timeout or 0)
    proc.wait()
    return "".join(collected)


def process_error(
    result: subprocess.CompletedProcess[Any], *, what: str | None = None, hint: str | None = None
) -> VmbakeError:
    """One clear error for a failed command: its name, how it ended, and its last lines of output."""
    name = what or os.path.basename(str(result.args[0]))
    code = result.returncode
    how = f"was killed by signal {-code}" if code < 0 else f"failed with exit status {code}"
    out = result.stderr if isinstance(result.stderr, str) else ""
    if not out.strip() and isinstance(result.stdout, str):
        out = result.stdout
    detail = _tail(out)
    message = f"{name} {how}" + (f":\n{detail}" if detail else "")
    return VmbakeError(message, hint=hint or f"the command was: {shlex.join(str(a) for a in result.args)}")


def _kill_group(proc: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


class Child:
    """A long-running child (QEMU, an HTTP helper): its own process group, killed with vmbake.

    Use it as a context manager, or call `stop()`; a Child that is never stopped shows up in
    `live_children()` so that a leak is visible rather than silent.
    """

    def __init__(self, argv: Sequence[str], proc: subprocess.Popen[Any]) -> None:
        self.argv = list(argv)
        self.proc = proc
        self.pid = proc.pid
        self.thread = threading.get_ident()  # the spawning thread: its build owns this child

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit status, or None if still running after `timeout` seconds."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._forget()
        return code

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM the group, then SIGKILL after `grace` seconds. Safe to call twice."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=10)
        else:
            # The leader is gone; make sure nothing else in its group lingers.
            self.signal(signal.SIGKILL)
        self._forget()
        return self.proc.returncode

    def _forget(self) -> None:
        with _live_lock:
            _live.discard(self)


def spawn(
    argv: Sequence[str],
    *,
    stdout: IO[Any] | int | None = subprocess.DEVNULL,
    stderr: IO[Any] | int | None = subprocess.PIPE,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    pass_fds: Sequence[int] = (),
) -> Child:
    """Start a long-running child. Call from a thread that outlives it (the parent-death signal is
    tied to the spawning thread)."""
    argv = [str(a) for a in argv]
    argv[0] = which(argv[0])
    log.debug("spawn: %s", shlex.join(argv))
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env=None if env is None else {**os.environ, **env},
        cwd=cwd,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
        preexec_fn=_child_setup(os.getpid()),
    )
    child = Child(argv, proc)
    with _live_lock:
        _live.add(child)
    return child


def interactive(argv: Sequence[str]) -> int:
    """Run a program on the user's terminal (an interactive `ssh`) and return its exit status.

    Unlike `run` and `spawn`, the child keeps vmbake's terminal and process group, so that it can read
    the keyboard and own the terminal's modes; it still dies with vmbake, and is killed on any exception."""
    argv = [str(a) for a in argv]
    argv[0] = which(argv[0])
    log.debug("interactive: %s", shlex.join(argv))
    proc = subprocess.Popen(argv, preexec_fn=_child_setup(os.getpid()))
    try:
        return proc.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(Exception):
            proc.wait(timeout=10)
        raise


def live_children() -> list[Child]:
    with _live_lock:
        return [c for c in _live if c.running()]


def stop_all() -> None:
    """Stop every child still alive: the last line of defence on the way out."""
    for child in live_children():
        child.stop(grace=2.0)


def stop_own() -> None:
    """Stop every child this thread spawned and left running: the end of one build, while builds on
    other threads go on."""
    me = threading.get_ident()
    for child in live_children():
        if child.thread == me:
            child.stop(grace=2.0)


@contextlib.contextmanager
def spawned(argv: Sequence[str], **kwargs: Any) -> Iterator[Child]:
    child = spawn(argv, **kwargs)
    try:
        yield child
    finally:
        child.stop()
