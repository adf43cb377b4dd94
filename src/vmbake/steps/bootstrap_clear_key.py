"""stepBootstrapClearKey: take the build's temporary key out of root's authorized_keys after provisioning.

Reads the BootstrapConfig given at construction (keep_build_key, communicator, ssh_username),
state.ssh_public_key and state.comm (the open connection, which stays usable for the shutdown command).
Writes nothing. Does nothing with keep_build_key, without a connection, or without a temporary key.
"""

from __future__ import annotations

import shlex

from vmbake.config.bootstrap import BootstrapConfig
from vmbake.errors import StepError
from vmbake.state import BuildContext
from vmbake.steps import Step


def clear_key_command(public_key: str, user: str) -> str:
    """A shell command that drops every authorized_keys line holding the key's base64 body."""
    body = public_key.split()[1] if len(public_key.split()) > 1 else public_key
    script = (
        'f=/root/.ssh/authorized_keys; [ -f "$f" ] || exit 0; '
        f'grep -vF {shlex.quote(body)} "$f" > "$f.vmbake" || true; '
        'if [ -s "$f.vmbake" ]; then cat "$f.vmbake" > "$f"; rm -f "$f.vmbake"; '
        'else rm -f "$f" "$f.vmbake"; fi'
    )
    command = f"sh -c {shlex.quote(script)}"
    return command if user == "root" else f"sudo -n {command}"


class StepBootstrapClearKey(Step):
    name = "stepBootstrapClearKey"

    def __init__(self, config: BootstrapConfig) -> None:
        self.config = config

    def run(self, ctx: BuildContext) -> None:
        key = ctx.state.ssh_public_key
        comm = ctx.state.comm
        if self.config.keep_build_key or not key or comm is None or self.config.ssh_private_key_file:
            return
        ctx.ui.say("Removing the build's temporary SSH key from root's authorized_keys...")
        output: list[str] = []
        status = comm.run(
            clear_key_command(key, self.config.ssh_username),
            on_stdout=output.append,
            on_stderr=output.append,
            timeout=60,
        )
        if status != 0:
            raise StepError(
                self.name,
                f"could not remove the build key (exit status {status}): {' '.join(output)[-300:]}",
                hint="set keep_build_key to true to leave it, or check ssh_username can write /root/.ssh",
            )
