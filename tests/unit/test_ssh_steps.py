"""StepSSHKeyPair and StepConnect against a real sshd on loopback."""

from __future__ import annotations

import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.sshd import PASSWORD, Sshd, free_port, make_ctx, running_sshd, throwaway_user
from vmbake import procs
from vmbake.errors import BuildCancelled, StepError, VmbakeError
from vmbake.steps.connect import StepConnect
from vmbake.steps.ssh_key_pair import StepSSHKeyPair

pytestmark = pytest.mark.host_tools("sshd", "ssh-keygen")


@pytest.fixture(scope="module")
def sshd() -> Iterator[Sshd]:
    with throwaway_user() as (name, _password), running_sshd(name) as server:
        yield server


def test_temporary_key_pair_is_private_and_removed(tmp_path: Path) -> None:
    work = tmp_path / "work"
    ctx, out, _err = make_ctx(work, ssh_username="root")
    step = StepSSHKeyPair()
    step.run(ctx)
    key = ctx.state.ssh_private_key_path  # type: ignore[attr-defined]
    assert key.parent == work
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert ctx.state.ssh_public_key.startswith("ssh-ed25519 AAAA")  # type: ignore[attr-defined]
    assert "==> qemu: Creating temporary ED25519 SSH key for instance..." in out.text
    step.cleanup(ctx)
    assert not key.exists()


def test_no_temporary_key_with_a_password(tmp_path: Path) -> None:
    ctx, out, _err = make_ctx(tmp_path / "w", ssh_username="u", ssh_password="hunter22")
    StepSSHKeyPair().run(ctx)
    ctx.ui.message("the password is hunter22")
    assert ctx.state.ssh_private_key_path is None  # type: ignore[attr-defined]
    assert "hunter22" not in out.text  # registered as a secret
    assert "<sensitive>" in out.text


def connected(ctx: Any) -> None:
    step = StepConnect()
    try:
        step.run(ctx)
    finally:
        step.cleanup(ctx)


def test_connect_with_a_key_and_packer_messages(sshd: Sshd, tmp_path: Path) -> None:
    ctx, out, _err = make_ctx(
        tmp_path / "w", ssh_username=sshd.user, ssh_private_key_file=str(sshd.client_key), ssh_timeout=10.0
    )
    ctx.state.ssh_host_port = sshd.port  # type: ignore[attr-defined]
    StepSSHKeyPair().run(ctx)
    step = StepConnect()
    step.run(ctx)
    try:
        assert ctx.state.ssh_host_key == sshd.host_key_line()  # type: ignore[attr-defined]
        lines = [line for _t, line in out.lines]
        assert lines[-3:] == [
            "==> qemu: Using ssh communicator to connect: 127.0.0.1",
            "==> qemu: Waiting for SSH to become available...",
            "==> qemu: Connected to SSH!",
        ]
    finally:
        step.cleanup(ctx)
    assert ctx.state.comm is None  # type: ignore[attr-defined]


def test_connect_with_a_password_to_ssh_host(sshd: Sshd, tmp_path: Path) -> None:
    ctx, out, _err = make_ctx(
        tmp_path / "w",
        ssh_username=sshd.user,
        ssh_password=PASSWORD,
        ssh_host="127.0.0.1",
        ssh_port=sshd.port,
    )
    connected(ctx)
    assert "Connected to SSH!" in out.text


def test_timeout_names_what_was_seen_and_the_console_log(tmp_path: Path) -> None:
    ctx, _out, _err = make_ctx(tmp_path / "w", ssh_username="root", ssh_password="xyz", ssh_timeout=0.8)
    ctx.state.ssh_host_port = free_port()  # type: ignore[attr-defined]
    log = tmp_path / "console.log"
    log.write_text("Booting...\nDebian GNU/Linux 12 guest ttyS0\n")
    ctx.state.console_log = log  # type: ignore[attr-defined]
    started = time.monotonic()
    with pytest.raises(StepError) as info:
        connected(ctx)
    assert time.monotonic() - started < 3
    assert "last seen: connection refused" in info.value.message
    assert str(log) in (info.value.hint or "")
    assert "Debian GNU/Linux 12 guest ttyS0" in (info.value.hint or "")


def test_authentication_failures_give_up_after_handshake_attempts(sshd: Sshd, tmp_path: Path) -> None:
    ctx, _out, _err = make_ctx(
        tmp_path / "w", ssh_username=sshd.user, ssh_password="wrong", ssh_handshake_attempts=1
    )
    ctx.state.ssh_host_port = sshd.port  # type: ignore[attr-defined]
    with pytest.raises(StepError, match=r"authentication as .* failed"):
        connected(ctx)


