"""The core: units, the key decoder, the process door and the step runner."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from vmbake import procs
from vmbake.config.fields import Decoder, describe, opt
from vmbake.config.qemu import QemuConfig
from vmbake.errors import BuildCancelled, StepError, VmbakeError
from vmbake.state import BuildContext, Options
from vmbake.steps import AbortBuild, Step, run_steps
from vmbake.ui import BuildUi, Ui
from vmbake.units import format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5), ("1m30s", 90), ("300ms", 0.3), ("1h", 3600), ("0", 0), ("1.5s", 1.5), ("2m", 120)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "5q", "s", "1m30", "-"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [
        ("5120M", 5120 << 20),
        ("5120", 5120 << 20),
        (40, 40 << 20),
        ("40G", 40 << 30),
        ("512k", 512 << 10),
        ("2GiB", 2 << 30),
    ],
)
def test_parse_size(text: str | int, nbytes: int) -> None:
    assert parse_size(text) == nbytes


@pytest.mark.parametrize("text", ["5x", "", "1.5G", "-1G", "G"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_format_size() -> None:
    assert format_size(289 << 20) == "289.0 MiB"
    assert format_size(512) == "512 B"


@dataclass(frozen=True)
class _Small:
    name: str = opt("x", "a name")
    count: int = opt(1, "a count", minimum=1)
    wait: float = opt("5s", "a wait", kind="duration")
    mode: str = opt("a", "a mode", choices=("a", "b"))
    items: list[str] = opt(factory=list, doc="some items")


def test_decoder_collects_every_problem_with_paths() -> None:
    decoder = Decoder("t.json", locate=lambda path: 7 if path.endswith("count") else None)
    value = decoder.decode(
        _Small, {"count": 0, "wait": "5q", "mode": "c", "nmae": "y", "items": [1, {}]}, "b[0]"
    )
    keys = [p.key for p in decoder.problems]
    assert keys == ["b[0].count", "b[0].wait", "b[0].mode", "b[0].nmae", "b[0].items[1]"]
    assert decoder.problems[0].line == 7
    assert "did you mean 'name'" in decoder.problems[3].hint
    assert value.count == 1  # defaults kept where the value was bad


def test_decoder_weak_types_like_packer_json() -> None:
    decoder = Decoder("t.json")
    value = decoder.decode(_Small, {"count": "3", "items": "one"}, "")
    assert not decoder.problems
    assert value.count == 3
    assert value.items == ["one"]


def test_qemu_defaults_are_packers() -> None:
    config = QemuConfig()
    assert (config.disk_size, config.memory, config.format, config.machine_type) == (
        40960 << 20,
        512,
        "qcow2",
        "pc",
    )
    assert (config.vnc_port_min, config.vnc_port_max, config.http_port_min, config.http_port_max) == (
        5900,
        6000,
        8000,
        9000,
    )
    assert (config.host_port_min, config.host_port_max, config.ssh_timeout, config.boot_wait) == (
        2222,
        4444,
        300.0,
        10.0,
    )
    assert config.http_bind_address == "127.0.0.1"  # vmbake keeps the preseed off the network
    assert all(meta.doc for _key, _type, _default, meta in describe(QemuConfig))


def test_run_reports_failure_with_output() -> None:
    with pytest.raises(VmbakeError) as info:
        procs.run(["sh", "-c", "echo the reason >&2; exit 3"])
    assert "exit status 3" in info.value.message
    assert "the reason" in info.value.message


def test_run_missing_tool_names_package() -> None:
    with pytest.raises(VmbakeError) as info:
        procs.which("qemu-img-does-not-exist")
    assert "not found" in info.value.message
    with pytest.raises(VmbakeError) as info:
        procs.run(["mmdebstrap-missing"])
    assert info.value.hint


def test_run_streams_lines_and_times_out_when_silent() -> None:
    seen: list[tuple[float, str]] = []
    start = time.monotonic()
    procs.run(
        ["sh", "-c", "echo one; sleep 0.4; echo two"],
        on_line=lambda line: seen.append((time.monotonic(), line)),
    )
    assert [line for _t, line in seen] == ["one", "two"]
    assert seen[0][0] - start < 0.3  # the first line came before the command ended
    with pytest.raises(VmbakeError, match="did not finish"):
        procs.run(["sleep", "30"], on_line=lambda _l: None, timeout=0.3)


def test_spawned_child_is_stopped_and_its_group_too(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    child = procs.spawn(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"])
    deadline = time.monotonic() + 5
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    grandchild = int(pidfile.read_text())
    assert child in procs.live_children()
    child.stop(grace=1)
    assert child not in procs.live_children()
    _wait_gone(grandchild)


def test_child_dies_with_its_parent(tmp_path: Path) -> None:
    """A vmbake killed by SIGKILL takes its QEMU along (parent-death signal)."""
    pidfile = tmp_path / "child"
    script = (
        "import sys, time; from vmbake import procs;"
        f"c = procs.spawn(['sleep', '60']); open({str(pidfile)!r}, 'w').write(str(c.pid)); time.sleep(60)"
    )
    import subprocess
    import sys

    parent = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 10
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child_pid = int(pidfile.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    _wait_gone(child_pid)


def _wait_gone(pid: int, seconds: float = 5.0) -> None:
    """Poll until `pid` is dead; a zombie counts as dead (it only waits to be reaped)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        status = Path(f"/proc/{pid}/status")
        if status.exists() and "State:\tZ" in status.read_text():
            return
        assert time.monotonic() < deadline, f"process {pid} is still alive"
        time.sleep(0.05)


