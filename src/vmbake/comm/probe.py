"""Find the moment the guest's SSH server answers, to within about a second.

Through QEMU's user networking the host side of a forwarded port accepts every connection at once; QEMU
then tries the guest. While the guest is still booting, that try gets no answer and QEMU retries it on
its own growing schedule, so one connection can sit silent for many seconds after sshd has started
listening. Waiting on one connection at a time therefore either polls slowly (a long banner timeout) or
gives up on a slow sshd too soon (a short one).

`BannerProbe` does neither: it opens a new connection every `interval`, keeps the earlier ones open (up to
`limit`, each for at most `hold` seconds), and hands over the first socket on which the server says
anything. The others are closed at once, so the guest sees a single SSH session. All sockets are watched
by one selector in the caller's thread.
"""

from __future__ import annotations

import selectors
import socket
import time
from dataclasses import dataclass, field

REFUSED = "connection refused"
CLOSED = "connection closed before the SSH banner (no SSH server in the guest yet)"
SILENT = "banner timeout"
SILENT_AFTER = 3.0  # a connection accepted but silent this long is reported as a banner timeout


@dataclass
class _Pending:
    sock: socket.socket
    opened: float


@dataclass
class BannerProbe:
    host: str
    port: int
    interval: float = 1.0
    hold: float = 60.0
    limit: int = 10  # sshd starts refusing unauthenticated connections beyond 10 (MaxStartups)
    seen: str = "nothing yet"
    _pending: list[_Pending] = field(default_factory=list)
    _selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    _last_open: float = float("-inf")
    _closed_at: float = float("-inf")  # when a connection was last refused or closed unanswered

    def poll(self, until: float) -> socket.socket | None:
        """Watch until the monotonic time `until`; the first socket the server wrote to, or None.

        The returned socket is blocking and no longer tracked: the caller owns it."""
        while True:
            now = time.monotonic()
            if now - self._last_open >= self.interval:
                self._open(now)
            self._expire(now)
            wake = min(until, self._last_open + self.interval)
            for key, _events in self._selector.select(max(0.0, wake - time.monotonic())):
                pending: _Pending = key.data
                found = self._check(pending)
                if found is not None:
                    return found
            if time.monotonic() >= until:
                self._note_silence(time.monotonic())
                return None

    def _open(self, now: float) -> None:
        self._last_open = now
        if len(self._pending) >= self.limit:
            self._drop(self._pending[0])  # the oldest: QEMU has stopped retrying it the soonest
        try:
            sock = socket.create_connection((self.host, self.port), timeout=max(1.0, self.interval))
        except ConnectionRefusedError:
            self.seen, self._closed_at = REFUSED, now
            return
        except TimeoutError:
            self.seen = "connect timeout"
            return
        except OSError as exc:
            self.seen = exc.strerror or str(exc)
            return
        sock.setblocking(False)
        pending = _Pending(sock, now)
        self._pending.append(pending)
        self._selector.register(sock, selectors.EVENT_READ, pending)

    def _check(self, pending: _Pending) -> socket.socket | None:
        try:
            data = pending.sock.recv(64, socket.MSG_PEEK)  # peek: the banner stays for the SSH client
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        if not data:
            self.seen, self._closed_at = CLOSED, time.monotonic()
            self._drop(pending)
            return None
        self._selector.unregister(pending.sock)
        self._pending.remove(pending)
        pending.sock.setblocking(True)
        for other in list(self._pending):
            self._drop(other)
        return pending.sock

    def _expire(self, now: float) -> None:
        for pending in list(self._pending):
            if now - pending.opened >= self.hold:
                self.seen = SILENT
                self._drop(pending)

    def _note_silence(self, now: float) -> None:
        # A connection left silent for a while, with nothing refused or closed since it was opened, means
        # something accepted it (QEMU's forward, or a stuck server) but no SSH server answered.
        oldest = self._pending[0] if self._pending else None
        if oldest is not None and now - oldest.opened >= SILENT_AFTER and oldest.opened >= self._closed_at:
            self.seen = SILENT

    def _drop(self, pending: _Pending) -> None:
        try:
            self._selector.unregister(pending.sock)
        except (KeyError, ValueError):
            pass
        pending.sock.close()
        if pending in self._pending:
            self._pending.remove(pending)

    def close(self) -> None:
        for pending in list(self._pending):
            self._drop(pending)
        self._selector.close()
