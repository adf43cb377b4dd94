"""BannerProbe against small loopback servers that behave as QEMU's port forward does during a boot."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from vmbake.comm import probe as probe_module
from vmbake.comm.probe import CLOSED, NET_DOWN, REFUSED, SILENT, BannerProbe

Handler = Callable[[socket.socket, int], None]


@contextmanager
def server(handle: Handler) -> Iterator[tuple[int, list[socket.socket]]]:
    """A listener calling handle(conn, n) for its n-th connection (from 0), each in a thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()
    conns: list[socket.socket] = []
    workers: list[threading.Thread] = []

    def serve() -> None:
        n = 0
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conns.append(conn)
            worker = threading.Thread(target=handle, args=(conn, n), daemon=True)
            worker.start()
            workers.append(worker)
            n += 1

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield listener.getsockname()[1], conns
    finally:
        stop.set()
        thread.join()
        listener.close()
        for conn in conns:
            conn.close()


def test_a_held_connection_does_not_hide_an_sshd_that_came_up() -> None:
    """The first connection stays silent for good, as QEMU's forward does while the guest boots; sshd is
    'up' from 1.5 s on. A prober waiting on its first connection would wait forever; BannerProbe finds a
    later one within about an interval."""
    up_at = time.monotonic() + 1.5

    def handle(conn: socket.socket, n: int) -> None:
        if n == 0 or time.monotonic() < up_at:
            return  # silent: held
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

    with server(handle) as (port, conns):
        probe = BannerProbe("127.0.0.1", port, interval=0.25)
        try:
            sock = probe.poll(until=time.monotonic() + 10)
            found_at = time.monotonic()
            assert sock is not None
            assert found_at - up_at < 1.0
            # the banner was only peeked at: the SSH client still reads it
            assert sock.recv(64).startswith(b"SSH-2.0-")
            sock.close()
        finally:
            probe.close()
        assert len(conns) >= 3
        # every other connection is closed at once: the server reads EOF on each
        assert all(reads_eof(conn) for conn in conns[:-1])


def reads_eof(conn: socket.socket, wait: float = 1.0) -> bool:
    """True when the other end closed `conn`; waits up to `wait` seconds (0: only what is there now)."""
    conn.settimeout(wait)
    try:
        return conn.recv(1) == b""
    except ConnectionResetError:
        return True
    except (TimeoutError, BlockingIOError):
        return False  # still open: nothing to read, no EOF


def test_a_silent_server_is_reported_as_a_banner_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe_module, "SILENT_AFTER", 0.4)
    with server(lambda _conn, _n: None) as (port, _conns):
        probe = BannerProbe("127.0.0.1", port, interval=0.1)
        try:
            assert probe.poll(until=time.monotonic() + 0.2) is None
            assert probe.seen == "nothing yet"
            assert probe.poll(until=time.monotonic() + 0.5) is None
            assert probe.seen == SILENT
        finally:
            probe.close()


def test_a_closed_port_is_reported_as_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert seen_without_banner(port, 0.3) == REFUSED


def test_a_forward_that_closes_at_once_is_reported_as_closed() -> None:
    """QEMU's forward when the guest's network is up but nothing listens on port 22."""
    with server(lambda conn, _n: conn.close()) as (port, _conns):
        assert seen_without_banner(port, 0.5) == CLOSED


def seen_without_banner(port: int, seconds: float) -> str:
    """What a probe of `port` reports after `seconds` in which no server answered (asserted)."""
    probe = BannerProbe("127.0.0.1", port, interval=0.1)
    try:
        assert probe.poll(until=time.monotonic() + seconds) is None
        return probe.seen
    finally:
        probe.close()


