"""The null builder (Packer core): no machine; connect to an existing host (or to nothing) and provision.

Steps: the SSH key of `ssh_private_key_file` (no temporary key), the connection, the provisioners. With
communicator "none" only provisioners that need no guest run. Its artifact is none, as Packer's: the
build ends with "Did not export anything" and post-processors get no input files.
"""

from __future__ import annotations

from vmbake.config.null import NullConfig
from vmbake.errors import VmbakeError
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps.connect import StepConnect
from vmbake.steps.provision import StepProvision
from vmbake.steps.ssh_key_pair import StepSSHKeyPair


def steps(ctx: BuildContext) -> list[Step]:
    """The ordered steps of one null build."""
    if not isinstance(ctx.config, NullConfig):
        raise VmbakeError(f"build {ctx.name!r} is not a null build", hint="this is a vmbake bug")
    return [StepSSHKeyPair(), StepConnect(), StepProvision()]
