"""The SSH communicator against a real OpenSSH server on loopback (started by the test, as root)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.sshd import PASSWORD, Sshd, free_port, make_key, running_sshd, throwaway_user
from vmbake.comm import DISCONNECTED
from vmbake.comm.ssh import ConnectError, HostKeyChanged, SshCommunicator, SshTarget, connect
from vmbake.errors import VmbakeError
from vmbake.sshkeys import load_private_key

pytestmark = pytest.mark.host_tools("sshd", "ssh-keygen")


@pytest.fixture(scope="module")
def user() -> Iterator[str]:
    with throwaway_user() as (name, _password):
        yield name


@pytest.fixture(scope="module")
def sshd(user: str) -> Iterator[Sshd]:
    with running_sshd(user) as server:
        yield server


@pytest.fixture(scope="module")
def scp_sshd(user: str) -> Iterator[Sshd]:
    with running_sshd(user, sftp=False) as server:
        yield server


def key_target(server: Sshd) -> SshTarget:
    return SshTarget("127.0.0.1", server.port, server.user, key=load_private_key(server.client_key))


@pytest.fixture
def comm(sshd: Sshd) -> Iterator[SshCommunicator]:
    c = connect(key_target(sshd), timeout=5)
    yield c
    c.close()


def run(c: SshCommunicator, command: str) -> tuple[int, list[str], list[str]]:
    out: list[str] = []
    err: list[str] = []
    status = c.run(command, on_stdout=out.append, on_stderr=err.append, timeout=20)
    return status, out, err


def test_key_login_pins_the_host_key(sshd: Sshd, comm: SshCommunicator) -> None:
    assert comm.host_key == sshd.host_key_line()
    assert run(comm, "id -un") == (0, [sshd.user], [])


@pytest.mark.parametrize("kind", ["ecdsa", "rsa"])
def test_ecdsa_and_rsa_keys_with_passphrase(sshd: Sshd, tmp_path: Path, kind: str) -> None:
    key = make_key(tmp_path / f"id_{kind}", kind, passphrase="open sesame")
    sshd.authorize(Path(str(key) + ".pub"))
    with pytest.raises(VmbakeError, match="encrypted"):
        load_private_key(key)
    target = SshTarget("127.0.0.1", sshd.port, sshd.user, key=load_private_key(key, "open sesame"))
    c = connect(target, timeout=5)
    try:
        assert run(c, "echo ok")[1] == ["ok"]
    finally:
        c.close()


def test_password_login(sshd: Sshd) -> None:
    c = connect(SshTarget("127.0.0.1", sshd.port, sshd.user, password=PASSWORD), timeout=5)
    try:
        assert run(c, "id -un")[1] == [sshd.user]
    finally:
        c.close()
    with pytest.raises(ConnectError) as info:
        connect(SshTarget("127.0.0.1", sshd.port, sshd.user, password="wrong"), timeout=5)
    assert info.value.seen == "authentication failure"


def test_wrong_key_is_a_clear_error(sshd: Sshd, tmp_path: Path) -> None:
    stranger = load_private_key(make_key(tmp_path / "stranger"))
    with pytest.raises(ConnectError) as info:
        connect(SshTarget("127.0.0.1", sshd.port, sshd.user, key=stranger), timeout=5)
    assert info.value.seen == "authentication failure"
    assert f"authentication as {sshd.user!r} failed (tried key ssh-ed25519)" in info.value.message
    assert "authorized_keys" in (info.value.hint or "")


def test_refused_port_is_reported_as_such() -> None:
    with pytest.raises(ConnectError) as info:
        connect(SshTarget("127.0.0.1", free_port(), "root", password="x"), timeout=2)
    assert info.value.seen == "connection refused"


def test_stdout_streams_line_by_line_while_the_command_runs(comm: SshCommunicator) -> None:
    stamps: list[tuple[float, str]] = []
    started = time.monotonic()
    status = comm.run(
        "for i in 1 2 3; do echo line$i; sleep 0.25; done",
        on_stdout=lambda line: stamps.append((time.monotonic(), line)),
        on_stderr=lambda line: None,
    )
    ended = time.monotonic()
    assert status == 0
    assert [line for _t, line in stamps] == ["line1", "line2", "line3"]
    # The first line arrived long before the command ended: nothing waits for the end.
    assert stamps[0][0] - started < 0.35
    assert ended - stamps[0][0] > 0.4


def test_stderr_and_exit_status_are_kept_apart(comm: SshCommunicator) -> None:
    status, out, err = run(comm, "echo out; echo 'oops: \u00e9' >&2; printf tail; exit 7")
    assert status == 7
    assert out == ["out", "tail"]
    assert err == ["oops: \u00e9"]


def test_a_dropped_connection_is_reported_as_disconnected(user: str) -> None:
    with running_sshd(user) as server:
        c = connect(key_target(server), timeout=5)
        try:
            lines: list[str] = []
            killer = threading.Thread(target=lambda: (_wait_for(lines), server.kill_sessions()))
            killer.start()
            status = c.run(
                "echo started; sleep 30", on_stdout=lines.append, on_stderr=lines.append, timeout=20
            )
            killer.join()
            assert status == DISCONNECTED
            assert lines == ["started"]
        finally:
            c.close()


def _wait_for(lines: list[str]) -> None:
    deadline = time.monotonic() + 10
    while not lines and time.monotonic() < deadline:
        time.sleep(0.01)


def test_command_timeout_is_an_error(comm: SshCommunicator) -> None:
    with pytest.raises(VmbakeError, match="did not finish within"):
        comm.run("sleep 5", on_stdout=lambda _l: None, on_stderr=lambda _l: None, timeout=0.3)


def test_a_changed_host_key_is_refused_on_reconnect(user: str) -> None:
    with running_sshd(user) as server:
        c = connect(key_target(server), timeout=5)
        first = c.host_key
        # The guest "reboots" and comes back as another machine on the same port.
        server.kill_sessions()
        server.restart(new_host_key=True)
        with pytest.raises(HostKeyChanged) as info:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                run(c, "true")
        assert not info.value.retry
        assert "changed during the build" in info.value.message
        assert c.host_key == first
        c.close()


def test_reconnect_after_a_restart_with_the_same_key(user: str) -> None:
    with running_sshd(user) as server:
        c = connect(key_target(server), timeout=5)
        server.kill_sessions()
        server.restart()
        deadline = time.monotonic() + 5
        status = DISCONNECTED
        while status == DISCONNECTED and time.monotonic() < deadline:
            status = run(c, "echo back")[0]
        assert status == 0
        c.close()


def test_sftp_upload_download_and_directories(comm: SshCommunicator, tmp_path: Path) -> None:
    _transfer_round_trip(comm, tmp_path, f"/tmp/vmbake-sftp-{uuid.uuid4().hex[:8]}")
    assert not comm.uses_scp


def test_scp_fallback_without_sftp_subsystem(scp_sshd: Sshd, tmp_path: Path) -> None:
    c = connect(key_target(scp_sshd), timeout=5)
    try:
        assert c.uses_scp
        _transfer_round_trip(c, tmp_path, f"/tmp/vmbake-scp-{uuid.uuid4().hex[:8]}")
    finally:
        c.close()


def _transfer_round_trip(c: SshCommunicator, tmp_path: Path, remote: str) -> None:
    run(c, f"rm -rf {remote}")
    payload = bytes(range(256)) * 400  # binary, more than one chunk
    local = tmp_path / "blob.bin"
    local.write_bytes(payload)
    c.run(f"mkdir -p {remote}", on_stdout=print, on_stderr=print)
    c.upload(local, f"{remote}/blob.bin", mode=0o640)
    assert run(c, f"stat -c %a {remote}/blob.bin")[1] == ["640"]
    c.upload_bytes(b"#!/bin/sh\necho hi\n", f"{remote}/x.sh", mode=0o755)
    assert run(c, f"{remote}/x.sh")[1] == ["hi"]
    back = tmp_path / "back.bin"
    c.download(f"{remote}/blob.bin", back)
    assert back.read_bytes() == payload
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("A")
    (tree / "sub" / "b.txt").write_text("B")
    c.upload_dir(tree, f"{remote}/deep/tree")
    assert sorted(run(c, f"cd {remote}/deep/tree && find . -type f")[1]) == ["./a.txt", "./sub/b.txt"]
    c.download_dir(f"{remote}/deep/", tmp_path / "got")
    assert (tmp_path / "got" / "tree" / "sub" / "b.txt").read_text() == "B"
    with pytest.raises(VmbakeError, match="/nonexistent/file"):
        c.download("/nonexistent/file", tmp_path / "nothing")
    # mkdir -p's behaviour: parents made, an existing directory is fine, a file in the way is an error
    c.mkdir_p(f"{remote}/made/by/mkdir_p/")
    c.mkdir_p(f"{remote}/made/by")
    assert run(c, f"test -d {remote}/made/by/mkdir_p && echo dir")[1] == ["dir"]
    with pytest.raises(VmbakeError, match=f"cannot create {remote}/blob.bin/sub"):
        c.mkdir_p(f"{remote}/blob.bin/sub")
    # rm -f's behaviour: a missing file is fine, a directory is an error
    c.remove([f"{remote}/x.sh", f"{remote}/not-there"])
    assert run(c, f"test -e {remote}/x.sh")[0] == 1
    with pytest.raises(VmbakeError, match=f"cannot remove {remote}/made"):
        c.remove([f"{remote}/made"])
    run(c, f"rm -rf {remote}")


@pytest.mark.parametrize(
    ("close", "seen"), [(True, "connection closed before the SSH banner"), (False, "banner timeout")]
)
def test_a_port_without_an_ssh_server_says_what_it_saw(close: bool, seen: str) -> None:
    """A plain TCP listener stands in for QEMU's port forward before the guest's sshd is up."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        accepted: list[socket.socket] = []

        def serve() -> None:
            conn, _ = listener.accept()
            if close:
                conn.close()
            else:
                accepted.append(conn)

        server = threading.Thread(target=serve)
        server.start()
        try:
            with pytest.raises(ConnectError) as info:
                connect(SshTarget("127.0.0.1", port, "root", password="x"), timeout=0.5)
            assert info.value.seen.startswith(seen)
        finally:
            server.join()
            for conn in accepted:
                conn.close()