def test_at_most_limit_connections_are_held() -> None:
    with server(lambda _conn, _n: None) as (port, conns):
        probe = BannerProbe("127.0.0.1", port, interval=0.02, limit=4)
        try:
            assert probe.poll(until=time.monotonic() + 0.5) is None
            time.sleep(0.1)  # the accept loop catches up with the last connections
            assert len(conns) > 8
            assert sum(not reads_eof(conn, 0) for conn in conns) <= 4
        finally:
            probe.close()


def test_text_before_a_hang_up_is_not_taken_for_a_banner() -> None:
    """sshd past MaxStartups writes a line and hangs up: that connection is not handed over, and what the
    server said is reported."""

    def handle(conn: socket.socket, _n: int) -> None:
        conn.sendall(b"Exceeded MaxStartups\r\n")
        conn.close()

    with server(handle) as (port, _conns):
        seen = seen_without_banner(port, 0.5)
    assert seen == 'the SSH server closed the connection after saying "Exceeded MaxStartups"'


def test_lines_before_the_version_line_are_skipped() -> None:
    """RFC 4253 lets a server send other lines first; the socket handed over starts at the version line."""

    def handle(conn: socket.socket, _n: int) -> None:
        conn.sendall(b"Welcome\r\n")
        time.sleep(0.2)
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        time.sleep(2)

    with server(handle) as (port, _conns):
        probe = BannerProbe("127.0.0.1", port, interval=5)
        try:
            sock = probe.poll(until=time.monotonic() + 3)
            assert sock is not None
            assert sock.recv(64).startswith(b"SSH-2.0-OpenSSH_9.2")
            sock.close()
        finally:
            probe.close()


def test_the_ssh_port_is_tried_seldom_while_the_network_probe_is_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A held network probe means the guest's network is down: each SSH try now would reach sshd late,
    after the network comes up, so they are spaced by slow_interval and the wait says why."""
    monkeypatch.setattr(probe_module, "SILENT_AFTER", 0.3)
    with server(lambda _conn, _n: None) as (ssh_port, ssh_conns), server(lambda _c, _n: None) as (net, _):
        probe = BannerProbe(
            "127.0.0.1", ssh_port, interval=0.05, fast_interval=0.05, slow_interval=10, net_probe_port=net
        )
        try:
            assert probe.poll(until=time.monotonic() + 0.6) is None
            time.sleep(0.1)  # the accept loop catches up
            assert len(ssh_conns) == 1
            assert probe.seen == NET_DOWN
        finally:
            probe.close()


def test_the_ssh_port_is_tried_often_once_the_network_probe_is_reset() -> None:
    """The guest resets the network probe: its network is up, and each SSH try is answered at once."""
    up_at = time.monotonic() + 0.8

    def ssh(conn: socket.socket, _n: int) -> None:
        if time.monotonic() < up_at:
            conn.close()  # network up, no sshd yet
        else:
            conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

    with server(ssh) as (ssh_port, ssh_conns), server(lambda conn, _n: conn.close()) as (net, _):
        probe = BannerProbe(
            "127.0.0.1", ssh_port, interval=0.05, fast_interval=0.1, slow_interval=10, net_probe_port=net
        )
        try:
            sock = probe.poll(until=time.monotonic() + 5)
            found_at = time.monotonic()
            assert sock is not None
            sock.close()
        finally:
            probe.close()
        assert found_at - up_at < 0.5
        assert len(ssh_conns) >= 5  # about one each 0.1 s until sshd answered


def test_a_network_probe_without_a_forward_changes_nothing() -> None:
    """A template's own -netdev has no forward for the probe: refused there, the SSH port is tried each
    interval, as without a network probe."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        unused = s.getsockname()[1]
    with server(lambda _conn, _n: None) as (ssh_port, ssh_conns):
        probe = BannerProbe("127.0.0.1", ssh_port, interval=0.1, slow_interval=10, net_probe_port=unused)
        try:
            assert probe.poll(until=time.monotonic() + 0.55) is None
            time.sleep(0.1)
            assert len(ssh_conns) >= 4
        finally:
            probe.close()
