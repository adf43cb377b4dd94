"""The `shell-local` post-processor: the shell-local provisioner's command, run after the build.

Same keys, same environment (PACKER_BUILD_NAME, PACKER_BUILDER_TYPE and the user's environment_vars),
same code. As Packer's, the input artifact is always passed on and kept (keep_input_artifact cannot
drop it): to make the command's output the artifact, follow it with `artifice`.
"""

from __future__ import annotations

from typing import Any

from vmbake.config.postprocessors import ShellLocalPostConfig
from vmbake.errors import VmbakeError
from vmbake.provisioners import Run
from vmbake.provisioners.shell_local import provision
from vmbake.state import Artifact, BuildContext


def run(ctx: BuildContext, config: Any, artifacts: list[Artifact]) -> tuple[list[Artifact], bool, bool]:
    if not isinstance(config, ShellLocalPostConfig):
        raise VmbakeError("the shell-local post-processor has no decoded configuration", hint="a vmbake bug")
    provision(Run(ctx, "shell-local"), config)
    return artifacts, True, True
