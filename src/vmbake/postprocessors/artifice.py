"""The `artifice` post-processor: the listed files become the artifact, in place of the input's.

As Packer's: `files` are plain paths (no globs), each must exist when the post-processor runs, the
input artifact's files are named as discarded from the artifact, and the input is kept unless
keep_input_artifact is false.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vmbake.config.postprocessors import ArtificeConfig
from vmbake.errors import VmbakeError
from vmbake.postprocessors import files_of
from vmbake.state import Artifact, BuildContext

BUILDER_ID = "packer.post-processor.artifice"


def run(ctx: BuildContext, config: Any, artifacts: list[Artifact]) -> tuple[list[Artifact], bool, bool]:
    if not isinstance(config, ArtificeConfig) or not config.files:
        raise VmbakeError("artifice: no files", hint="list the artifact's files in 'files'")
    old = files_of(artifacts)
    if old:
        ctx.ui.say(f"Discarding files from artifact: {', '.join(str(p) for p in old)}")
    missing = [f for f in config.files if not Path(f).exists()]
    if missing:
        raise VmbakeError(
            f"artifice: {missing[0]} does not exist",
            hint="each of 'files' must have been made by the time artifice runs (paths are not globs)",
        )
    ctx.ui.say(f"Using these artifact files: {', '.join(config.files)}")
    produced = [Artifact(BUILDER_ID, Path(f), f"Created artifact from files: {f}") for f in config.files]
    return produced, True, False
