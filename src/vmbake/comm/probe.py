"""Find the moment the guest's SSH server answers, to within about a second, at little cost to the guest.

Through QEMU's user networking the host side of a forwarded port accepts every connection at once; QEMU
then tries the guest. While the guest's network is not up, that try gets no answer and QEMU retries it on
its own growing schedule, so one connection can sit silent for many seconds after sshd has started
listening. Waiting on one connection at a time therefore either polls slowly (a long banner timeout) or
gives up on a slow sshd too soon (a short one).

Closing such a connection on the host does not stop QEMU either: it keeps knocking at the guest's port,
and once the network is up the connections opened during the boot reach sshd, which forks a process for
each. A prober that opened one connection a second during a 30 s boot made sshd start more than a
dozen processes just as the build logged in, and past sshd's MaxStartups it turned real logins away with
"Exceeded MaxStartups". Connections to the SSH port should therefore be opened often only once the
guest's network is known to be up.

`BannerProbe` does that:

- With `net_probe_port`, a second forward to a guest port where nothing listens, it opens a connection
  there every `interval`. The guest's kernel resets it as soon as its network is up: no process in the
  guest is involved, and a late one costs nothing. Until then, the SSH port is tried only every
  `slow_interval` (in case the guest's firewall drops that probe without a reset).
- Once a reset (on either port) shows that the network is up, the SSH port is tried every `fast_interval`.
  Each try is reset at once until sshd listens, so none is left waiting.
- Connections are kept open (up to `limit`, each for at most `hold` seconds) and watched by one selector
  in the caller's thread. The first on which the server sends its SSH version line is handed over; the
  other SSH connections are closed at once.
- Text before the version line (sshd's "Exceeded MaxStartups" before it hangs up) is not a banner: it is
  read, and reported if the server then closes the connection.
"""

from __future__ import annotations

import selectors
import socket
import time
from dataclasses import dataclass, field

REFUSED = "connection refused"
CLOSED = "connection closed before the SSH banner (no SSH server in the guest yet)"
SILENT = "banner timeout"
NET_DOWN = "no answer from the guest: its network is not up yet"
SILENT_AFTER = 3.0  # a connection accepted but silent this long is reported as a banner timeout
NET_UP_FRESH = 3.0  # a reset seen this recently means the guest's network is up
NET_PROBE_GUEST_PORT = 1  # tcpmux: a guest port where nothing listens, so its kernel answers with a reset
VERSION_PREFIX = b"SSH-"


@dataclass
class _Pending:
    sock: socket.socket
    opened: float
    net_probe: bool = False
    said: bytes = b""  # text the server sent before any version line


