"""Run the builds of a template: select them, run each one's steps and post-processors, report.

Each build gets a BuildContext with a private 0700 work directory (removed at the end), its builder's
step list, then its post-processor chains. As in Packer, the builds run at the same time, each on its
own thread (`-parallel-builds=N` caps how many; 1 runs them one after the other on the main thread), and
a build that fails leaves the others running. The end of the run looks like Packer's ("Build 'NAME'
finished after ...", "==> Builds finished. The artifacts of successful builds are:"), plus a per-step
timing table. SIGTERM and SIGHUP cancel the builds like Ctrl-C; every child process is stopped on the
way out, whatever happened.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from vmbake import procs
from vmbake.builders import bootstrap, null, qemu
from vmbake.cancel import cancel_on_signals
from vmbake.config.bootstrap import BootstrapConfig, host_problem
from vmbake.errors import BuildCancelled, VmbakeError
from vmbake.postprocessors import run_chains
from vmbake.state import Artifact, BuildContext, Options
from vmbake.steps import AbortBuild, Step, run_steps
from vmbake.template.model import BuildSpec, Template
from vmbake.ui import BuildUi, Ui

log = logging.getLogger("vmbake.build")

# Builder type -> the id of its artifact (the output directory); a null build has none.
ARTIFACT_IDS = {"qemu": qemu.BUILDER_ID, "debian-bootstrap": bootstrap.BUILDER_ID}
# Builder type -> its ordered step list.
BUILDERS: dict[str, Callable[[BuildContext], list[Step]]] = {
    "qemu": qemu.steps,
    "debian-bootstrap": bootstrap.steps,
    "null": null.steps,
}
INCOMPLETE_MARKER = "INCOMPLETE"
EXIT_CANCELLED = 130  # as a shell reports a command ended by Ctrl-C
TIMING_THRESHOLD = 0.1  # the timing table leaves out steps quicker than this (seconds)


@dataclass
class BuildResult:
    name: str
    seconds: float
    error: VmbakeError | BuildCancelled | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    step_times: list[tuple[str, float]] = field(default_factory=list)


def runnable_builds(template: Template, ui: Ui) -> list[BuildSpec]:
    """The template's builds that vmbake runs (the loader applied -only/-except); each other one is named
    in one line and left out."""
    for spec in template.skipped:
        ui.say(f"==> build '{spec.name}' skipped: vmbake does not run builder type '{spec.type}'")
    selected = template.runnable
    if not selected:
        raise VmbakeError(
            "no build to run",
            hint="check -only/-except (the warnings above name the template's builds); "
            "vmbake runs qemu, debian-bootstrap and null builds",
        )
    for spec in selected:
        # Validated as Packer does, refused before anything starts: vmbake has no WinRM communicator.
        if getattr(spec.config, "communicator", "") == "winrm":
            raise VmbakeError(
                f"build '{spec.name}': the winrm communicator is not supported (vmbake builds Debian guests)",
                hint="use communicator ssh (or none), or build Windows guests with Packer",
            )
        if isinstance(spec.config, BootstrapConfig) and (lacking := host_problem(spec.config)):
            raise VmbakeError(f"build '{spec.name}': {lacking[0]}", hint=lacking[1])
    return selected


def packer_duration(seconds: float) -> str:
    """Packer's way to say how long a build took: its two largest units ("4 minutes 19 seconds")."""
    ms = round(seconds * 1000)
    parts: list[str] = []
    for unit, size in (("hour", 3_600_000), ("minute", 60_000), ("second", 1000), ("millisecond", 1)):
        value, ms = divmod(ms, size)
        if value:
            parts.append(f"{value} {unit}{'' if value == 1 else 's'}")
    return " ".join(parts[:2]) or "0 seconds"


def builder_steps(ctx: BuildContext) -> list[Step]:
    plan = BUILDERS.get(ctx.builder_type)
    if plan is None:
        raise VmbakeError(
            f"unknown builder type {ctx.builder_type!r}", hint="use 'qemu', 'debian-bootstrap' or 'null'"
        )
    return plan(ctx)


def default_artifacts(ctx: BuildContext) -> list[Artifact]:
    """Packer's artifact for a QEMU build: the output directory. A null build has none."""
    if ctx.state.artifacts:
        return list(ctx.state.artifacts)
    out = ctx.state.output_dir
    builder_id = ARTIFACT_IDS.get(ctx.builder_type)
    if out is None or not out.is_dir() or builder_id is None:
        return []
    return [Artifact(builder_id, out, f"VM files in directory: {out}")]


def artifact_files(artifact: Artifact) -> list[Path]:
    if artifact.path.is_dir():
        return sorted(p for p in artifact.path.rglob("*") if p.is_file())
    return [artifact.path] if artifact.path.exists() else []