class _Record(Step):
    def __init__(self, name: str, log: list[str], fail: Exception | None = None) -> None:
        self.step_name = name
        self.log = log
        self.fail = fail

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.step_name

    def run(self, ctx: BuildContext) -> None:
        self.log.append(f"run {self.step_name}")
        if self.fail is not None:
            raise self.fail

    def cleanup(self, ctx: BuildContext) -> None:
        self.log.append(f"cleanup {self.step_name}")


def _ctx(options: Options, answers: str = "") -> tuple[BuildContext, io.StringIO]:
    out = io.StringIO()
    ui = Ui(out=out, err=out, inp=io.StringIO(answers), color=False)
    ctx = BuildContext(
        name="qemu",
        builder_type="qemu",
        config=QemuConfig(),
        template=None,
        ui=BuildUi(ui, "qemu"),
        options=options,  # type: ignore[arg-type]
    )
    return ctx, out


def test_runner_unwinds_in_reverse_on_failure() -> None:
    log: list[str] = []
    ctx, _out = _ctx(Options())
    steps = [_Record("a", log), _Record("b", log), _Record("c", log, VmbakeError("boom")), _Record("d", log)]
    with pytest.raises(VmbakeError, match="boom"):
        run_steps(ctx, steps)
    assert log == ["run a", "run b", "run c", "cleanup c", "cleanup b", "cleanup a"]
    assert ctx.failed and ctx.halted
    assert [name for name, _ in ctx.state.step_times] == ["a", "b", "c"]


def test_runner_turns_ctrl_c_into_cancel_after_cleanup() -> None:
    log: list[str] = []
    ctx, out = _ctx(Options())
    with pytest.raises(BuildCancelled):
        run_steps(ctx, [_Record("a", log), _Record("b", log, KeyboardInterrupt())])
    assert log == ["run a", "run b", "cleanup b", "cleanup a"]
    assert ctx.cancelled
    assert "Cancelling build" in out.getvalue()


def test_runner_wraps_bugs_with_the_step_name() -> None:
    ctx, _out = _ctx(Options())
    with pytest.raises(StepError, match="boom: internal error"):
        run_steps(ctx, [_Record("boom", [], RuntimeError("bug"))])


def test_runner_abort_skips_cleanup() -> None:
    log: list[str] = []
    ctx, _out = _ctx(Options(on_error="abort"))
    with pytest.raises(AbortBuild):
        run_steps(ctx, [_Record("a", log), _Record("b", log, VmbakeError("boom"))])
    assert log == ["run a", "run b"]


def test_runner_ask_retry_then_cleanup() -> None:
    log: list[str] = []
    ctx, out = _ctx(Options(on_error="ask"), answers="r\nc\n")
    with pytest.raises(VmbakeError):
        run_steps(ctx, [_Record("a", log), _Record("b", log, VmbakeError("boom"))])
    assert log == ["run a", "run b", "cleanup b", "run b", "cleanup b", "cleanup a"]
    assert "[r] retry step" in out.getvalue()


class _WaitForCancel(Step):
    name = "StepWaits"

    def run(self, ctx: BuildContext) -> None:
        if not ctx.cancel.wait(10):
            raise AssertionError("nothing stopped the step")
        raise BuildCancelled()


def test_runner_reports_a_watchers_failure_as_a_failure_of_the_running_step() -> None:
    log: list[str] = []
    ctx, _out = _ctx(Options())
    timer = threading.Timer(0.1, ctx.fail_from_watcher, ("QEMU stopped the VM: disk full", "free space"))
    timer.start()
    with pytest.raises(StepError) as caught:
        run_steps(ctx, [_Record("a", log), _WaitForCancel(), _Record("c", log)])
    timer.join()
    assert str(caught.value) == "StepWaits: QEMU stopped the VM: disk full"
    assert caught.value.hint == "free space"
    assert ctx.failed and not ctx.cancelled
    assert log == ["run a", "cleanup a"]


def test_runner_debug_pauses_after_each_step() -> None:
    ctx, out = _ctx(Options(debug=True), answers="\n" * 10)
    run_steps(ctx, [_Record("StepA", []), _Record("StepB", [])])
    text = out.getvalue()
    assert "Pausing after run of step 'StepA'. Press enter to continue." in text
    assert "Pausing before cleanup of step 'StepB'. Press enter to continue." in text


def test_ui_masks_secrets_everywhere() -> None:
    out = io.StringIO()
    ui = Ui(out=out, err=out, machine_readable=True)
    ui.add_secret("hunter2secret")
    BuildUi(ui, "qemu").say("password is hunter2secret, ok")
    line = out.getvalue().strip()
    assert "hunter2secret" not in line
    assert line.split(",", 3)[1:3] == ["qemu", "ui"]
    assert "<sensitive>%!(PACKER_COMMA) ok" in line
