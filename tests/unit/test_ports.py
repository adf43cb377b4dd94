"""Ports: a real range on loopback, filled by real listening sockets."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from vmbake.errors import VmbakeError
from vmbake.ports import bind_in_range, find_free_port, reserve_port, search_message


def _free_block(n: int) -> int:
    """The first of `n` consecutive ports that are all free now (bound briefly to check)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            start = int(probe.getsockname()[1])
        if start + n > 65535:
            continue
        held = []
        try:
            for port in range(start, start + n):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return start
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no block of free ports")


@pytest.fixture
def block() -> Iterator[tuple[int, int]]:
    start = _free_block(3)
    yield start, start + 2


def test_bind_in_range_holds_a_listening_socket(block: tuple[int, int]) -> None:
    lo, hi = block
    sock = bind_in_range("127.0.0.1", lo, hi)
    try:
        host, port = sock.getsockname()
        assert host == "127.0.0.1" and lo <= port <= hi
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass  # it listens: nobody else can take the port
    finally:
        sock.close()


def test_bind_any_port_when_range_is_zero() -> None:
    sock = bind_in_range("127.0.0.1", 0, 0)
    try:
        assert sock.getsockname()[1] > 0
    finally:
        sock.close()


def test_exhausted_range_names_range_host_and_keys(block: tuple[int, int]) -> None:
    lo, hi = block
    held = [bind_in_range("127.0.0.1", lo, hi) for _ in range(3)]
    try:
        assert sorted(s.getsockname()[1] for s in held) == [lo, lo + 1, hi]
        with pytest.raises(VmbakeError) as info:
            bind_in_range("127.0.0.1", lo, hi, keys=("http_port_min", "http_port_max"))
        assert str(info.value) == f"no free port between {lo} and {hi} on 127.0.0.1"
        assert "http_port_min" in (info.value.hint or "") and "http_port_max" in (info.value.hint or "")
        with pytest.raises(VmbakeError, match="no free port") as info2:
            find_free_port("127.0.0.1", lo, hi)
        assert "vnc_port_min" in (info2.value.hint or "")
    finally:
        for s in held:
            s.close()


def test_reservations_never_share_a_port(block: tuple[int, int]) -> None:
    lo, hi = block
    first = reserve_port("127.0.0.1", lo, hi)
    second = reserve_port("127.0.0.1", lo, hi)
    third = reserve_port("127.0.0.1", lo, hi)
    try:
        assert len({first.port, second.port, third.port}) == 3
        with pytest.raises(VmbakeError, match="no free port"):
            reserve_port("127.0.0.1", lo, hi)
        second.release()
        again = reserve_port("127.0.0.1", lo, hi)
        assert again.port == second.port
        again.release()
    finally:
        for r in (first, second, third):
            r.release()


def test_found_port_is_bindable_by_another_program(block: tuple[int, int]) -> None:
    lo, hi = block
    port = find_free_port("127.0.0.1", lo, hi)
    with socket.socket() as s:  # as QEMU would bind it
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()


def test_bad_range_and_bad_address() -> None:
    with pytest.raises(VmbakeError, match="invalid port range 9000-8000"):
        bind_in_range("127.0.0.1", 9000, 8000)
    with pytest.raises(VmbakeError, match="no such address"):
        bind_in_range("192.0.2.77", 0, 0)


def test_search_message_is_packers() -> None:
    assert (
        search_message("127.0.0.1", 5900, 6000)
        == "Looking for available port between 5900 and 6000 on 127.0.0.1"
    )
