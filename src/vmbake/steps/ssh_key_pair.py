"""StepSSHKeyPair: decide the build's SSH credentials before anything needs `{{ .SSHPublicKey }}`.

Reads config.communicator, ssh_password, ssh_private_key_file, ssh_key_passphrase, ssh_agent_auth,
temporary_key_pair_type/bits and state.work_dir. Produces state.ssh_public_key and, for a temporary
key, state.ssh_private_key_path (mode 0600 in the 0700 work dir). Must run before the HTTP server
and the boot command, which may both hand the public key to the guest.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from vmbake import sshkeys
from vmbake.state import BuildContext
from vmbake.steps import Step


class StepSSHKeyPair(Step):
    name = "StepSSHKeyPair"

    def __init__(self) -> None:
        self._own_dir: Path | None = None

    def run(self, ctx: BuildContext) -> None:
        config = ctx.config
        if config.communicator != "ssh":
            return
        ctx.ui.add_secret(config.ssh_password)
        ctx.ui.add_secret(config.ssh_key_passphrase)
        key_file = config.ssh_private_key_file
        if key_file:
            ctx.ui.say("Using existing SSH private key")
            key = sshkeys.load_private_key(Path(key_file), config.ssh_key_passphrase)
            ctx.state.ssh_private_key_path = Path(key_file)
            ctx.state.ssh_public_key = sshkeys.public_line(key, "vmbake")
            return
        if config.ssh_password or config.ssh_agent_auth:
            return
        kind = config.temporary_key_pair_type or "ed25519"
        bits = config.temporary_key_pair_bits or 0
        ctx.ui.say(f"Creating temporary {kind.upper()} SSH key for instance...")
        directory = ctx.state.work_dir
        if directory is None:
            # No build work dir yet: keep the key in a private dir of our own, removed at cleanup.
            directory = self._own_dir = Path(tempfile.mkdtemp(prefix="vmbake-ssh-"))
        pair = sshkeys.generate_key_pair(directory, kind, bits, comment=f"vmbake-{ctx.name}")
        ctx.state.ssh_private_key_path = pair.private_path
        ctx.state.ssh_public_key = pair.public_line

    def cleanup(self, ctx: BuildContext) -> None:
        path = ctx.state.ssh_private_key_path
        if path is not None and path.name == sshkeys.KEY_FILE_NAME:
            with contextlib.suppress(OSError):
                path.unlink()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None
