"""The `ansible-local` provisioner: upload a playbook and its files to the guest and run ansible-playbook there.

As the Packer plugin does: everything goes into a staging directory (by default a new one under
/tmp/packer-provisioner-ansible-local), with a generated inventory of 127.0.0.1, and ansible-playbook runs in
it with `-c local`. The guest must have ansible installed.
"""

from __future__ import annotations

import os
import posixpath
import re
import secrets
import shlex
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from vmbake.config.ansible import LOCAL_STAGING, AnsibleLocalConfig
from vmbake.errors import VmbakeError
from vmbake.provisioners import Run
from vmbake.state import BuildContext

_ROLES = re.compile(r"^roles:", re.MULTILINE)
_COLLECTIONS = re.compile(r"^collections:", re.MULTILINE)
NOT_FOUND = 127


def time_ordered_uuid() -> str:
    """A UUID whose first part is the time, so that staging directories sort by age (as Packer names them)."""
    tail = uuid.uuid4().hex
    return f"{int(time.time() * 1e9) & 0xFFFFFFFF:08x}-{tail[8:12]}-{tail[12:16]}-{tail[16:20]}-{tail[20:]}"


@dataclass(frozen=True)
class Layout:
    """Where each piece goes in the guest."""

    staging: str
    galaxy_roles: str
    galaxy_collections: str

    def at(self, *parts: str) -> str:
        return posixpath.join(self.staging, *parts)


def layout(config: AnsibleLocalConfig) -> Layout:
    staging = config.staging_directory or posixpath.join(LOCAL_STAGING, time_ordered_uuid())
    return Layout(
        staging,
        config.galaxy_roles_path or posixpath.join(staging, "galaxy_roles"),
        config.galaxy_collections_path or posixpath.join(staging, "galaxy_collections"),
    )


def inventory_text(config: AnsibleLocalConfig) -> str:
    if not config.inventory_groups:
        return "127.0.0.1"
    return "".join(f"[{group}]\n127.0.0.1\n" for group in config.inventory_groups)


def remote_playbooks(config: AnsibleLocalConfig, where: Layout) -> list[str]:
    """The guest paths of the playbooks run: playbook_file in the staging directory, or each of playbook_files
    at its absolute path under the staging directory (relative to playbook_dir when inside it)."""
    if config.playbook_file:
        return [where.at(posixpath.basename(config.playbook_file))]
    base = os.path.abspath(config.playbook_dir) if config.playbook_dir else ""
    found = []
    for path in config.playbook_files:
        full = os.path.abspath(path)
        if base and full.startswith(base):
            full = full[len(base) :]
        found.append(where.staging + "/" + full.lstrip("/"))
    return found


def galaxy_sections(text: str) -> tuple[bool, bool]:
    """(has roles, has collections) of a requirements file, as the plugin reads it."""
    return bool(_ROLES.search(text)), bool(_COLLECTIONS.search(text))


def galaxy_commands(config: AnsibleLocalConfig, where: Layout, requirements: str) -> list[str]:
    galaxy = where.at(posixpath.basename(config.galaxy_file))
    roles = ["install", "-r", galaxy, "-p", where.galaxy_roles]
    collections = ["collection", "install", "-r", galaxy, "-p", where.galaxy_collections]
    if config.galaxy_force_install:
        roles.append("-f")
        collections.append("-f")
    has_roles, has_collections = galaxy_sections(requirements)
    runs = []
    if has_roles or not has_collections:
        runs.append(roles)
    if has_collections:
        runs.append(collections)
    cd = f"cd {shlex.quote(where.staging)} && {config.galaxy_command} "
    return [cd + shlex.join(args) for args in runs]


def playbook_command(
    config: AnsibleLocalConfig,
    ctx: BuildContext,
    where: Layout,
    playbook: str,
    inventory: str,
    requirements: str,
) -> str:
    """The guest command that runs one playbook, in the plugin's shape:
    cd STAGING && [ENV] COMMAND PLAYBOOK --extra-vars "packer_..." EXTRA -c local -i INVENTORY."""
    has_roles, has_collections = galaxy_sections(requirements) if config.galaxy_file else (False, False)
    env = ""
    collections = ([where.galaxy_collections] if has_collections else []) + (
        [where.at("collections")] if config.collection_paths else []
    )
    if collections:
        env += " ANSIBLE_COLLECTIONS_PATH=$ANSIBLE_COLLECTIONS_PATH:" + ":".join(collections)
    if has_roles:
        env += f" ANSIBLE_ROLES_PATH=$ANSIBLE_ROLES_PATH:{where.galaxy_roles}"
    http = f"{ctx.state.http_ip}:{ctx.state.http_port}" if ctx.state.http_port is not None else ""
    extra_vars = (
        f"packer_build_name={ctx.name} packer_builder_type={ctx.builder_type} packer_http_addr={http}"
    )
    extra = " ".join(config.extra_arguments)
    return (
        f'cd {shlex.quote(where.staging)} &&{env} {config.command} {playbook} --extra-vars "{extra_vars}" '
        f"{extra}{' ' if extra else ''}-c local -i {inventory}"
    )


