"""The template's provisioners run in order against the guest (or the host): StepProvision's work, and
StepTreeProvision's in the image tree.

Reads ctx.provisioners (this build's, already selected and decoded by the template loader: type, config,
pause_before, max_retries, timeout), state.comm and, when one fails, ctx.error_cleanup_provisioner.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from typing import Any

from vmbake.config.ansible import AnsibleConfig, AnsibleLocalConfig
from vmbake.config.provisioners import BreakpointConfig, FileConfig, ShellConfig, ShellLocalConfig
from vmbake.errors import BuildCancelled, StepError, VmbakeError
from vmbake.provisioners import Run, build_data
from vmbake.provisioners import ansible as ansible_provisioner
from vmbake.provisioners import ansible_local as ansible_local_provisioner
from vmbake.provisioners import breakpoint as breakpoint_provisioner
from vmbake.provisioners import file as file_provisioner
from vmbake.provisioners import shell as shell_provisioner
from vmbake.provisioners import shell_local as shell_local_provisioner
from vmbake.sshkeys import KEY_FILE_NAME
from vmbake.state import BuildContext
from vmbake.template.gotemplate import fill_build_data
from vmbake.template.model import ProvisionerSpec
from vmbake.units import go_duration

STEP = "StepProvision"  # the step named in errors

KINDS: dict[str, tuple[type[Any], Callable[[Run, Any], None]]] = {
    "shell": (ShellConfig, shell_provisioner.provision),
    "file": (FileConfig, file_provisioner.provision),
    "shell-local": (ShellLocalConfig, shell_local_provisioner.provision),
    "breakpoint": (BreakpointConfig, breakpoint_provisioner.provision),
    "ansible": (AnsibleConfig, ansible_provisioner.provision),
    "ansible-local": (AnsibleLocalConfig, ansible_local_provisioner.provision),
}


def run_provisioner(ctx: BuildContext, spec: ProvisionerSpec, step: str = STEP) -> None:
    """One provisioner, decoded for this build at load time, with its common keys: pause_before,
    timeout and max_retries."""
    if spec.type not in KINDS:
        raise StepError(
            step,
            f"provisioner {spec.type!r} is not supported",
            hint="vmbake runs " + ", ".join(KINDS) + " provisioners",
        )
    cls, provision = KINDS[spec.type]
    if not isinstance(spec.config, cls):
        raise StepError(
            step,
            f"the {spec.type} provisioner has no decoded configuration",
            hint="load the template with checks on (vmbake build does)",
        )
    if spec.pause_before > 0:
        ctx.ui.say(f"Pausing {go_duration(spec.pause_before)} before the next provisioner...")
        if ctx.cancel.wait(spec.pause_before):
            raise BuildCancelled()
    timeout = spec.timeout or 0.0
    attempt = 0
    while True:
        if timeout > 0:
            ctx.ui.say(f"Setting a {go_duration(timeout)} timeout for the next provisioner...")
        run = Run(ctx, spec.type, time.monotonic() + timeout if timeout > 0 else None)
        try:
            provision(run, fill_build_data(spec.config, build_data(ctx)))
            return
        except BuildCancelled:
            raise
        except VmbakeError as exc:
            if attempt >= spec.max_retries:
                raise
            attempt += 1
            ctx.ui.error(f"Provisioner failed: {exc.message}; trying again ({attempt} of {spec.max_retries})")
            run.sleep(min(1.0 * attempt, 5.0))


def run_all(ctx: BuildContext, step: str = STEP) -> None:
    """ctx.provisioners in order over state.comm; when one fails, ctx.error_cleanup_provisioner, then the
    error (a StepError naming `step`). At the end, ssh_clear_authorized_keys."""
    for spec in ctx.provisioners:
        try:
            run_provisioner(ctx, spec, step)
        except BuildCancelled:
            raise
        except VmbakeError as exc:
            _error_cleanup(ctx, step)
            if isinstance(exc, StepError):
                raise
            raise StepError(step, exc.message, exc.hint) from None
    if ctx.config.ssh_clear_authorized_keys:
        clear_temporary_key(ctx)


def _error_cleanup(ctx: BuildContext, step: str) -> None:
    spec = ctx.error_cleanup_provisioner
    if spec is None:
        return
    ctx.ui.say("Provisioning step had errors: Running the cleanup provisioner, if present...")
    try:
        run_provisioner(ctx, spec, step)
    except VmbakeError as exc:
        ctx.ui.error(f"The error-cleanup-provisioner failed too: {exc.message}")


def clear_temporary_key(ctx: BuildContext) -> None:
    """ssh_clear_authorized_keys: take the build's temporary key out of the guest's authorized_keys."""
    comm, key = ctx.state.comm, ctx.state.ssh_public_key.split()
    path = ctx.state.ssh_private_key_path
    if comm is None or len(key) < 2 or path is None or path.name != KEY_FILE_NAME:
        return
    ctx.ui.say("Trying to remove ephemeral keys from authorized_keys files")
    # grep -F: the key's base64 holds '/' and '+', which sed addresses would need escaped.
    keep = f"grep -vF {shlex.quote(key[1])}"
    script = "; ".join(
        # No temporary file: the directory may not be writable; grep's status 1 means "no line left".
        f"if [ -f {f} ] && [ -w {f} ]; then k=$({keep} {f}); if [ $? -le 1 ]; then "
        f'if [ -n "$k" ]; then printf "%s\\n" "$k" > {f}; else : > {f}; fi; fi; fi'
        for f in ("$HOME/.ssh/authorized_keys", "/root/.ssh/authorized_keys")
    )
    lines: list[str] = []
    status = comm.run(script, on_stdout=lines.append, on_stderr=lines.append, timeout=60)
    if status != 0:
        ctx.ui.warn(f"could not remove the temporary key from authorized_keys: {' '.join(lines) or status}")
