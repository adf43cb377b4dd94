"""What the debian-bootstrap builder does over the build's connection (state.comm) at the end: in the
guest (its own steps) or in the image tree (StepTreeFinish), the same commands; and in the tree only, the
first boot's one-off work."""

from __future__ import annotations

import shlex

from vmbake.bootstrap.tree import first_boot_script, needs_update
from vmbake.comm.chroot import ChrootCommunicator
from vmbake.config.bootstrap import BootstrapConfig
from vmbake.errors import StepError
from vmbake.state import BuildContext

CLEAN_COMMAND = "cloud-init clean --logs"


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


def clean_cloud_init(ctx: BuildContext, config: BootstrapConfig, step: str) -> None:
    """cloud_init: leave cloud-init as if it had never run. Does nothing without a connection."""
    comm = ctx.state.comm
    if not config.cloud_init or comm is None:
        return
    ctx.ui.say("Cleaning cloud-init's state so that it runs on the first boot...")
    command = CLEAN_COMMAND if config.ssh_username == "root" else f"sudo -n {CLEAN_COMMAND}"
    output: list[str] = []
    status = comm.run(command, on_stdout=output.append, on_stderr=output.append, timeout=120)
    if status != 0:
        raise StepError(
            step,
            f"'{CLEAN_COMMAND}' failed (exit status {status}): {' '.join(output)[-300:]}",
            hint="check that the cloud-init package is still installed after provisioning",
        )


def clear_build_key(ctx: BuildContext, config: BootstrapConfig, step: str) -> None:
    """Take the build's temporary key out of root's authorized_keys (unless keep_build_key, a key file of
    the user's, or no connection)."""
    key = ctx.state.ssh_public_key
    comm = ctx.state.comm
    if config.keep_build_key or not key or comm is None or config.ssh_private_key_file:
        return
    ctx.ui.say("Removing the build's temporary SSH key from root's authorized_keys...")
    output: list[str] = []
    status = comm.run(
        clear_key_command(key, config.ssh_username),
        on_stdout=output.append,
        on_stderr=output.append,
        timeout=60,
    )
    if status != 0:
        raise StepError(
            step,
            f"could not remove the build key (exit status {status}): {' '.join(output)[-300:]}",
            hint="set keep_build_key to true to leave it, or check ssh_username can write /root/.ssh",
        )


def first_boot_work(ctx: BuildContext, comm: ChrootCommunicator, step: str) -> None:
    """Run the tree's first-boot ConditionNeedsUpdate work in the chroot, when it is due and known."""
    if not needs_update(comm.root):
        return
    script = first_boot_script(comm.root)
    if script is None:
        ctx.ui.debug(
            "first-boot work left to the first boot: no systemd-update-done, or a unit vmbake does not know"
        )
        return
    ctx.ui.message(
        "Doing the first boot's one-off work in the tree (hwdb, ldconfig, journal catalog, sysusers)"
    )
    output: list[str] = []
    status = comm.run(script, on_stdout=output.append, on_stderr=output.append, timeout=300.0)
    for line in output:
        ctx.ui.debug(line)
    if status != 0:
        raise StepError(
            step,
            f"the first boot's one-off work failed in the image tree (exit status {status}): "
            + (output[-1] if output else script.replace("\n", "; ")),
            hint="run the build with -debug to see the commands' output",
        )
