"""Parallel builds: the scheduler's limit, a failure that leaves the other builds running, and a signal
that cancels every build and runs each one's cleanups.

The builds here are real builds (run_builds, run_one, the step runner, procs) of a builder registered for
the test: its one step follows a plan (succeed after a moment, fail, or run `sleep` until cancelled), so
no guest is needed. The tiny-guest builds in tests/reliability/test_parallel.py run real QEMU builds.
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vmbake import build, procs
from vmbake.build import Scheduler, run_builds
from vmbake.errors import BuildCancelled, VmbakeError
from vmbake.state import Artifact, BuildContext, Options
from vmbake.steps import Step
from vmbake.template.model import BuildSpec, Template
from vmbake.ui import Ui


@dataclass(frozen=True)
class Plan:
    """The test builder's config: what its one step does."""

    action: str  # "ok" (wait `seconds`, then make an artifact), "fail", or "sleep" (a `sleep 60` child)
    seconds: float = 0.3


EVENTS: list[tuple[str, str, float]] = []  # (build, "start" | "end" | "cleanup", time)
EVENTS_LOCK = threading.Lock()


def record(name: str, what: str) -> None:
    with EVENTS_LOCK:
        EVENTS.append((name, what, time.monotonic()))


class StepPlanned(Step):
    name = "stepPlanned"

    def run(self, ctx: BuildContext) -> None:
        plan: Plan = ctx.config
        record(ctx.name, "start")
        try:
            if plan.action == "fail":
                raise VmbakeError(f"{ctx.name} failed on purpose")
            if plan.action == "sleep":
                procs.run(["sleep", "60"])  # must stop on the build's cancel event, on any thread
            elif ctx.cancel.wait(plan.seconds):
                raise BuildCancelled()
            ctx.state.artifacts.append(Artifact("test", Path(f"/{ctx.name}"), f"artifact of {ctx.name}"))
        finally:
            record(ctx.name, "end")

    def cleanup(self, ctx: BuildContext) -> None:
        record(ctx.name, "cleanup")


def steps(ctx: BuildContext) -> list[Step]:
    return [StepPlanned()]


