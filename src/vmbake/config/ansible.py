"""Keys of the `ansible` and `ansible-local` provisioners, as the Packer ansible plugin reads them.

vmbake runs `ansible` without the plugin's SSH proxy: ansible-playbook connects straight to the guest through
the build's own forwarded port, user and key. The keys that only configure that proxy are accepted and have no
effect (a warning says so).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from vmbake.config.fields import opt

ANSIBLE_HINT = "install ansible-core: apt-get install ansible-core (Debian), or pip install ansible-core"
INVENTORY_LINE = (
    "{{ .HostAlias }} ansible_host={{ .Host }} ansible_user={{ .User }} ansible_port={{ .Port }}\n"
)
LOCAL_COMMAND = "ANSIBLE_FORCE_COLOR=1 PYTHONUNBUFFERED=1 ansible-playbook"
LOCAL_STAGING = "/tmp/packer-provisioner-ansible-local"

Problems = list[tuple[str, str, str]]  # (key, message, hint)


def _file(problems: Problems, key: str, value: str) -> None:
    if not value or "{{" in value:
        return
    path = Path(value)
    if not path.exists():
        problems.append(
            (key, f"file {value!r} does not exist", "relative paths are taken from the current directory")
        )
    elif path.is_dir():
        problems.append((key, f"{value!r} is a directory, not a file", "give the path of a file"))


def _dir(problems: Problems, key: str, value: str) -> None:
    if value and "{{" not in value and not Path(value).is_dir():
        problems.append(
            (
                key,
                f"directory {value!r} does not exist",
                "relative paths are taken from the current directory",
            )
        )


@dataclass(frozen=True)
class AnsibleConfig:
    """An `ansible` provisioner: runs ansible-playbook on the host against the guest, over the build's SSH
    connection (its forwarded port, user and key)."""

    playbook_file: str = opt(doc="The playbook ansible-playbook runs (required)")
    command: str = opt(
        "ansible-playbook", "The executable run instead of ansible-playbook (a path or a name on PATH)"
    )
    extra_arguments: list[str] = opt(
        factory=list,
        doc="Arguments added to ansible-playbook's, not through a shell (write --opt=value); build "
        "values (build.Password in HCL2) are filled in",
        runtime=True,
    )
    ansible_env_vars: list[str] = opt(
        factory=list, doc="KEY=VALUE pairs set for ansible-playbook and ansible-galaxy", runtime=True
    )
    ansible_ssh_extra_args: list[str] = opt(
        factory=list, doc="Given to --ssh-extra-args, each one quoted (default: -o IdentitiesOnly=yes)"
    )
    groups: list[str] = opt(factory=list, doc="Inventory groups the guest is put in")
    empty_groups: list[str] = opt(factory=list, doc="Inventory groups written with no host")
    host_alias: str = opt("default", "The guest's name in the generated inventory")
    user: str = opt(
        "",
        "ansible_user, with use_proxy = false (default: the build's ssh_username); without it the build's "
        "ssh_username logs in, as through Packer's proxy",
    )
    inventory_directory: str = opt(
        "", "Directory the generated inventory is written to (its host_vars, group_vars apply)"
    )
    inventory_file_template: str = opt(
        "",
        "Template of the inventory's host line; {{ .HostAlias }}, {{ .Host }}, {{ .User }}, {{ .Port }} are filled in",
        runtime=True,
    )
    inventory_file: str = opt("", "An inventory of your own, used instead of a generated one")
    keep_inventory_file: bool = opt(False, "Leave the generated inventory file after the run")
    galaxy_file: str = opt(
        "", "Requirements file installed with ansible-galaxy on the host before the playbook"
    )
    galaxy_command: str = opt("ansible-galaxy", "The ansible-galaxy executable")
    galaxy_force_install: bool = opt(False, "Add -f (--force) to ansible-galaxy install")
    galaxy_force_with_deps: bool = opt(False, "Add --force-with-deps to ansible-galaxy install")
    roles_path: str = opt("", "Where ansible-galaxy installs roles (-p)")
    collections_path: str = opt("", "Where ansible-galaxy installs collections (-p)")
    use_proxy: bool | None = opt(
        None,
        "vmbake always connects directly, as Packer does with use_proxy = false; true is taken as false, "
        "with a warning",
    )
    skip_version_check: bool = opt(False, "Do not check at validate time that the command can be found")
    use_sftp: bool = opt(
        False, "Let ansible pick its file transfer; without it ANSIBLE_SCP_IF_SSH=True is set"
    )
    ssh_host_key_file: str = opt(
        "",
        "Packer's proxy host key; vmbake has no proxy, but when given ANSIBLE_HOST_KEY_CHECKING=False is not set",
    )
    local_port: int = opt(0, "Port of Packer's SSH proxy (vmbake has none)", supported=False)
    ssh_authorized_key_file: str = opt(
        "", "Key Packer's SSH proxy accepts (vmbake has no proxy)", supported=False
    )
    ansible_proxy_key_type: str = opt(
        "", "Key type of Packer's SSH proxy (vmbake has no proxy)", supported=False
    )
    sftp_command: str = opt(
        "", "SFTP server Packer's proxy starts in the guest (vmbake has no proxy)", supported=False
    )
    ansible_winrm_use_http: bool = opt(
        False, "WinRM over HTTP (Windows guests are not supported)", supported=False
    )

    def problems(self) -> Problems:
        found: Problems = []
        if not self.playbook_file:
            found.append(("playbook_file", "playbook_file is required", "the playbook to run"))
        _file(found, "playbook_file", self.playbook_file)
        _file(found, "galaxy_file", self.galaxy_file)
        _file(found, "inventory_file", self.inventory_file)
        _dir(found, "inventory_directory", self.inventory_directory)
        for i, pair in enumerate(self.ansible_env_vars):
            if "=" not in pair or pair.startswith("="):
                found.append(
                    (
                        f"ansible_env_vars[{i}]",
                        f"{pair!r} is not KEY=VALUE",
                        "for example ANSIBLE_NOCOLOR=True",
                    )
                )
        if not self.skip_version_check and "{{" not in self.command and not _found(self.command):
            found.append(("command", f"{self.command} was not found", ANSIBLE_HINT))
        return found


def _found(command: str) -> bool:
    if "/" in command:
        return Path(command).is_file()
    return shutil.which(command) is not None


@dataclass(frozen=True)
class AnsibleLocalConfig:
    """An `ansible-local` provisioner: uploads a playbook (and its roles) to the guest and runs ansible-playbook
    there, against the guest itself (-c local)."""

    playbook_file: str = opt("", "The playbook uploaded and run (or playbook_files)")
    playbook_files: list[str] = opt(factory=list, doc="Several playbooks, uploaded and run in turn")
    playbook_dir: str = opt("", "A directory uploaded whole into the staging directory (roles, vars ...)")
    playbook_paths: list[str] = opt(
        factory=list, doc="Directories uploaded into the staging directory's playbooks/"
    )
    role_paths: list[str] = opt(
        factory=list, doc="Role directories uploaded into the staging directory's roles/"
    )
    collection_paths: list[str] = opt(factory=list, doc="Collection directories uploaded into collections/")
    group_vars: str = opt("", "Directory uploaded as the staging directory's group_vars")
    host_vars: str = opt("", "Directory uploaded as the staging directory's host_vars")
    command: str = opt(LOCAL_COMMAND, "Shell command that runs ansible-playbook in the guest")
    extra_arguments: list[str] = opt(
        factory=list, doc="Arguments added to ansible-playbook's (through the guest's shell)"
    )
    staging_directory: str = opt(
        "", f"Guest directory the files are uploaded to (default: {LOCAL_STAGING}/<uuid>)"
    )
    clean_staging_directory: bool = opt(False, "Remove the staging directory after the run")
    inventory_file: str = opt("", "An inventory of your own, uploaded instead of the generated one")
    inventory_groups: list[str] = opt(
        factory=list, doc="Groups of the generated inventory, each holding 127.0.0.1"
    )
    galaxy_file: str = opt("", "Requirements file installed with ansible-galaxy in the guest")
    galaxy_command: str = opt("ansible-galaxy", "The guest's ansible-galaxy command")
    galaxy_force_install: bool = opt(False, "Add -f to ansible-galaxy install")
    galaxy_roles_path: str = opt("", "Guest directory for galaxy roles (default: <staging>/galaxy_roles)")
    galaxy_collections_path: str = opt(
        "", "Guest directory for galaxy collections (default: <staging>/galaxy_collections)"
    )

    def problems(self) -> Problems:
        found: Problems = []
        if self.playbook_file and self.playbook_files:
            found.append(("playbook_files", "give playbook_file or playbook_files, not both", ""))
        if not self.playbook_file and not self.playbook_files:
            found.append(("playbook_file", "one of playbook_file or playbook_files is required", ""))
        _file(found, "playbook_file", self.playbook_file)
        for i, path in enumerate(self.playbook_files):
            _file(found, f"playbook_files[{i}]", path)
        _file(found, "inventory_file", self.inventory_file)
        _file(found, "galaxy_file", self.galaxy_file)
        for key in ("playbook_dir", "group_vars", "host_vars"):
            _dir(found, key, getattr(self, key))
        for key in ("playbook_paths", "role_paths", "collection_paths"):
            for i, path in enumerate(getattr(self, key)):
                _dir(found, f"{key}[{i}]", path)
        return found
