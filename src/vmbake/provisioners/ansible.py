"""The `ansible` provisioner: ansible-playbook on the host, against the guest, over the build's SSH connection.

Packer's plugin puts an SSH proxy of its own between ansible and the guest by default. vmbake connects ansible
directly, as the plugin does with `use_proxy = false`: the guest's forwarded port on 127.0.0.1 is reachable
from the host, so ansible needs no proxy, and the build's temporary key is already in a private file. The
arguments, the inventory and the environment are the plugin's: a playbook sees `packer_build_name`,
`packer_builder_type`, `packer_http_addr` and the same `ansible_*` host variables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shlex
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vmbake import procs
from vmbake.config.ansible import ANSIBLE_HINT, INVENTORY_LINE, AnsibleConfig
from vmbake.errors import VmbakeError
from vmbake.provisioners import Run, render
from vmbake.state import BuildContext

_ROLES = re.compile(r"^roles:", re.MULTILINE)
_COLLECTIONS = re.compile(r"^collections:", re.MULTILINE)


@dataclass(frozen=True)
class Target:
    """How ansible reaches the guest: what the plugin's inventory and arguments are made of."""

    host: str
    port: int
    user: str
    key_file: str  # "" when the build logs in with its SSH agent
    http_addr: str  # "" when the build has no HTTP server


def target(ctx: BuildContext, config: AnsibleConfig) -> Target:
    """The build's own SSH connection: the address it logged in to, its user and its private key file."""
    from vmbake.vm import ssh_target  # the connect step's rule for host and port, not a copy

    ssh = ssh_target(ctx)
    user = ssh.username
    if config.use_proxy is False and config.user:
        user = config.user
    key = ctx.state.ssh_private_key_path
    http = f"{ctx.state.http_ip}:{ctx.state.http_port}" if ctx.state.http_port is not None else ""
    return Target(ssh.host, ssh.port, user, str(key) if key is not None else "", http)


def has_arg(name: str, args: list[str]) -> bool:
    """The plugin's test: `name` is one of the '='-separated pieces of an argument."""
    return any(name in arg.split("=") for arg in args)


def ansible_env(config: AnsibleConfig) -> dict[str, str]:
    """ansible_env_vars, then the plugin's own settings, which come last and so win."""
    pairs = list(config.ansible_env_vars)
    if not config.ssh_host_key_file:
        pairs.append("ANSIBLE_HOST_KEY_CHECKING=False")
    if not config.use_sftp:
        pairs.append("ANSIBLE_SCP_IF_SSH=True")
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise VmbakeError(
                f"ansible: ansible_env_vars entry {pair!r} is not KEY=VALUE", hint="write NAME=value"
            )
        env[key] = value
    return env


def playbook_argv(
    config: AnsibleConfig, ctx: BuildContext, where: Target, inventory: str, env: dict[str, str]
) -> list[str]:
    """ansible-playbook's argv, in the plugin's order; the inventory and the playbook come last."""
    args = [
        "-e",
        f"packer_build_name={json.dumps(ctx.name, ensure_ascii=False)}",
        "-e",
        f"packer_builder_type={ctx.builder_type}",
    ]
    if where.http_addr:
        args += ["-e", f"packer_http_addr={where.http_addr}"]
    if where.key_file:
        extra = config.ansible_ssh_extra_args or ["-o IdentitiesOnly=yes"]
        args += ["--ssh-extra-args", "'" + "' '".join(extra) + "'"]
    args += config.extra_arguments
    if not has_arg("ansible_password", args) and where.key_file:
        # -e outranks the host variables an inventory directory may set, as the plugin says.
        args += ["-e", f"ansible_ssh_private_key_file={where.key_file}"]
    if has_arg("ansible_password", args) and not (
        has_arg("ansible_host_key_checking", args) or "ANSIBLE_HOST_KEY_CHECKING" in env
    ):
        args += ["-e", "ansible_host_key_checking=False"]
    return [config.command, *args, "-i", inventory, os.path.abspath(config.playbook_file)]


def galaxy_argvs(config: AnsibleConfig, requirements: str) -> list[list[str]]:
    """The ansible-galaxy runs for a requirements file: roles (v1 files, or a roles: section), collections."""
    roles = ["install", "-r", config.galaxy_file]
    collections = ["collection", "install", "-r", config.galaxy_file]
    for flag, wanted in (
        ("-f", config.galaxy_force_install),
        ("--force-with-deps", config.galaxy_force_with_deps),
    ):
        if wanted:
            roles.append(flag)
            collections.append(flag)
    if config.roles_path:
        roles += ["-p", config.roles_path]
    if config.collections_path:
        collections += ["-p", config.collections_path]
    has_roles, has_collections = bool(_ROLES.search(requirements)), bool(_COLLECTIONS.search(requirements))
    runs = []
    if has_roles or not has_collections:
        runs.append([config.galaxy_command, *roles])
    if has_collections:
        runs.append([config.galaxy_command, *collections])
    return runs


