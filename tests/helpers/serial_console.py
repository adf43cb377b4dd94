"""A guest's serial console over a unix socket, driven as a person at a terminal would.

QEMU is given `-chardev socket,id=ser0,path=SOCK,server=on,wait=off,logfile=LOG -serial chardev:ser0`; the
test connects, presses enter until a login prompt shows, types a user name and password and runs a command.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path


def serial_argv(sock: Path, log: Path) -> list[str]:
    return [
        "-chardev",
        f"socket,id=ser0,path={sock},server=on,wait=off,logfile={log}",
        "-serial",
        "chardev:ser0",
    ]


class SerialConsole:
    """The console's text so far, and waits for a string in it within a deadline."""

    def __init__(self, path: Path, timeout: float = 30) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(str(path))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # QEMU has not made the socket yet
        self.text = ""
        self._mark = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode())

    def _read(self, seconds: float) -> None:
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return
        if not data:
            raise AssertionError(f"the serial console closed; it showed:\n{self.text[-2000:]}")
        self.text += data.decode(errors="replace")

    def expect(self, needle: str, timeout: float, *, poke: str = "", every: float = 5) -> None:
        """Wait until `needle` appears after the last match; `poke` is sent every `every` seconds meanwhile."""
        deadline = time.monotonic() + timeout
        next_poke = time.monotonic()
        while needle not in self.text[self._mark :]:
            now = time.monotonic()
            if now > deadline:
                raise AssertionError(f"{needle!r} did not show within {timeout:.0f}s:\n{self.text[-2000:]}")
            if poke and now >= next_poke:
                self.send(poke)
                next_poke = now + every
            self._read(min(1.0, max(deadline - now, 0.05)))
        self._mark = self.text.index(needle, self._mark) + len(needle)
