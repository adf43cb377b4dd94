"""Advisory file locks (flock) that two vmbake processes respect: cache downloads and port choices.

The lock file is removed on release without a race: a waiter that wakes up holding a lock on a file
that was unlinked meanwhile notices (the inode differs from the path's) and locks the new file instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from pathlib import Path


class FileLock:
    """An exclusive flock on `path`. Use `acquire()` / `release()` or as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
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
                return True
            os.close(fd)  # the holder removed the file as we locked it: lock the new one

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
