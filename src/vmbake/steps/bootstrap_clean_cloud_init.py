"""stepBootstrapCleanCloudInit: leave cloud-init as if it had never run, so it runs on the image's first boot.

Reads the BootstrapConfig given at construction (cloud_init) and state.comm (the open connection).
Writes nothing. Does nothing without cloud_init or without a connection. The build's own boot finds no
data source (no seed is attached), but whatever it left in /var/lib/cloud and /var/log goes.
"""

from __future__ import annotations

from vmbake.config.bootstrap import BootstrapConfig
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._bootstrap import clean_cloud_init


class StepBootstrapCleanCloudInit(Step):
    name = "stepBootstrapCleanCloudInit"

    def __init__(self, config: BootstrapConfig) -> None:
        self.config = config

    def run(self, ctx: BuildContext) -> None:
        clean_cloud_init(ctx, self.config, self.name)
