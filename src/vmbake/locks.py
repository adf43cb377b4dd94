"""Advisory file locks (flock) that two vmbake processes respect: cache downloads and port choices.

The lock file is removed on release without a race: a waiter that wakes up holding a lock on a file
that was unlinked meanwhile notices (the inode differs from the path's) and locks the new file instead.

The holder writes who it is into the lock file (process id, what for, since when), so that a process
that has to wait can say whom it waits for (`wait_saying`) instead of hanging without a word.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from vmbake.errors import BuildCancelled


class FileLock:
    """An exclusive flock on `path`. Use `acquire()` / `release()` or as a context manager.

    `owner` says what the lock is held for (for example "build 'web'"); waiters show it."""

    def __init__(self, path: Path, owner: str = "") -> None:
        self.path = path
        self.owner = owner
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; False at once otherwise."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            except BaseException:
                os.close(fd)
                raise
            if self._same_file(fd):
                self._fd = fd
                self._write_holder(fd)
                return True
            os.close(fd)  # the holder removed the file as we locked it: lock the new one

    def _write_holder(self, fd: int) -> None:
        record = {"pid": os.getpid(), "owner": self.owner, "since": time.time()}
        with contextlib.suppress(OSError):  # the record only informs waiters
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)

    def holder(self) -> str:
        """Who holds the lock, as its record says: "vmbake process 123 (build 'web'), for 2m5s"."""
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
            pid, owner, since = int(record["pid"]), str(record.get("owner") or ""), float(record["since"])
        except (OSError, ValueError, KeyError, TypeError):
            return "another vmbake process"  # not written yet, or a lock file of an older vmbake
        what = f"vmbake process {pid}" + (f" ({owner})" if owner else "")
        held = max(0, round(time.time() - since))
        return f"{what}, for {held // 60}m{held % 60}s" if held >= 60 else f"{what}, for {held}s"

    def acquire(
        self, *, poll: float = 0.2, cancel: threading.Event | None = None, timeout: float | None = None
    ) -> bool:
        """Wait for the lock, polling so that a cancel event (or Ctrl-C) is noticed. False on timeout/cancel."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.try_acquire():
            if cancel is not None and cancel.is_set():
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    def release(self) -> None:
        """Remove the lock file and unlock. Safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            if self._same_file(fd):
                os.unlink(self.path)
        os.close(fd)

    def _same_file(self, fd: int) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def wait_saying(
    lock: FileLock, say: Callable[[str], None] | None, waiting: str, *, cancel: threading.Event | None = None
) -> None:
    """Take `lock`; when another process holds it, first say so: `waiting` (what this process waits
    for) and the holder's record. Raises BuildCancelled when `cancel` is set while waiting."""
    if lock.try_acquire():
        return
    if say is not None:
        say(f"{waiting}: the lock is held by {lock.holder()}; waiting...")
    started = time.monotonic()
    if not lock.acquire(cancel=cancel):
        raise BuildCancelled()
    if say is not None:
        say(f"Got the lock after {time.monotonic() - started:.0f}s of waiting")
