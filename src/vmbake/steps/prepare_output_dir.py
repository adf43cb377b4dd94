"""stepPrepareOutputDir: make the output directory, empty and ours.

Reads config.output_directory (default output-BUILDNAME) and options.force. Writes state.output_dir.
An existing directory is an error unless -force, which deletes it first. The cleanup deletes the
directory when the build failed or was cancelled. The directory holds an INCOMPLETE marker from the
start, removed only when every step succeeded, so a directory left by -on-error=abort or by a killed
vmbake never looks like a finished image.
"""

from __future__ import annotations

import dataclasses
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
            _refuse_precious(self.name, ctx, path)
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


def _refuse_precious(step: str, ctx: BuildContext, path: Path) -> None:
    """-force deletes only what a build made: never /, the working directory or one of its parents, the
    home directory, or a directory that holds the template or a file or directory the build reads."""
    target = path.resolve()
    here = Path.cwd().resolve()
    if (
        target == Path("/").resolve()
        or target == here
        or target in here.parents
        or target == Path.home().resolve()
    ):
        raise StepError(
            step,
            f"refusing to delete '{path}' for -force: it is the root directory, the current directory, one of "
            "its parents or the home directory",
            hint="set output_directory to a directory of its own, such as output-NAME",
        )
    for what, source in _inputs(ctx):
        resolved = source.resolve()
        if resolved == target or target in resolved.parents:
            raise StepError(
                step,
                f"refusing to delete '{path}' for -force: it holds {what} ({source})",
                hint="set output_directory to a directory of its own, such as output-NAME, and move the "
                "template's files out of it",
            )


def _inputs(ctx: BuildContext) -> list[tuple[str, Path]]:
    """The template and every existing local file or directory its build and provisioners name."""
    found = [("the template", ctx.template.path)]
    configs: list[tuple[str, object]] = [("the builder", ctx.config)]
    configs += [(f"a {p.type} provisioner", p.config) for p in ctx.provisioners]
    for owner, config in configs:
        for key, value in _path_values(config):
            try:
                candidate = Path(value).expanduser()
                if candidate.exists():
                    found.append((f"what {owner}'s {key} names", candidate))
            except (OSError, ValueError, RuntimeError):  # not a path at all (too long, a NUL, ~nobody)
                continue
    return found


def _path_values(config: object) -> list[tuple[str, str]]:
    """(key, value) of the strings in a config dataclass that could name a local file."""
    if not dataclasses.is_dataclass(config):
        return []
    out: list[tuple[str, str]] = []
    for f in dataclasses.fields(config):
        if f.name.startswith("output"):
            continue  # what the build writes, not what it reads
        value = getattr(config, f.name)
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if isinstance(item, str) and item and "://" not in item and "{{" not in item and "\n" not in item:
                out.append((f.name, item))
    return out


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
