"""StepTypeBootCommand against a real QEMU (VNC and QMP), with QEMU's key trace as the witness."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from tests.helpers.bootcmd import KeyVm, key_vm
from vmbake.bootcommand import KeyEvent, parse, to_events
from vmbake.config.qemu import QemuConfig
from vmbake.errors import BuildCancelled, StepError, VmbakeError
from vmbake.state import BuildContext, Options
from vmbake.steps.type_boot_command import StepTypeBootCommand, key_interval
from vmbake.ui import BuildUi, Ui
from vmbake.units import go_duration

pytestmark = [pytest.mark.timeout(60), pytest.mark.host_tools("qemu-system-x86_64")]


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[KeyVm]:
    with key_vm(tmp_path) as vm:
        yield vm


def make_ctx(
    vm: KeyVm | None, answers: str = "", debug: bool = False, **keys: Any
) -> tuple[BuildContext, io.StringIO]:
    keys.setdefault("boot_wait", -1.0)
    keys.setdefault("boot_key_interval", 0.001)
    out = io.StringIO()
    ui = Ui(out=out, err=out, inp=io.StringIO(answers), color=False)
    ctx = BuildContext(
        "qemu", "qemu", QemuConfig(**keys), cast(Any, None), BuildUi(ui, "qemu"), Options(debug=debug)
    )
    ctx.state.http_port = 8123
    if vm is not None:
        ctx.state.vnc_port = vm.port
        ctx.state.qemu = vm.child
        ctx.state.qmp = vm.qmp
    return ctx, out


def expected(text: str) -> list[tuple[str | None, bool]]:
    return [(e.qcode, e.down) for e in to_events(parse(text)) if isinstance(e, KeyEvent)]


def test_go_durations() -> None:
    # One function for every duration vmbake prints in Packer's words (boot_wait, pause_before, timeout).
    assert [go_duration(s) for s in (5, 10, 90, 3600, 0.3, 1.5, 0, 61.5)] == [
        "5s",
        "10s",
        "1m30s",
        "1h0m0s",
        "300ms",
        "1.5s",
        "0s",
        "1m1.5s",
    ]


def test_key_interval_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PACKER_KEY_INTERVAL", raising=False)
    assert key_interval(None) == 0.1
    assert key_interval(None, qmp=True) == 0.02
    monkeypatch.setenv("PACKER_KEY_INTERVAL", "10ms")
    assert key_interval(None) == pytest.approx(0.01)
    assert key_interval(0.0) == pytest.approx(0.01)  # 0 is unset, as in Packer
    assert key_interval(0.025) == pytest.approx(0.025)
    monkeypatch.setenv("PACKER_KEY_INTERVAL", "bogus")
    assert key_interval(0.025) == pytest.approx(0.025)  # the key decides; the variable is not read
    with pytest.raises(VmbakeError) as info:
        key_interval(None)
    assert "PACKER_KEY_INTERVAL='bogus' is not a duration" in info.value.message
    assert "10ms" in (info.value.hint or "")


def test_bad_key_interval_variable_fails_before_the_boot_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACKER_KEY_INTERVAL", "fast")
    ctx, out = make_ctx(None, boot_command=["<enter>"], boot_key_interval=None, boot_wait=3600.0)
    with pytest.raises(StepError) as info:
        StepTypeBootCommand().run(ctx)
    assert "PACKER_KEY_INTERVAL='fast'" in info.value.message
    assert "Waiting" not in out.getvalue()


def test_types_rendered_command_over_vnc(vm: KeyVm) -> None:
    ctx, out = make_ctx(
        vm, boot_command=["<esc>x", "url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/", "{{ .Name }}<enter>"]
    )
    StepTypeBootCommand().run(ctx)
    want = expected("<esc>xurl=http://10.0.2.2:8123/packer-qemu<enter>")
    assert vm.wait_keys(len(want)) == len(want)
    assert [(q, d) for q, d, _ in vm.vnc_keys()] == want
    lines = out.getvalue().splitlines()
    assert lines == [
        f"==> qemu: Connecting to VM via VNC (127.0.0.1:{vm.port})",
        "==> qemu: Typing the boot command over VNC...",
    ]


def test_types_over_qmp_without_any_vnc(vm: KeyVm) -> None:
    ctx, out = make_ctx(
        vm, boot_command=["Ab<wait300ms>!<leftCtrlOn>c<leftCtrlOff>"], boot_command_transport="qmp"
    )
    ctx.state.vnc_port = None
    StepTypeBootCommand().run(ctx)
    want = expected("Ab!<leftCtrlOn>c<leftCtrlOff>")
    assert vm.wait_keys(len(want), qmp=True) == len(want)
    assert vm.qmp_keys() == want
    assert vm.vnc_keys() == []
    assert out.getvalue() == "==> qemu: Typing the boot command over QMP...\n"


def test_boot_wait_message_and_debug_pause(vm: KeyVm) -> None:
    ctx, out = make_ctx(vm, answers="\n", debug=True, boot_command=["<esc>", "ok<enter>"], boot_wait=0.3)
    StepTypeBootCommand().run(ctx)
    text = out.getvalue()
    assert text.startswith("==> qemu: Waiting 300ms for boot...\n")
    assert (
        "==> qemu: Pausing after run of step 'boot_command: <esc>ok<enter>'. Press enter to continue." in text
    )


def test_boot_steps_print_descriptions(vm: KeyVm) -> None:
    ctx, out = make_ctx(vm, answers="\n\n", debug=True, boot_steps=[["a", "first"], ["b"]])
    StepTypeBootCommand().run(ctx)
    text = out.getvalue()
    assert "==> qemu: Typing boot command for: first\n" in text
    assert "'boot description: \"first\", command: a'" in text
    assert "'boot_command: b'" in text
    assert vm.wait_keys(4) == 4


def test_vnc_password_is_set_through_qmp(tmp_path: Path) -> None:
    with key_vm(tmp_path, password=True) as vm:
        ctx, _ = make_ctx(vm, boot_command=["p"], vnc_use_password=True)
        StepTypeBootCommand().run(ctx)
        assert len(ctx.state.vnc_password) == 8
        assert vm.wait_keys(2) == 2


def test_nothing_to_type_or_kernel_boot_is_skipped() -> None:
    ctx, out = make_ctx(None, boot_wait=3600.0)
    StepTypeBootCommand().run(ctx)  # no boot_command: no wait, no connection
    ctx, out = make_ctx(None, boot_command=["<enter>"], installer_boot="kernel", boot_wait=3600.0)
    StepTypeBootCommand().run(ctx)
    assert out.getvalue() == ""


def test_invalid_commands_fail_before_waiting_or_typing(vm: KeyVm) -> None:
    ctx, _ = make_ctx(vm, boot_command=["abc<wait0>"], boot_wait=3600.0)
    with pytest.raises(StepError, match="must be longer than zero"):
        StepTypeBootCommand().run(ctx)
    ctx, _ = make_ctx(vm, boot_command=["café"], boot_command_transport="qmp", boot_wait=3600.0)
    with pytest.raises(StepError, match="'é' has no key on a US keyboard"):
        StepTypeBootCommand().run(ctx)
    ctx, _ = make_ctx(vm, boot_command=["x"], disable_vnc=True)
    with pytest.raises(StepError, match="disable_vnc"):
        StepTypeBootCommand().run(ctx)
    assert vm.vnc_keys() == [] and vm.qmp_keys() == []


def test_cancel_stops_the_boot_wait(vm: KeyVm) -> None:
    ctx, _ = make_ctx(vm, boot_command=["x"], boot_wait=3600.0)
    threading.Timer(0.2, ctx.cancel.set).start()
    with pytest.raises(BuildCancelled):
        StepTypeBootCommand().run(ctx)


def test_qemu_dying_during_boot_wait_fails_fast(vm: KeyVm) -> None:
    ctx, _ = make_ctx(vm, boot_command=["x"], boot_wait=3600.0)
    threading.Timer(0.2, vm.child.stop).start()
    with pytest.raises(StepError, match="QEMU exited"):
        StepTypeBootCommand().run(ctx)


@pytest.mark.parametrize("transport", ["vnc", "qmp"])
def test_qemu_killed_mid_typing_stops_the_build_with_how_far_it_got(vm: KeyVm, transport: str) -> None:
    ctx, _ = make_ctx(
        vm,
        boot_command=["expert ipv6.disable=1 net.ifnames=0 auto=true priority=critical url=http://x/y.cfg"],
        boot_command_transport=transport,
        boot_key_interval=0.01,
    )

    def kill_after_some_keys() -> None:
        vm.wait_keys(30, qmp=transport == "qmp")
        vm.child.signal(9)

    killer = threading.Thread(target=kill_after_some_keys)
    killer.start()
    with pytest.raises(StepError) as caught:
        StepTypeBootCommand().run(ctx)
    killer.join()
    message = str(caught.value)
    assert f"the {transport.upper()} connection to " in message
    assert "dropped while typing the boot command, after" in message
    assert "typed up to 'expert" in message
    assert "QEMU exited with status -9" in message
    assert caught.value.hint and "incomplete" in caught.value.hint