def test_qemu_exit_stops_the_wait_at_once(tmp_path: Path) -> None:
    ctx, _out, _err = make_ctx(tmp_path / "w", ssh_username="root", ssh_password="xyz")
    ctx.state.ssh_host_port = free_port()  # type: ignore[attr-defined]
    child = procs.spawn(["sh", "-c", "exit 3"])
    try:
        child.wait(5)
        ctx.state.qemu = child  # type: ignore[attr-defined]
        with pytest.raises(StepError, match=r"QEMU exited \(status 3\) before SSH became available"):
            connected(ctx)
    finally:
        child.stop()


def test_cancel_stops_the_wait(tmp_path: Path) -> None:
    ctx, _out, _err = make_ctx(tmp_path / "w", ssh_username="root", ssh_password="xyz")
    ctx.state.ssh_host_port = free_port()  # type: ignore[attr-defined]
    ctx.cancel.set()  # type: ignore[attr-defined]
    with pytest.raises(BuildCancelled):
        connected(ctx)


def test_communicator_none_is_skipped(tmp_path: Path) -> None:
    ctx, out, _err = make_ctx(tmp_path / "w", communicator="none")
    StepSSHKeyPair().run(ctx)
    connected(ctx)
    assert out.text == ""


def test_a_slow_sshd_gets_longer_tries_until_it_answers(sshd: Sshd, tmp_path: Path, monkeypatch: Any) -> None:
    """A TCP relay that passes sshd's banner at once but holds the client's first bytes 0.5 s stands in for
    a guest whose sshd is slow under TCG: a fixed 0.2 s limit for the key exchange would never connect."""
    import socket
    import threading

    from vmbake import vm

    monkeypatch.setattr(vm, "TRY_TIMEOUT", 0.2)
    monkeypatch.setattr(vm, "SSH_POLL", 0.05)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    slow_tries: list[float] = []

    def pump(a: socket.socket, b: socket.socket, delay: float) -> None:
        try:
            first = True
            while data := a.recv(65536):
                if first and delay:
                    time.sleep(delay)
                    first = False
                b.sendall(data)
        except OSError:
            pass
        finally:
            b.close()

    def relay() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            slow_tries.append(time.monotonic())
            upstream = socket.create_connection(("127.0.0.1", sshd.port))
            threading.Thread(target=pump, args=(client, upstream, 0.5), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client, 0.0), daemon=True).start()

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    try:
        ctx, out, _err = make_ctx(
            tmp_path / "w",
            ssh_username=sshd.user,
            ssh_private_key_file=str(sshd.client_key),
            ssh_timeout=20.0,
        )
        ctx.state.ssh_host_port = listener.getsockname()[1]  # type: ignore[attr-defined]
        StepSSHKeyPair().run(ctx)
        connected(ctx)
        assert "==> qemu: Connected to SSH!" in out.text
        assert len(slow_tries) > 1, "the first try, limited to 0.2 s, cannot have logged in"
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_port_forward_reserves_the_ssh_and_network_probe_ports(tmp_path: Path) -> None:
    from vmbake.ports import reserve_port
    from vmbake.steps.forward_port import StepPortForward

    low = free_port()
    ctx, out, _err = make_ctx(tmp_path / "w", ssh_username="root", host_port_min=low, host_port_max=low + 40)
    step = StepPortForward()
    step.run(ctx)
    try:
        ports = {ctx.state.ssh_host_port, ctx.state.net_probe_port}  # type: ignore[attr-defined]
        assert len(ports) == 2 and all(low <= p <= low + 40 for p in ports)  # type: ignore[operator]
        assert f"Found port for communicator (SSH, WinRM, etc): {ctx.state.ssh_host_port}." in out.text  # type: ignore[attr-defined]
        for port in ports:  # both are held: no other build may choose them
            with pytest.raises(VmbakeError):
                reserve_port("127.0.0.1", port, port)  # type: ignore[arg-type]
    finally:
        step.cleanup(ctx)
    for port in ports:
        reserve_port("127.0.0.1", port, port).release()  # type: ignore[arg-type]


def test_timeout_says_the_guest_network_never_came_up(tmp_path: Path, monkeypatch: Any) -> None:
    """Both forwards accept and hold every connection, as QEMU's do while the guest has no network."""
    import socket

    from vmbake.comm import probe

    monkeypatch.setattr(probe, "SILENT_AFTER", 0.3)
    ctx, _out, _err = make_ctx(tmp_path / "w", ssh_username="root", ssh_password="xyz", ssh_timeout=1.5)
    with socket.create_server(("127.0.0.1", 0)) as ssh, socket.create_server(("127.0.0.1", 0)) as net:
        ctx.state.ssh_host_port = ssh.getsockname()[1]  # type: ignore[attr-defined]
        ctx.state.net_probe_port = net.getsockname()[1]  # type: ignore[attr-defined]
        with pytest.raises(StepError) as info:
            connected(ctx)
    assert "last seen: no answer from the guest: its network is not up yet" in info.value.message