def run_post_processors(ctx: BuildContext, artifacts: list[Artifact]) -> list[Artifact]:
    chains = ctx.post_processors
    if not chains:
        return artifacts
    return run_chains(ctx, chains, artifacts)


def run_one(
    spec: BuildSpec, template: Template, options: Options, ui: Ui, cancel: threading.Event | None = None
) -> BuildResult:
    """Run one build to its end (on the calling thread) and say how it ended. `cancel`, when given, is
    the event that the run's signal handler sets to cancel this build from another thread."""
    bui = BuildUi(ui, spec.name)
    ctx = BuildContext(
        spec.name,
        spec.type,
        spec.config,
        template,
        bui,
        options,
        list(spec.provisioners),
        spec.error_cleanup_provisioner,
        [list(chain) for chain in spec.post_processors],
        cancel=cancel if cancel is not None else threading.Event(),
    )
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="vmbake-"))  # mode 0700
    ctx.state.work_dir = work
    result = BuildResult(spec.name, 0.0)
    try:
        with cancel_on_signals(lambda name: ctx.cancel.set()), procs.cancelled_by(ctx.cancel):
            try:
                run_steps(ctx, builder_steps(ctx))
                artifacts = default_artifacts(ctx)
                result.artifacts = run_post_processors(ctx, artifacts)
            except KeyboardInterrupt:
                ctx.cancelled = True
                ctx.cancel.set()
                raise BuildCancelled() from None
    except AbortBuild as err:
        result.error = err
        bui.error(str(err))
        _mark_incomplete(ctx)
    except BuildCancelled as err:
        result.error = err
    except VmbakeError as err:
        result.error = err
        bui.error(str(err))
    finally:
        procs.stop_own()  # this build's children only: the other builds go on
        shutil.rmtree(work, ignore_errors=True)
        result.seconds = time.monotonic() - started
        result.step_times = list(ctx.state.step_times)
    if result.error is None:
        ui.say(f"Build '{spec.name}' finished after {packer_duration(result.seconds)}.", spec.name)
    else:
        ui.error(f"Build '{spec.name}' errored after {packer_duration(result.seconds)}: {result.error}")
    return result


Item = TypeVar("Item")
Result = TypeVar("Result")


class Scheduler(Generic[Item, Result]):
    """Runs work items on threads, at most `limit` at a time (0 or less: no limit), as Packer's build
    command does: items start in order as slots free up, and one that fails leaves the others running.

    `cancel()` (called by the main thread's signal handler) sets the cancel event of every started item
    and starts no more. A signal's exception, landing in the main thread while it waits, is caught here:
    the main thread then waits for every started item to finish its cleanups."""

    POLL = 0.2  # seconds: the main thread waits in slices so that a signal's handler runs promptly

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.interrupted = False
        self._stop = threading.Event()
        self._events: list[threading.Event] = []
        self._running: dict[int, Item] = {}  # started and not yet ended
        self._running_at_cancel: list[Item] = []
        self._crash: BaseException | None = None

    def cancel(self) -> None:
        if not self._stop.is_set():
            running = sorted(dict(self._running).items(), key=lambda pair: pair[0])  # a copy: workers pop
            self._running_at_cancel = [item for _, item in running]
        self._stop.set()
        for event in list(self._events):
            event.set()

    def run(
        self,
        items: Sequence[Item],
        work: Callable[[Item, threading.Event], Result],
        on_interrupt: Callable[[list[Item]], None] = lambda running: None,
    ) -> list[Result]:
        """The results of the items that ran, in the items' order (items never started have none).
        After a signal, `on_interrupt` is told which items were running when it came."""
        slots = threading.Semaphore(self.limit if self.limit > 0 else len(items) or 1)
        results: dict[int, Result] = {}
        started: list[tuple[Item, threading.Thread]] = []

        def worker(index: int, item: Item, event: threading.Event) -> None:
            try:
                results[index] = work(item, event)
            except BaseException as exc:  # a bug: re-raised on the main thread once all have ended
                self._crash = self._crash or exc
                self.cancel()
            finally:
                self._running.pop(index, None)
                slots.release()

        try:
            for index, item in enumerate(items):
                while not self._stop.is_set() and not slots.acquire(blocking=False):
                    time.sleep(self.POLL)
                if self._stop.is_set():
                    break
                event = threading.Event()
                self._events.append(event)
                if self._stop.is_set():
                    event.set()
                thread = threading.Thread(
                    target=worker, args=(index, item, event), name=f"vmbake-build-{index}"
                )
                started.append((item, thread))
                self._running[index] = item
                thread.start()
            self._wait(started)
        except (KeyboardInterrupt, BuildCancelled):
            self.interrupted = True
            self.cancel()
            on_interrupt(self._running_at_cancel)
            self._wait(started)
        if self._crash is not None:
            raise self._crash
        return [results[i] for i in sorted(results)]

    def _wait(self, started: list[tuple[Item, threading.Thread]]) -> None:
        # Sleep, not Thread.join: a signal's exception inside join() can leave the thread looking ended.
        while self._running:
            time.sleep(self.POLL)
        for _, thread in started:
            thread.join(5)  # past its last line: the worker ends at once


