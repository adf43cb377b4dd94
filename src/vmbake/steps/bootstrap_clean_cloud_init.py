"""stepBootstrapCleanCloudInit: leave cloud-init as if it had never run, so it runs on the image's first boot.

Reads the BootstrapConfig given at construction (cloud_init) and state.comm (the open connection).
Writes nothing. Does nothing without cloud_init or without a connection. The build's own boot finds no
data source (no seed is attached), but whatever it left in /var/lib/cloud and /var/log goes.
"""

from __future__ import annotations

from vmbake.config.bootstrap import BootstrapConfig
from vmbake.errors import StepError
from vmbake.state import BuildContext
from vmbake.steps import Step

CLEAN_COMMAND = "cloud-init clean --logs"


class StepBootstrapCleanCloudInit(Step):
    name = "stepBootstrapCleanCloudInit"

    def __init__(self, config: BootstrapConfig) -> None:
        self.config = config

    def run(self, ctx: BuildContext) -> None:
        comm = ctx.state.comm
        if not self.config.cloud_init or comm is None:
            return
        ctx.ui.say("Cleaning cloud-init's state so that it runs on the first boot...")
        command = CLEAN_COMMAND if self.config.ssh_username == "root" else f"sudo -n {CLEAN_COMMAND}"
        output: list[str] = []
        status = comm.run(command, on_stdout=output.append, on_stderr=output.append, timeout=120)
        if status != 0:
            raise StepError(
                self.name,
                f"'{CLEAN_COMMAND}' failed (exit status {status}): {' '.join(output)[-300:]}",
                hint="check that the cloud-init package is still installed after provisioning",
            )
