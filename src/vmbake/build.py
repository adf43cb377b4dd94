"""Run the builds of a template: select them, run each one's steps and post-processors, report.

Each build gets a BuildContext with a private 0700 work directory (removed at the end), its builder's
step list, then its post-processor chains. The end of the run looks like Packer's ("Build 'NAME'
finished after ...", "==> Builds finished. The artifacts of successful builds are:"), plus a per-step
timing table. SIGTERM and SIGHUP cancel the build like Ctrl-C; every child process is stopped on the
way out, whatever happened.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from vmbake import procs
from vmbake.cancel import cancel_on_signals
from vmbake.errors import BuildCancelled, VmbakeError
from vmbake.state import Artifact, BuildContext, Options
from vmbake.steps import AbortBuild, Step, run_steps
from vmbake.template.model import BuildSpec, Template
from vmbake.ui import BuildUi, Ui

log = logging.getLogger("vmbake.build")

# Builder type -> module with `steps(ctx) -> list[Step]`.
BUILDERS = {
    "qemu": "vmbake.builders.qemu",
    "debian-bootstrap": "vmbake.builders.bootstrap",
    "null": "vmbake.builders.null",
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
    module_name = BUILDERS.get(ctx.builder_type)
    if module_name is None:
        raise VmbakeError(
            f"unknown builder type {ctx.builder_type!r}", hint="use 'qemu', 'debian-bootstrap' or 'null'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise VmbakeError(f"the {ctx.builder_type} builder is not available: {exc}") from exc
    step_list: list[Step] = module.steps(ctx)
    return step_list


def default_artifacts(ctx: BuildContext) -> list[Artifact]:
    """Packer's artifact for a QEMU build: the output directory. A null build has none."""
    if ctx.state.artifacts:
        return list(ctx.state.artifacts)
    out = ctx.state.output_dir
    if out is None or not out.is_dir():
        return []
    builder_id = "transcend.qemu" if ctx.builder_type == "qemu" else f"vmbake.{ctx.builder_type}"
    return [Artifact(builder_id, out, f"VM files in directory: {out}")]


def artifact_files(artifact: Artifact) -> list[Path]:
    if artifact.path.is_dir():
        return sorted(p for p in artifact.path.rglob("*") if p.is_file())
    return [artifact.path] if artifact.path.exists() else []


def run_post_processors(ctx: BuildContext, artifacts: list[Artifact]) -> list[Artifact]:
    chains = ctx.post_processors
    if not chains:
        return artifacts
    try:
        run_chains = importlib.import_module("vmbake.postprocessors").run_chains
    except (ImportError, AttributeError) as exc:
        raise VmbakeError(f"post-processors are not available: {exc}") from exc
    result: list[Artifact] = run_chains(ctx, chains, artifacts)
    return result


def run_one(spec: BuildSpec, template: Template, options: Options, ui: Ui) -> BuildResult:
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
    )
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="vmbake-"))  # mode 0700
    ctx.state.work_dir = work
    result = BuildResult(spec.name, 0.0)
    try:
        with cancel_on_signals(lambda name: ctx.cancel.set()):
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
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
        result.seconds = time.monotonic() - started
        result.step_times = list(ctx.state.step_times)
    return result


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
    """Run the template's selected builds one after the other: 0 when all succeeded, 130 when the user cancelled
    (Ctrl-C, SIGTERM, SIGHUP; after the cleanups ran), 1 otherwise."""
    for secret in template.sensitive_values:
        ui.add_secret(secret)
    results: list[BuildResult] = []
    try:
        specs = runnable_builds(template, ui)
        for spec in specs:
            result = run_one(spec, template, options, ui)
            results.append(result)
            if result.error is None:
                ui.say(f"Build '{spec.name}' finished after {packer_duration(result.seconds)}.", spec.name)
            else:
                ui.error(
                    f"Build '{spec.name}' errored after {packer_duration(result.seconds)}: {result.error}"
                )
            if isinstance(result.error, BuildCancelled):
                break  # the user asked to stop: do not start the next build
        report(ui, results)
    finally:
        procs.stop_all()
    if any(isinstance(r.error, BuildCancelled) for r in results):
        return EXIT_CANCELLED
    return 0 if results and all(r.error is None for r in results) else 1
