"""stepRun and stepShutdown against a real QEMU that has no operating system to boot (firmware only).

Quick (a few seconds each): QEMU starts, QMP answers, and the firmware idles with nothing to boot, which is
what a guest that ignores the ACPI power button looks like.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmbake.config.qemu import QemuConfig
from vmbake.errors import StepError
from vmbake.qmp import Qmp
from vmbake.state import BuildContext, Options
from vmbake.steps.run_qemu import StepRun
from vmbake.steps.shutdown import StepShutdown
from vmbake.template.model import Template
from vmbake.ui import BuildUi, Ui

pytestmark = pytest.mark.integration


def context(tmp_path: Path, **keys: object) -> tuple[BuildContext, io.StringIO]:
    config = QemuConfig(accelerator="tcg", headless=True, memory=64, **keys)  # type: ignore[arg-type]
    out = io.StringIO()
    template = Template(path=tmp_path / "t.json", directory=tmp_path, format="json")
    ctx = BuildContext("qemu", "qemu", config, template, BuildUi(Ui(out=out, err=out), "qemu"), Options())
    ctx.state.work_dir = tmp_path
    ctx.state.output_dir = tmp_path
    return ctx, out


@pytest.fixture
def step_run(no_qemu_left: None) -> Iterator[tuple[StepRun, list[BuildContext]]]:
    step = StepRun()
    contexts: list[BuildContext] = []
    yield step, contexts
    for ctx in contexts:
        step.cleanup(ctx)


def test_powerdown_then_stop_when_the_guest_ignores_it(
    tmp_path: Path, step_run: tuple[StepRun, list[BuildContext]]
) -> None:
    step, contexts = step_run
    ctx, out = context(tmp_path, shutdown_timeout=1.0)
    contexts.append(ctx)
    step.run(ctx)
    assert isinstance(ctx.state.qmp, Qmp) and ctx.state.qmp.query_status() == "running"
    assert ctx.state.console_log == tmp_path / "packer-qemu.console.log"
    StepShutdown().run(ctx)
    text = out.getvalue()
    assert "==> qemu: Halting the virtual machine with an ACPI power-down request..." in text
    assert "==> qemu: The guest did not power off within 1.0s; stopping QEMU" in text
    assert ctx.state.qemu is not None and not ctx.state.qemu.running()


def test_a_taken_vnc_port_is_chosen_again(
    tmp_path: Path, step_run: tuple[StepRun, list[BuildContext]]
) -> None:
    step, contexts = step_run
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ctx, out = context(tmp_path, vnc_port_min=5900, vnc_port_max=65535)
        ctx.state.vnc_port = port  # as if another program bound it after stepConfigureVNC chose it
        contexts.append(ctx)
        step.run(ctx)
    assert "A chosen port was taken before QEMU could bind it; choosing again" in out.getvalue()
    assert ctx.state.vnc_port != port
    assert f"-vnc 127.0.0.1:{ctx.state.vnc_port - 5900}" in " ".join(ctx.state.qemu_argv)


def test_a_taken_ssh_port_is_chosen_again_with_the_network_probe_port(
    tmp_path: Path, step_run: tuple[StepRun, list[BuildContext]]
) -> None:
    step, contexts = step_run
    with socket.socket() as taken, socket.socket() as probe:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        probe.bind(("127.0.0.1", 0))
        port, probe_port = taken.getsockname()[1], probe.getsockname()[1]
        probe.close()
        ctx, out = context(tmp_path, disable_vnc=True)
        ctx.state.ssh_host_port, ctx.state.net_probe_port = port, probe_port
        contexts.append(ctx)
        step.run(ctx)
    text = out.getvalue()
    assert "A chosen port was taken before QEMU could bind it; choosing again" in text
    assert ctx.state.ssh_host_port != port and ctx.state.net_probe_port is not None
    assert f"Found port for communicator (SSH, WinRM, etc): {ctx.state.ssh_host_port}." in text
    netdev = ctx.state.qemu_argv[ctx.state.qemu_argv.index("-netdev") + 1]
    assert f"hostfwd=tcp:127.0.0.1:{ctx.state.ssh_host_port}-:22" in netdev
    assert f"hostfwd=tcp:127.0.0.1:{ctx.state.net_probe_port}-:1" in netdev


def test_qemu_that_fails_to_start_reports_its_own_error(
    tmp_path: Path, step_run: tuple[StepRun, list[BuildContext]]
) -> None:
    step, contexts = step_run
    ctx, _ = context(tmp_path, qemuargs=[["-no-such-flag"]])
    contexts.append(ctx)
    with pytest.raises(StepError) as err:
        step.run(ctx)
    assert "Qemu failed to start" in str(err.value)
    assert "-no-such-flag" in str(err.value)  # QEMU's own message names the bad option


def test_unusable_gtk_display_falls_back_to_none(
    tmp_path: Path, step_run: tuple[StepRun, list[BuildContext]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPLAY", ":987")  # no X server there: QEMU's GTK window cannot open
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    step, contexts = step_run
    ctx, out = context(tmp_path)
    ctx.config = QemuConfig(accelerator="tcg", memory=64)  # not headless
    contexts.append(ctx)
    step.run(ctx)
    assert "QEMU cannot open a GTK window" in out.getvalue()
    assert ctx.state.qemu_argv[ctx.state.qemu_argv.index("-display") + 1] == "none"
    assert ctx.state.qemu is not None and ctx.state.qemu.running()


def test_too_long_qmp_socket_path_is_a_clear_error(
    tmp_path: Path, step_run: tuple[StepRun, list[BuildContext]]
) -> None:
    step, contexts = step_run
    ctx, _ = context(tmp_path, qmp_socket_path=str(tmp_path / ("x" * 120)))
    contexts.append(ctx)
    with pytest.raises(StepError, match="too long for a unix socket"):
        step.run(ctx)
