"""Build steps and the runner that plays them in order and unwinds their cleanups in reverse.

A step is a small class with `run(ctx)` and `cleanup(ctx)`. The runner pushes each step's cleanup on an
ExitStack as soon as the step starts, so cleanups unwind in reverse order on success, on failure and on
Ctrl-C. `-debug` pauses after each step and before each cleanup; `-on-error` decides what a failure does.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import ClassVar

from vmbake import procs
from vmbake.errors import BuildCancelled, StepError, VmbakeError
from vmbake.state import BuildContext

log = logging.getLogger("vmbake.steps")


class Step:
    """One step of a build. Subclasses set `name` (Packer's step name) and override run/cleanup."""

    name: ClassVar[str] = "Step"

    def run(self, ctx: BuildContext) -> None:
        raise NotImplementedError

    def cleanup(self, ctx: BuildContext) -> None:
        """Undo or finish what run() made. Called even when run() failed half-way; must be idempotent."""


class AbortBuild(VmbakeError):
    """Raised by the runner for -on-error=abort: leave what the steps made, skip file cleanups.

    The VM itself is still stopped: the build orchestrator stops every child process on the way out."""


def _pause(ctx: BuildContext, text: str) -> None:
    ctx.ui.ask(f"{text} Press enter to continue.")


def _decide(ctx: BuildContext, error: VmbakeError) -> str:
    """What to do after a step failed: 'cleanup', 'abort' or 'retry'."""
    mode = ctx.options.on_error
    if mode != "ask":
        return mode
    ctx.ui.error(f"Step {error}" if not isinstance(error, StepError) else str(error))
    while True:
        answer = ctx.ui.ask(
            "[c] Clean up and exit, [a] abort without cleanup, or [r] retry step (build may fail even if retry succeeds)?"
        ).lower()
        if answer in ("c", "", "cleanup"):
            return "cleanup"
        if answer in ("a", "abort"):
            return "abort"
        if answer in ("r", "retry"):
            return "retry"


def run_steps(ctx: BuildContext, steps: list[Step]) -> None:
    """Run `steps` in order. Raises the first failure (after cleanups) as a VmbakeError."""
    with contextlib.ExitStack() as stack:
        try:
            for step in steps:
                stack.callback(_cleanup, ctx, step)
                _run_one(ctx, step)
                if ctx.options.debug:
                    _pause(ctx, f"Pausing after run of step '{step.name}'.")
        except AbortBuild:
            ctx.failed = True
            stack.pop_all()  # abort: no cleanups of files; the VM is still stopped by the process guard
            raise
        except KeyboardInterrupt:
            ctx.cancelled = True
            ctx.cancel.set()
            ctx.ui.error("Interrupt received. Cancelling build...")
            raise BuildCancelled() from None
        except BuildCancelled:
            ctx.cancelled = True
            ctx.cancel.set()
            raise
        except VmbakeError:
            ctx.failed = True
            raise


def _run_one(ctx: BuildContext, step: Step) -> None:
    while True:
        started = time.monotonic()
        try:
            try:
                if ctx.cancel.is_set():
                    raise BuildCancelled()
                step.run(ctx)
            except BuildCancelled:
                if ctx.watcher_failure is None:
                    raise
                message, hint = ctx.watcher_failure  # not the user: a watcher stopped the step
                raise StepError(step.name, message, hint) from None
            ctx.state.step_times.append((step.name, time.monotonic() - started))
            return
        except (BuildCancelled, KeyboardInterrupt):
            ctx.state.step_times.append((step.name, time.monotonic() - started))
            raise
        except VmbakeError as error:
            ctx.state.step_times.append((step.name, time.monotonic() - started))
            decision = _decide(ctx, error)
            if decision == "retry":
                step.cleanup(ctx)
                continue
            if decision == "abort":
                ctx.failed = True
                raise AbortBuild(str(error), error.hint) from error  # the hint stays, as in the other modes
            raise
        except Exception as exc:  # a bug in a step: still unwind, but say which step
            ctx.state.step_times.append((step.name, time.monotonic() - started))
            log.debug("step %s raised", step.name, exc_info=True)
            raise StepError(
                step.name, f"internal error: {exc!r}", hint="run with -debug for a traceback"
            ) from exc


def _cleanup(ctx: BuildContext, step: Step) -> None:
    if ctx.options.debug:
        try:
            _pause(ctx, f"Pausing before cleanup of step '{step.name}'.")
        except KeyboardInterrupt:
            pass
    try:
        with procs.cancelled_by(None):  # a cleanup's commands run to their end, even after a cancel
            step.cleanup(ctx)
    except KeyboardInterrupt:
        # A second Ctrl-C during cleanup must not leave the rest undone.
        ctx.ui.error(f"Interrupted during cleanup of {step.name}; finishing cleanup")
    except Exception as exc:
        ctx.ui.error(f"Error cleaning up {step.name}: {exc}")
        log.debug("cleanup of %s raised", step.name, exc_info=True)
