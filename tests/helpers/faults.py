"""Fault injection for the reliability suite: vmbake run as a real subprocess, guests that misbehave,
and checks of what a build leaves behind (processes, temporary files, output directories).

- `VmbakeRun` starts `python -m vmbake build ...` in its own session (so SIGINT to its process group is a
  terminal's Ctrl-C), with a private TMPDIR, and records its output as it arrives.
- `hanging_initramfs` is the tiny guest's initramfs with one change: after printing its marker, /init
  calls pause() instead of powering off, so the VM never shuts down and never answers SSH.
- `procs_with_argv` finds processes by a unique string in their argv (a build's vm_name), and
  `descendants` walks /proc from a PID; neither looks at other tests' QEMUs.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from tests.helpers.guests import initramfs

REPO = Path(__file__).resolve().parents[2]

# In guests.init_elf: "mov eax, 169 (reboot)" becomes "mov eax, 34 (pause)": the guest idles forever.
_REBOOT = b"\xb8\xa9\x00\x00\x00"
_PAUSE = b"\xb8\x22\x00\x00\x00"


def hanging_initramfs(path: Path, marker: str = "VMBAKE-HANGING-GUEST") -> Path:
    """An initramfs whose /init prints `marker` on the console and then waits forever (no power-off)."""
    data = initramfs(marker)
    assert data.count(_REBOOT) == 1, "the tiny guest's machine code changed; update hanging_initramfs"
    path.write_bytes(data.replace(_REBOOT, _PAUSE))
    return path


def procs_with_argv(needle: str) -> list[int]:
    """PIDs of live processes whose command line contains `needle` (zombies excluded)."""
    found = []
    raw = needle.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if raw in (entry / "cmdline").read_bytes() and _state(entry) != "Z":
                found.append(int(entry.name))
    return found


def _state(entry: Path) -> str:
    return (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]


def descendants(pid: int) -> list[int]:
    """Live descendants of `pid` (children, grandchildren, ...)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def wait_gone(needle: str, timeout: float = 15.0) -> list[int]:
    """Poll until no process has `needle` in its argv; returns those still there at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        left = procs_with_argv(needle)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def kill_all(pids: Sequence[int]) -> None:
    """Last-resort cleanup in a test's finally: SIGKILL exactly these PIDs."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def files_under(path: Path) -> list[str]:
    """Every entry below `path`, relative, sorted (the port lock directory is shared state, not a leak)."""
    if not path.exists():
        return []
    return sorted(
        str(p.relative_to(path))
        for p in path.rglob("*")
        if not p.relative_to(path).parts[0].startswith("vmbake-ports-")
    )


class VmbakeRun:
    """`python -m vmbake ARGS` in its own session, with its output collected line by line."""

    def __init__(
        self,
        args: Sequence[str],
        cwd: Path,
        env: dict[str, str] | None = None,
        *,
        stdin: int = subprocess.DEVNULL,
    ) -> None:
        self.cwd = cwd
        self.tmp = cwd / "tmp"
        self.tmp.mkdir(exist_ok=True)
        full_env = {**os.environ, "TMPDIR": str(self.tmp), "PYTHONPATH": str(REPO / "src")}
        full_env.setdefault("XDG_RUNTIME_DIR", "/tmp")  # port locks shared with every other vmbake here
        full_env.pop("VMBAKE_LOG", None)
        full_env.pop("PACKER_LOG", None)
        full_env.update(env or {})
        self._text = ""
        self._cursor = 0
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vmbake", *args],
            cwd=cwd,
            env=full_env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        # Raw chunks, not lines: a -debug prompt waits for input without ending its line.
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            with self._cond:
                self._text += chunk.decode(errors="replace")
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def lines(self) -> list[str]:
        with self._cond:
            return self._text.splitlines()

    @property
    def output(self) -> str:
        with self._cond:
            return self._text

    def wait_for(self, pattern: str, timeout: float = 120.0) -> str:
        """The next output (after what earlier calls matched) matching the regex `pattern`, as the line it
        is on; fails if vmbake exits or time runs out."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = regex.search(self._text, self._cursor)
                if found:
                    self._cursor = found.end()
                    start = self._text.rfind("\n", 0, found.start()) + 1
                    end = self._text.find("\n", found.end())
                    return self._text[start : end if end >= 0 else len(self._text)]
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"vmbake exited before {pattern!r}:\n{self._text}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"nothing matching {pattern!r} in {timeout}s:\n{self._text}")
                self._cond.wait(min(left, 0.2))

    def signal_group(self, sig: int) -> None:
        """What a terminal does on Ctrl-C: signal the whole foreground process group."""
        os.killpg(self.proc.pid, sig)

    def finish(self, timeout: float = 120.0) -> tuple[int, str]:
        """Exit status and whole output; kills the process group if it does not end in time."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self._reader.join(5)
            raise AssertionError(f"vmbake did not exit within {timeout}s:\n{self.output}") from None
        self._reader.join(10)
        return code, self.output

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def error_lines(output: str) -> list[str]:
    """The lines that say why the build failed ("--> NAME: ...", "Error: ...")."""
    return [line for line in output.splitlines() if line.startswith(("--> ", "Error: "))]
