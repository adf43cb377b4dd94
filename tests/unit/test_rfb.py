"""The RFB client against a real VNC server: QEMU's own, with QEMU's key trace as the witness."""

from __future__ import annotations

import string
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.bootcmd import KeyVm, key_vm
from vmbake.bootcommand import KeyEvent, parse, to_events
from vmbake.rfb import RfbClient, VncConnectionDropped, VncError, VncUnreachable, vnc_auth_response
from vmbake.steps.type_boot_command import TypingStopped, type_over_vnc

pytestmark = [pytest.mark.timeout(60), pytest.mark.host_tools("qemu-system-x86_64")]

US_KEYBOARD = string.ascii_letters + string.digits + "`-=[]\\;',./ ~!@#$%^&*()_+{}|:\"<>?"


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[KeyVm]:
    with key_vm(tmp_path) as vm:
        yield vm


def key_events(text: str) -> list[KeyEvent]:
    return [e for e in to_events(parse(text)) if isinstance(e, KeyEvent)]


def test_handshake_reads_server_init(vm: KeyVm) -> None:
    with vm.rfb() as client:
        assert client.version == (3, 8)
        assert client.security == 1
        assert client.desktop_name == "QEMU"
        assert client.width > 0 and client.height > 0


@pytest.mark.parametrize(("max_minor", "version"), [(3, (3, 3)), (7, (3, 7)), (8, (3, 8))])
def test_each_protocol_version_types_keys(vm: KeyVm, max_minor: int, version: tuple[int, int]) -> None:
    with vm.rfb(max_minor=max_minor) as client:
        assert client.version == version
        client.key_event(ord("q"), True)
        client.key_event(ord("q"), False)
    assert vm.wait_keys(2) == 2
    assert vm.vnc_keys() == [("q", True, ord("q")), ("q", False, ord("q"))]


def test_qemu_sees_every_us_character_as_vmbake_maps_it(vm: KeyVm) -> None:
    """QEMU's en-us keymap turns each keysym into a key; it must be the key our QMP table names."""
    events = key_events(US_KEYBOARD)
    with vm.rfb() as client:
        for event in events:
            client.key_event(event.keysym, event.down)
        assert client.sent == len(events)
    assert vm.wait_keys(len(events)) == len(events)
    seen = vm.vnc_keys()
    assert [(qcode, down) for qcode, down, _ in seen] == [(e.qcode, e.down) for e in events]
    assert [keysym for _, _, keysym in seen] == [e.keysym for e in events]


def test_special_keys_reach_qemu(vm: KeyVm) -> None:
    events = key_events("<esc><enter><spacebar><tab><bs><f1><leftCtrlOn>c<leftCtrlOff><up><pageDown>")
    with vm.rfb() as client:
        type_over_vnc(client, list(events), 0.0, lambda: False)
    assert vm.wait_keys(len(events)) == len(events)
    assert [(q, d) for q, d, _ in vm.vnc_keys()] == [(e.qcode, e.down) for e in events]


def test_vnc_authentication_with_a_password_set_through_qmp(tmp_path: Path) -> None:
    with key_vm(tmp_path, password=True) as vm:
        vm.qmp.change_vnc_password("s3cr3t!x")
        with pytest.raises(VncError, match="asks for a password"):
            vm.rfb()
        with pytest.raises(VncError, match=r"authentication .* failed"):
            vm.rfb(password="wrong")
        for max_minor in (3, 7, 8):
            with vm.rfb(password="s3cr3t!x", max_minor=max_minor) as client:
                assert client.security == 2
                client.key_event(ord("z"), True)
                client.key_event(ord("z"), False)
        assert vm.wait_keys(6) == 6
        assert {q for q, _, _ in vm.vnc_keys()} == {"z"}


def test_vnc_auth_response_uses_the_bit_reversed_key() -> None:
    challenge = bytes(range(16))
    response = vnc_auth_response("password", challenge)
    assert len(response) == 16
    # Only the first 8 characters count, and each challenge block is encrypted on its own (ECB).
    assert vnc_auth_response("password-and-more", challenge) == response
    assert vnc_auth_response("password", challenge[8:] + challenge[:8]) == response[8:] + response[:8]
    assert vnc_auth_response("passwore", challenge) != response


def test_nothing_listening_is_unreachable(vm: KeyVm) -> None:
    vm.child.stop()
    with pytest.raises(VncUnreachable, match="cannot connect"):
        RfbClient.connect("127.0.0.1", vm.port, timeout=2)


def test_a_shared_viewer_does_not_disturb_typing(vm: KeyVm) -> None:
    with vm.rfb() as typist, vm.rfb() as viewer:
        assert viewer.desktop_name == "QEMU"
        typist.key_event(ord("k"), True)
        typist.key_event(ord("k"), False)
    assert vm.wait_keys(2) == 2


def test_an_exclusive_viewer_drops_us_under_qemus_default_policy(vm: KeyVm) -> None:
    """QEMU's default share policy lets a viewer that asks for exclusive access push other clients off;
    that is the race the seed's README warns about, and vmbake reports it instead of typing on."""
    with (
        vm.rfb() as typist,
        vm.rfb(shared=False),
        pytest.raises(VncConnectionDropped, match="dropped after 0 key events"),
    ):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            typist.settle(0.1)


@pytest.mark.parametrize("policy", ["ignore", "force-shared"])
def test_an_exclusive_viewer_cannot_drop_us_when_qemu_shares(tmp_path: Path, policy: str) -> None:
    """`share=ignore` lets the viewer in beside us; `share=force-shared` turns it away: typing goes on."""
    with key_vm(tmp_path, share=policy) as vm, vm.rfb() as typist:
        if policy == "ignore":
            viewer = vm.rfb(shared=False)
            viewer.close()
        else:
            with pytest.raises(VncError, match="closed the connection during the handshake"):
                vm.rfb(shared=False)
        typist.settle(0.2)
        typist.key_event(ord("m"), True)
        typist.key_event(ord("m"), False)
        assert vm.wait_keys(2) == 2


def test_killing_qemu_mid_typing_is_a_clear_error(vm: KeyVm) -> None:
    events = to_events(parse("expert ipv6.disable=1 net.ifnames=0 auto=true priority=critical " * 3))
    failure: list[BaseException] = []
    finished = threading.Event()

    def typing() -> None:
        try:
            with vm.rfb() as client:
                type_over_vnc(client, events, 0.005, lambda: False)
        except BaseException as exc:
            failure.append(exc)
        finally:
            finished.set()

    thread = threading.Thread(target=typing)
    thread.start()
    try:
        assert vm.wait_keys(40) >= 40
        vm.child.signal(9)
        killed = time.monotonic()
        assert finished.wait(5), "typing did not stop after QEMU died"
        assert time.monotonic() - killed < 2
    finally:
        thread.join(10)
    assert len(failure) == 1 and isinstance(failure[0], TypingStopped)
    assert f"connection to 127.0.0.1:{vm.port} dropped after" in str(failure[0])
    assert 40 <= failure[0].sent < len(events)
    vm.child.stop()
    assert not vm.child.running()