@dataclass
class BannerProbe:
    host: str
    port: int
    interval: float = 1.0
    fast_interval: float = 0.5
    slow_interval: float = 5.0
    net_probe_port: int | None = None
    hold: float = 60.0
    limit: int = 10  # sshd starts refusing unauthenticated connections beyond 10 (MaxStartups)
    seen: str = "nothing yet"
    _pending: list[_Pending] = field(default_factory=list)
    _selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    _last_open: float = float("-inf")
    _last_net_probe: float = float("-inf")
    _closed_at: float = float("-inf")  # when an SSH connection was last refused or closed unanswered
    _net_up_at: float = float("-inf")  # when the guest last reset (or answered) a connection

    def poll(self, until: float) -> socket.socket | None:
        """Watch until the monotonic time `until`; the first socket the server wrote to, or None.

        The returned socket is blocking and no longer tracked: the caller owns it."""
        while True:
            now = time.monotonic()
            if self.net_probe_port is not None and now - self._last_net_probe >= self.interval:
                self._last_net_probe = now
                self._open(now, self.net_probe_port, net_probe=True)
            if now - self._last_open >= self.ssh_interval(now):
                self._last_open = now
                self._open(now, self.port)
            self._expire(now)
            wake = min(until, self._last_open + self.ssh_interval(now))
            if self.net_probe_port is not None:
                wake = min(wake, self._last_net_probe + self.interval)
            for key, _events in self._selector.select(max(0.0, wake - time.monotonic())):
                pending: _Pending = key.data
                found = self._check(pending)
                if found is not None:
                    return found
            if time.monotonic() >= until:
                self._note_silence(time.monotonic())
                return None

    def network_up(self, now: float) -> bool:
        return now - self._net_up_at < NET_UP_FRESH

    def ssh_interval(self, now: float) -> float:
        """Seconds between two new SSH connections, from what is known of the guest's network."""
        if self.network_up(now):
            return self.fast_interval
        if any(p.net_probe for p in self._pending):
            return self.slow_interval  # QEMU holds the network probe: the guest's network is not up
        return self.interval

    def _open(self, now: float, port: int, *, net_probe: bool = False) -> None:
        mine = [p for p in self._pending if p.net_probe == net_probe]
        if len(mine) >= self.limit:
            self._drop(mine[0])  # the oldest: QEMU has stopped retrying it the soonest
        try:
            sock = socket.create_connection((self.host, port), timeout=max(1.0, self.interval))
        except OSError as exc:
            if not net_probe:  # the network probe's own failures say nothing about SSH
                self._note_failure(exc, now)
            return
        sock.setblocking(False)
        pending = _Pending(sock, now, net_probe)
        self._pending.append(pending)
        self._selector.register(sock, selectors.EVENT_READ, pending)

    def _note_failure(self, exc: OSError, now: float) -> None:
        if isinstance(exc, ConnectionRefusedError):
            self.seen, self._closed_at = REFUSED, now
        elif isinstance(exc, TimeoutError):
            self.seen = "connect timeout"
        else:
            self.seen = exc.strerror or str(exc)

    def _check(self, pending: _Pending) -> socket.socket | None:
        try:
            data = pending.sock.recv(256, socket.MSG_PEEK)  # peek: the banner stays for the SSH client
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        now = time.monotonic()
        if pending.net_probe or not data:
            # Reset or closed by the guest (or, on the network probe, answered): its network is up.
            self._net_up_at = now
            if not pending.net_probe:
                self.seen, self._closed_at = self._closed_reason(pending), now
            self._drop(pending)
            return None
        if data.startswith(VERSION_PREFIX) or VERSION_PREFIX.startswith(data):
            self._net_up_at = now
            self._selector.unregister(pending.sock)
            self._pending.remove(pending)
            pending.sock.setblocking(True)
            for other in [p for p in self._pending if not p.net_probe]:
                self._drop(other)
            return pending.sock
        # Text before the version line (RFC 4253 allows it): read it, up to the end of its line.
        line, newline, _rest = data.partition(b"\n")
        pending.said = (pending.said + line + newline)[-512:]
        pending.sock.recv(len(line) + len(newline))
        return None

    @staticmethod
    def _closed_reason(pending: _Pending) -> str:
        said = " ".join(pending.said.decode("utf-8", "replace").split())
        if not said:
            return CLOSED
        return f'the SSH server closed the connection after saying "{said[:120]}"'

    def _expire(self, now: float) -> None:
        for pending in list(self._pending):
            if now - pending.opened >= self.hold:
                if not pending.net_probe:
                    self.seen = self._silence(now)
                self._drop(pending)

    def _silence(self, now: float) -> str:
        held = any(p.net_probe and now - p.opened >= self.interval for p in self._pending)
        return NET_DOWN if held and not self.network_up(now) else SILENT

    def _note_silence(self, now: float) -> None:
        # A connection left silent for a while, with nothing refused or closed since it was opened, means
        # something accepted it (QEMU's forward, or a stuck server) but no SSH server answered.
        oldest = next((p for p in self._pending if not p.net_probe), None)
        if oldest is not None and now - oldest.opened >= SILENT_AFTER and oldest.opened >= self._closed_at:
            self.seen = self._silence(now)

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
