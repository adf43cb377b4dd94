"""stepPrepareOutputDir: make the output directory, empty and ours.

Reads config.output_directory (default output-BUILDNAME) and options.force. Writes state.output_dir.
An existing directory is an error unless -force, which deletes it first. The cleanup deletes the
directory when the build failed or was cancelled. The directory holds an INCOMPLETE marker from the
start, removed only when every step succeeded, so a directory left by -on-error=abort or by a killed
vmbake never looks like a finished image.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from vmbake.errors import StepError
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import output_dir, qemu_config

INCOMPLETE_MARKER = "INCOMPLETE"
MARKER_TEXT = "This build did not finish (it failed, was interrupted or is still running); these files are not a finished image.\n"


class StepPrepareOutputDir(Step):
    name = "stepPrepareOutputDir"

    def __init__(self) -> None:
        self._created = False

    def run(self, ctx: BuildContext) -> None:
        qemu_config(ctx, self.name)
        path = output_dir(ctx)
        if path.exists() or path.is_symlink():
            if not ctx.options.force:
                raise StepError(
                    self.name,
                    f"Output directory '{path}' already exists. It must not exist.",
                    hint="remove it, set another output_directory, or run with -force to delete it",
                )
            _refuse_precious(self.name, path)
            ctx.ui.say("Deleting previous output directory...")
            _remove(path)
        # Recorded before the mkdir: a Ctrl-C landing just after it must still leave the cleanup a
        # directory to remove (the path did not exist a moment ago, so it is ours).
        self._created = True
        ctx.state.output_dir = path
        try:
            path.mkdir(parents=True, mode=0o755)
        except OSError as exc:
            self._created = False
            ctx.state.output_dir = None
            raise StepError(self.name, f"cannot create output directory '{path}': {exc.strerror}") from exc
        # Until the build succeeds the directory says it is unfinished, even if vmbake is SIGKILLed.
        (path / INCOMPLETE_MARKER).write_text(MARKER_TEXT)

    def cleanup(self, ctx: BuildContext) -> None:
        if self._created and not ctx.halted and ctx.state.output_dir is not None:
            (ctx.state.output_dir / INCOMPLETE_MARKER).unlink(missing_ok=True)  # the build succeeded
            return
        if not (self._created and ctx.halted):
            return
        path = ctx.state.output_dir
        if path is None or not path.exists():
            return
        ctx.ui.say("Deleting output directory...")
        _remove(path)
        self._created = False


def _refuse_precious(step: str, path: Path) -> None:
    """-force must never delete the working directory, one of its parents, or the home directory."""
    target = path.resolve()
    here = Path.cwd().resolve()
    if target == here or target in here.parents or target == Path.home().resolve():
        raise StepError(
            step,
            f"refusing to delete '{path}' for -force: it is the current directory, one of its parents "
            "or the home directory",
            hint="set output_directory to a directory of its own, such as output-NAME",
        )


def _remove(path: Path) -> None:
    # A QEMU that is still exiting may hold a file for a moment: try a few times.
    for attempt in range(5):
        try:
            if path.is_symlink() or path.is_file():
                path.unlink()
            else:
                shutil.rmtree(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