@pytest.fixture(autouse=True)
def planned_builder(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(build.BUILDERS, "planned", steps)
    EVENTS.clear()
    yield
    assert not procs.live_children()


def template(tmp_path: Path, **plans: Plan) -> Template:
    specs = [BuildSpec(name, "planned", plan) for name, plan in plans.items()]
    return Template(path=tmp_path / "t.json", directory=tmp_path, format="json", builds=specs)


def signal_once_started(sig: int, count: int) -> threading.Thread:
    """Send `sig` to this process once `count` builds are in their step (at most 20 s from now)."""

    def send() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with EVENTS_LOCK:
                started = sum(1 for _, what, _ in EVENTS if what == "start")
            if started >= count:
                time.sleep(0.3)  # into the `sleep` child
                break
            time.sleep(0.05)
        os.kill(os.getpid(), sig)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def run(tmp_path: Path, options: Options, **plans: Plan) -> tuple[int, str]:
    text = io.StringIO()
    code = run_builds(template(tmp_path, **plans), options, Ui(out=text, err=text))
    return code, text.getvalue()


def spans() -> dict[str, tuple[float, float]]:
    start = {name: t for name, what, t in EVENTS if what == "start"}
    end = {name: t for name, what, t in EVENTS if what == "end"}
    return {name: (start[name], end[name]) for name in start}


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_builds_run_at_the_same_time_by_default(tmp_path: Path) -> None:
    code, out = run(tmp_path, Options(), a=Plan("ok", 0.5), b=Plan("ok", 0.5))
    assert code == 0, out
    s = spans()
    assert overlap(s["a"], s["b"]), s
    assert "Build 'a' finished after" in out and "Build 'b' finished after" in out
    assert "--> a: artifact of a" in out and "--> b: artifact of b" in out


def test_parallel_builds_1_runs_them_one_after_another(tmp_path: Path) -> None:
    code, out = run(tmp_path, Options(parallel_builds=1), a=Plan("ok", 0.2), b=Plan("ok", 0.2))
    assert code == 0, out
    s = spans()
    assert s["a"][1] <= s["b"][0], s


def test_the_limit_caps_how_many_run_at_once() -> None:
    """The first items hold their slot until a gate opens (1 s later): then as many run as may."""
    running, peak, lock = 0, 0, threading.Lock()
    gate = threading.Event()

    def work(item: int, cancel: threading.Event) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        gate.wait(5)
        with lock:
            running -= 1
        return item * 10

    for limit, items, expected in ((2, 6, 2), (0, 5, 5), (1, 3, 1)):
        gate.clear()
        peak = 0
        threading.Timer(1.0, gate.set).start()
        assert Scheduler[int, int](limit).run(range(items), work) == [i * 10 for i in range(items)]
        assert peak == expected, (limit, peak)


def test_a_failed_build_leaves_the_others_running(tmp_path: Path) -> None:
    code, out = run(tmp_path, Options(), a=Plan("fail"), b=Plan("ok", 0.5))
    assert code == 1, out
    assert "Build 'a' errored after" in out
    assert "Build 'b' finished after" in out
    summary = out[out.index("==> Some builds didn't complete") :]
    assert "--> a: a failed on purpose" in summary
    assert "--> b: artifact of b" in summary.split("==> Builds finished.")[1]


def test_on_error_abort_stops_only_the_failed_build(tmp_path: Path) -> None:
    """As in Packer's build command: abort keeps the failed build's files; the other builds go on."""
    code, out = run(tmp_path, Options(on_error="abort"), a=Plan("fail"), b=Plan("ok", 0.5))
    assert code == 1, out
    assert "Build 'b' finished after" in out
    assert ("a", "cleanup") not in [(n, w) for n, w, _ in EVENTS]  # abort: no cleanup of the failed one
    assert ("b", "cleanup") in [(n, w) for n, w, _ in EVENTS]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_cancels_every_build_and_cleans_up_each(tmp_path: Path, sig: signal.Signals) -> None:
    """Both builds wait in a child process on worker threads; the signal reaches the main thread."""
    sender = signal_once_started(sig, 3)
    code, out = run(tmp_path, Options(), a=Plan("sleep"), b=Plan("sleep"), c=Plan("sleep"))
    sender.join()
    assert code == 130, out
    assert max(t for _, what, t in EVENTS if what == "cleanup") - min(t for _, _, t in EVENTS) < 15
    cleaned = sorted(n for n, w, _ in EVENTS if w == "cleanup")
    assert cleaned == ["a", "b", "c"]
    for name in "abc":
        assert f"==> {name}: Interrupt received. Cancelling build..." in out
        assert f"Build '{name}' errored after" in out
    assert "Traceback" not in out


def test_a_signal_starts_no_more_builds(tmp_path: Path) -> None:
    sender = signal_once_started(signal.SIGINT, 2)
    code, out = run(tmp_path, Options(parallel_builds=2), a=Plan("sleep"), b=Plan("sleep"), c=Plan("ok"))
    sender.join()
    assert code == 130, out
    assert sorted(n for n, w, _ in EVENTS if w == "start") == ["a", "b"]
    assert "Build 'c'" not in out


def test_commands_under_a_cancel_event(tmp_path: Path) -> None:
    """procs.run polls the event, and keeps its output, its errors and its deadline."""
    done = threading.Event()
    with procs.cancelled_by(done):
        assert procs.run(["sh", "-c", "sleep 0.5; echo out"]).stdout == "out\n"
        with pytest.raises(VmbakeError, match="exit status 3"):
            procs.run(["sh", "-c", "sleep 0.3; exit 3"])
        with pytest.raises(VmbakeError, match="did not finish within 1s"):
            procs.run(["sleep", "5"], timeout=1)
        threading.Timer(0.3, done.set).start()
        with pytest.raises(BuildCancelled):
            procs.run(["sleep", "5"])
        with pytest.raises(BuildCancelled):  # a step's command started after the cancel stops too
            procs.run(["sleep", "5"])
        with procs.cancelled_by(None):  # as the step runner runs a cleanup: to its end
            assert procs.run(["sh", "-c", "sleep 0.5; echo cleaned"]).stdout == "cleaned\n"
