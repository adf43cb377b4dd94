"""stepBootstrapClearKey: take the build's temporary key out of root's authorized_keys after provisioning.

Reads the BootstrapConfig given at construction (keep_build_key, communicator, ssh_username),
state.ssh_public_key and state.comm (the open connection, which stays usable for the shutdown command).
Writes nothing. Does nothing with keep_build_key, without a connection, or without a temporary key.
"""

from __future__ import annotations

from vmbake.config.bootstrap import BootstrapConfig
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._bootstrap import clear_build_key


class StepBootstrapClearKey(Step):
    name = "stepBootstrapClearKey"

    def __init__(self, config: BootstrapConfig) -> None:
        self.config = config

    def run(self, ctx: BuildContext) -> None:
        clear_build_key(ctx, self.config, self.name)