def _mark_incomplete(ctx: BuildContext) -> None:
    out = ctx.state.output_dir
    if out is not None and out.is_dir():
        (out / INCOMPLETE_MARKER).write_text(
            "This build failed and was kept by -on-error=abort; these files are not a finished image.\n"
        )
        ctx.ui.say(f"Output directory kept for inspection: {out} (marked {INCOMPLETE_MARKER})")


def report(ui: Ui, results: list[BuildResult]) -> None:
    failed = [r for r in results if r.error is not None]
    for r in results:
        bui = BuildUi(ui, r.name)
        shown = [(name, seconds) for name, seconds in r.step_times if seconds >= TIMING_THRESHOLD]
        if shown and not ui.machine_readable:
            total = sum(seconds for _, seconds in r.step_times)
            bui.say(f"Step timings (steps over {TIMING_THRESHOLD:.1f}s; all steps: {total:.1f}s):")
            width = max(len(name) for name, _ in shown)
            for name, seconds in shown:
                bui.message(f"{name.ljust(width)}  {seconds:8.1f}s  {100 * seconds / max(total, 1e-9):5.1f}%")
        for name, seconds in r.step_times:
            ui.machine(r.name, "step-time", name, f"{seconds:.3f}")
    if failed:
        ui.error("\n==> Some builds didn't complete successfully and had errors:")
        for r in failed:
            ui.error(f"--> {r.name}: {r.error}")
            if r.error is not None and r.error.hint:
                ui.error(f"    {r.error.hint}")
    done = [r for r in results if r.error is None]
    if done:
        ui.say("\n==> Builds finished. The artifacts of successful builds are:")
        for r in done:
            ui.machine(r.name, "artifact-count", str(len(r.artifacts)))
            for i, artifact in enumerate(r.artifacts):
                ui.say(f"--> {r.name}: {artifact.description}")
                _machine_artifact(ui, r.name, i, artifact)
    else:
        ui.say("\n==> Builds finished but no artifacts were created.")


def _machine_artifact(ui: Ui, name: str, index: int, artifact: Artifact) -> None:
    i = str(index)
    files = artifact_files(artifact)
    ui.machine(name, "artifact", i, "builder-id", artifact.builder_id)
    ui.machine(name, "artifact", i, "id", "VM")
    ui.machine(name, "artifact", i, "string", artifact.description)
    ui.machine(name, "artifact", i, "files-count", str(len(files)))
    for j, path in enumerate(files):
        ui.machine(name, "artifact", i, "file", str(j), str(path))
    ui.machine(name, "artifact", i, "end")


def run_builds(template: Template, options: Options, ui: Ui) -> int:
    """Run the template's selected builds: 0 when all succeeded, 130 when the user cancelled (Ctrl-C,
    SIGTERM, SIGHUP; after every build's cleanups ran), 1 otherwise."""
    for secret in template.sensitive_values:
        ui.add_secret(secret)
    results: list[BuildResult] = []
    interrupted = False
    try:
        specs = runnable_builds(template, ui)
        if len(specs) == 1 or options.parallel_builds == 1 or options.debug:
            results = _run_in_turn(specs, template, options, ui)  # -debug pauses: one at a time, as Packer
        else:
            scheduler: Scheduler[BuildSpec, BuildResult] = Scheduler(options.parallel_builds)

            def say_cancelling(running: list[BuildSpec]) -> None:
                for spec in running:
                    ui.error(f"==> {spec.name}: Interrupt received. Cancelling build...", spec.name)

            with cancel_on_signals(lambda name: scheduler.cancel()):
                results = scheduler.run(
                    specs, lambda spec, cancel: run_one(spec, template, options, ui, cancel), say_cancelling
                )
            interrupted = scheduler.interrupted
        report(ui, results)
    finally:
        procs.stop_all()
    if interrupted or any(isinstance(r.error, BuildCancelled) for r in results):
        return EXIT_CANCELLED
    return 0 if results and all(r.error is None for r in results) else 1


def _run_in_turn(specs: list[BuildSpec], template: Template, options: Options, ui: Ui) -> list[BuildResult]:
    """The builds one after the other on the main thread, where a signal interrupts any wait."""
    results: list[BuildResult] = []
    for spec in specs:
        results.append(run_one(spec, template, options, ui))
        if isinstance(results[-1].error, BuildCancelled):
            break  # the user asked to stop: do not start the next build
    return results