def provision(run: Run, config: AnsibleLocalConfig) -> None:
    ctx = run.ctx
    comm = run.comm()
    where = layout(config)
    say = ctx.ui.say
    say("Provisioning with Ansible...")
    if config.playbook_dir:
        say("Uploading Playbook directory to Ansible staging directory...")
        _upload_dir(run, Path(config.playbook_dir), where.staging)
    else:
        say("Creating Ansible staging directory...")
        _mkdir(run, where.staging)
    playbooks = remote_playbooks(config, where)
    if config.playbook_file:
        say("Uploading main Playbook file...")
        comm.upload(Path(config.playbook_file), playbooks[0])
    else:
        base = os.path.abspath(config.playbook_dir) if config.playbook_dir else ""
        for local, remote in zip(config.playbook_files, playbooks, strict=True):
            if base and os.path.abspath(local).startswith(base):
                continue  # already there with playbook_dir
            say(f"Uploading playbook file: {os.path.abspath(local)}")
            _mkdir(run, posixpath.dirname(remote))
            comm.upload(Path(local), remote)
    requirements = ""
    if config.galaxy_file:
        say("Uploading galaxy file...")
        requirements = Path(config.galaxy_file).read_text(errors="replace")
        comm.upload(Path(config.galaxy_file), where.at(posixpath.basename(config.galaxy_file)))
    say("Uploading inventory file...")
    if config.inventory_file:
        inventory = where.at(posixpath.basename(config.inventory_file))
        comm.upload(Path(config.inventory_file), inventory)
    else:
        inventory = where.at(f"packer-provisioner-ansible-local{secrets.randbelow(10**9)}")
        comm.upload_bytes(inventory_text(config).encode(), inventory)
    for key, name in (("group_vars", "group_vars"), ("host_vars", "host_vars")):
        local_dir = getattr(config, key)
        if local_dir:
            say(f"Uploading {name} directory...")
            _upload_dir(run, Path(local_dir), where.at(name))
    _upload_each(run, "role", config.role_paths, where.at("roles"))
    _upload_each(run, "collection", config.collection_paths, where.at("collections"))
    if config.playbook_paths:
        say("Uploading additional Playbooks...")
        _mkdir(run, where.at("playbooks"))
        _upload_each(run, "", config.playbook_paths, where.at("playbooks"))
    if config.galaxy_file:
        for command in galaxy_commands(config, where, requirements):
            say(f"Executing Ansible Galaxy: {command}")
            _run(run, command, "ansible-galaxy")
    for playbook in playbooks:
        command = playbook_command(config, ctx, where, playbook, inventory, requirements)
        say(f"Executing Ansible: {command}")
        _run(run, command, config.command)
    if config.clean_staging_directory:
        say("Removing staging directory...")
        _run(run, f"rm -rf {shlex.quote(where.staging)}", "rm")


def _upload_each(run: Run, what: str, paths: list[str], into: str) -> None:
    if not paths:
        return
    if what:
        run.ctx.ui.say(f"Uploading {what} directories...")
    for path in paths:
        _upload_dir(run, Path(path), posixpath.join(into, os.path.basename(os.path.normpath(path))))


def _mkdir(run: Run, remote: str) -> None:
    run.ctx.ui.say(f"Creating directory: {remote}")
    run.check_cancel()
    run.comm().mkdir_p(remote)


def _upload_dir(run: Run, local: Path, remote: str) -> None:
    _mkdir(run, remote)
    run.comm().upload_dir(local, remote)


def _run(run: Run, command: str, what: str) -> None:
    run.check_cancel()
    ui = run.ctx.ui
    status = run.comm().run(command, on_stdout=ui.message, on_stderr=ui.message, timeout=run.remaining())
    if status == NOT_FOUND:
        raise VmbakeError(
            f"ansible-local: {what} could not be found in the guest (exit status 127)",
            hint="install ansible in the guest before this provisioner: apt-get install ansible-core "
            "(Debian), or pip install ansible-core; it must be on the PATH of the build's ssh_username",
        )
    if status != 0:
        raise VmbakeError(
            f"ansible-local: {what} exited with status {status} in the guest", hint="see its output above"
        )