def inventory_text(config: AnsibleConfig, ctx: BuildContext, where: Target) -> str:
    """The generated inventory: the guest's line, then a section per group holding it, then the empty groups."""
    line = render(
        ctx,
        config.inventory_file_template or INVENTORY_LINE,
        HostAlias=config.host_alias,
        Host=where.host,
        Port=str(where.port),
        User=where.user,
    )
    text = line + "".join(f"[{group}]\n{line}" for group in config.groups)
    return text + "".join(f"[{group}]\n" for group in config.empty_groups)


def shown(argv: list[str], config: AnsibleConfig, ctx: BuildContext) -> str:
    """The command line as printed: values of password or secret arguments, and the SSH password, masked."""
    text = " ".join(argv)
    secrets = []
    for arg in config.extra_arguments:
        name, sep, value = arg.partition("=")
        if sep and value and ("password" in name.lower() or "secret" in name.lower()):
            secrets.append(value)
    password = getattr(ctx.config, "ssh_password", "")
    if password:
        secrets.append(password)
    for secret in secrets:
        text = text.replace(secret, "*****")
    return text


def rendered(config: AnsibleConfig, ctx: BuildContext) -> AnsibleConfig:
    """The config with the build's values filled into extra_arguments and ansible_env_vars, as the plugin
    does when it starts."""
    return dataclasses.replace(
        config,
        extra_arguments=[render(ctx, a) for a in config.extra_arguments],
        ansible_env_vars=[render(ctx, a) for a in config.ansible_env_vars],
    )


def provision(run: Run, config: AnsibleConfig) -> None:
    ctx = run.ctx
    config = rendered(config, ctx)
    ctx.ui.say("Provisioning with Ansible...")
    if config.use_proxy:
        ctx.ui.warn(
            "ansible: use_proxy = true is taken as false: vmbake connects ansible-playbook to the guest directly"
        )
    elif config.use_proxy is None and config.user and config.user != target(ctx, config).user:
        ctx.ui.warn(
            f"ansible: user {config.user!r} is not used: as through Packer's proxy, the playbook logs in as the "
            "build's ssh_username; set use_proxy = false to log in as 'user'"
        )
    command = _executable(config.command)
    where = target(ctx, config)
    password_only = not where.key_file and not getattr(ctx.config, "ssh_agent_auth", False)
    if password_only and not has_arg("ansible_password", config.extra_arguments):
        raise VmbakeError(
            "ansible: the build logs in with a password, which ansible-playbook cannot reuse",
            hint="leave ssh_password unset so that the build makes a temporary key, set ssh_private_key_file, "
            "or pass -e ansible_password=... in extra_arguments (ansible then needs sshpass)",
        )
    ctx.ui.say("Not using Proxy adapter for Ansible run: using the ssh key of the build's connection")
    env = ansible_env(config)
    if config.galaxy_file:
        _galaxy(run, config, env)
    with _inventory(config, ctx, where) as inventory:
        argv = playbook_argv(config, ctx, where, inventory, env)
        ctx.ui.say(f"Executing Ansible: {shown(argv, config, ctx)}")
        argv[0] = command
        result = procs.run(
            argv, check=False, on_line=ctx.ui.message, env=env, timeout=run.remaining(), what="ansible"
        )
    if result.returncode != 0:
        raise VmbakeError(
            f"ansible: ansible-playbook exited with status {result.returncode}", hint="see its output above"
        )


def _executable(command: str) -> str:
    try:
        return procs.which(command)
    except VmbakeError:
        raise VmbakeError(f"ansible: {command} was not found", hint=ANSIBLE_HINT) from None


def _galaxy(run: Run, config: AnsibleConfig, env: dict[str, str]) -> None:
    requirements = Path(config.galaxy_file).read_text(errors="replace")
    for argv in galaxy_argvs(config, requirements):
        argv[0] = _executable(argv[0])
        run.ctx.ui.say("Executing Ansible Galaxy")
        result = procs.run(
            argv,
            check=False,
            on_line=run.ctx.ui.message,
            env=env,
            timeout=run.remaining(),
            what="ansible-galaxy",
        )
        if result.returncode != 0:
            raise VmbakeError(
                f"ansible: ansible-galaxy exited with status {result.returncode}",
                hint=f"see its output above; the command was: {shlex.join(argv)}",
            )


@contextlib.contextmanager
def _inventory(config: AnsibleConfig, ctx: BuildContext, where: Target) -> Iterator[str]:
    """The inventory file: the user's, or a generated one, removed after the run unless keep_inventory_file."""
    if config.inventory_file:
        yield config.inventory_file
        return
    fd, name = tempfile.mkstemp(prefix="packer-provisioner-ansible", dir=config.inventory_directory or None)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(inventory_text(config, ctx, where))
        yield name
    finally:
        if not config.keep_inventory_file:
            with contextlib.suppress(OSError):
                os.unlink(name)
