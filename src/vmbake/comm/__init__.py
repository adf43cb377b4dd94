"""Communicators: how vmbake runs commands in the guest and moves files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

# Packer's exit status for a command whose connection dropped before it reported one.
DISCONNECTED = 2300218

LineSink = Callable[[str], None]


class Communicator(Protocol):
    """What provisioners and the shutdown step need from a connection to the guest."""

    def run(
        self,
        command: str,
        *,
        on_stdout: LineSink,
        on_stderr: LineSink,
        pty: bool = False,
        timeout: float | None = None,
    ) -> int:
        """Run `command`, streaming its output line by line; its exit status, or DISCONNECTED."""
        ...

    def upload(self, local: Path, remote: str, *, mode: int | None = None) -> None: ...

    def upload_bytes(self, data: bytes, remote: str, *, mode: int | None = None) -> None: ...

    def upload_dir(self, local: Path, remote: str) -> None: ...

    def mkdir_p(self, remote: str) -> None:
        """Create the guest's directory `remote` and its parents."""
        ...

    def remove(self, remote: list[str]) -> None:
        """Remove the guest's files `remote`, as `rm -f` does: a file that is not there is no error."""
        ...

    def download(self, remote: str, local: Path) -> None: ...

    def download_dir(self, remote: str, local: Path) -> None: ...

    def close(self) -> None: ...
