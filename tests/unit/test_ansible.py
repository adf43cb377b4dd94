"""ansible and ansible-local provisioners: exact command lines and inventories, then one real playbook run each
against a real sshd on loopback (the "guest" is a throwaway user of this machine, which has ansible-core)."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.sshd import Sshd, home_of, make_ctx, make_key, running_sshd, throwaway_user
from vmbake.comm.ssh import SshTarget, connect
from vmbake.config.ansible import AnsibleConfig, AnsibleLocalConfig
from vmbake.errors import StepError
from vmbake.provisioners import ansible_local
from vmbake.provisioners.ansible import (
    Target,
    ansible_env,
    galaxy_argvs,
    inventory_text,
    playbook_argv,
    shown,
)
from vmbake.sshkeys import load_private_key
from vmbake.steps.provision import StepProvision
from vmbake.template.model import ProvisionerSpec

DATA = Path(__file__).resolve().parents[1] / "data" / "ansible"
PLAYBOOK = str(DATA / "site.yml")
ROLE = str(DATA / "roles" / "banner")
needs_ansible = pytest.mark.skipif(
    shutil.which("ansible-playbook") is None, reason="ansible-core not installed"
)


def ctx_for(tmp_path: Path, **config: Any) -> Any:
    ctx, _out, _err = make_ctx(tmp_path / "work", **config)
    ctx.state.http_port = 8123
    return ctx


def where(key: str = "/run/key") -> Target:
    return Target("127.0.0.1", 2222, "debian", key, "10.0.2.2:8123")


# -- pure: the plugin's command line, environment and inventory ---------------------------------------------
def test_ansible_argv_is_the_plugins(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path)
    config = AnsibleConfig(playbook_file="site.yml", extra_arguments=["--tags=base", "-vv"])
    argv = playbook_argv(config, ctx, where(), "/tmp/inv", ansible_env(config))
    assert argv == [
        "ansible-playbook",
        "-e", 'packer_build_name="qemu"',
        "-e", "packer_builder_type=qemu",
        "-e", "packer_http_addr=10.0.2.2:8123",
        "--ssh-extra-args", "'-o IdentitiesOnly=yes'",
        "--tags=base", "-vv",
        "-e", "ansible_ssh_private_key_file=/run/key",
        "-i", "/tmp/inv", os.path.abspath("site.yml"),
    ]  # fmt: skip


def test_ansible_argv_with_ssh_extra_args_password_and_no_http(tmp_path: Path) -> None:
    ctx, _o, _e = make_ctx(tmp_path / "w")
    config = AnsibleConfig(
        playbook_file="/p.yml",
        command="/opt/venv/bin/ansible-playbook",
        ansible_ssh_extra_args=["-o ForwardAgent=yes", "-o Compression=no"],
        extra_arguments=["-e", "ansible_password=hunter2"],
    )
    bare = Target("127.0.0.1", 2222, "debian", "/run/key", "")
    argv = playbook_argv(config, ctx, bare, "/i", ansible_env(config))
    assert argv == [
        "/opt/venv/bin/ansible-playbook",
        "-e",
        'packer_build_name="qemu"',
        "-e",
        "packer_builder_type=qemu",
        "--ssh-extra-args",
        "'-o ForwardAgent=yes' '-o Compression=no'",
        "-e",
        "ansible_password=hunter2",
        "-i",
        "/i",
        "/p.yml",
    ]  # fmt: skip  (host key checking is already off through ANSIBLE_HOST_KEY_CHECKING)
    assert "hunter2" not in shown(argv, config, ctx) and "ansible_password=*****" in shown(argv, config, ctx)
    agent = playbook_argv(config, ctx, Target("h", 1, "u", "", ""), "/i", {})
    assert agent == [
        "/opt/venv/bin/ansible-playbook",
        "-e", 'packer_build_name="qemu"', "-e", "packer_builder_type=qemu",
        "-e", "ansible_password=hunter2",
        "-e", "ansible_host_key_checking=False",
        "-i", "/i", "/p.yml",
    ]  # fmt: skip


def test_ansible_environment_the_plugin_sets_wins() -> None:
    config = AnsibleConfig(
        playbook_file="p", ansible_env_vars=["ANSIBLE_NOCOLOR=True", "ANSIBLE_SCP_IF_SSH=False"]
    )
    assert ansible_env(config) == {
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_SCP_IF_SSH": "True",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
    }
    assert ansible_env(AnsibleConfig(playbook_file="p", use_sftp=True, ssh_host_key_file="k")) == {}


def test_ansible_inventory_with_groups_and_template(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path)
    config = AnsibleConfig(playbook_file="p", groups=["web", "db"], empty_groups=["spare"], host_alias="vm")
    assert inventory_text(config, ctx, where()) == (
        "vm ansible_host=127.0.0.1 ansible_user=debian ansible_port=2222\n"
        "[web]\nvm ansible_host=127.0.0.1 ansible_user=debian ansible_port=2222\n"
        "[db]\nvm ansible_host=127.0.0.1 ansible_user=debian ansible_port=2222\n"
        "[spare]\n"
    )
    custom = AnsibleConfig(
        playbook_file="p",
        inventory_file_template="{{ .HostAlias }} ansible_host={{ .Host }} x={{ build `ConnType` }}\n",
    )
    assert inventory_text(custom, ctx, where()) == "default ansible_host=127.0.0.1 x=ssh\n"


def test_galaxy_runs_for_roles_and_collections() -> None:
    config = AnsibleConfig(
        playbook_file="p",
        galaxy_file="req.yml",
        galaxy_force_install=True,
        roles_path="r",
        collections_path="c",
    )
    assert galaxy_argvs(config, "- src: geerlingguy.docker\n") == [
        ["ansible-galaxy", "install", "-r", "req.yml", "-f", "-p", "r"]
    ]
    assert galaxy_argvs(config, "collections:\n  - community.general\n") == [
        ["ansible-galaxy", "collection", "install", "-r", "req.yml", "-f", "-p", "c"]
    ]
    assert len(galaxy_argvs(config, "roles:\n- x\ncollections:\n- y\n")) == 2


def test_ansible_local_command_and_layout(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path)
    config = AnsibleLocalConfig(playbook_file="/src/site.yml", extra_arguments=["--tags", "base"])
    place = ansible_local.layout(config)
    assert re.fullmatch(
        r"/tmp/packer-provisioner-ansible-local/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", place.staging
    )
    assert place.galaxy_roles == place.staging + "/galaxy_roles"
    assert ansible_local.remote_playbooks(config, place) == [place.staging + "/site.yml"]
    fixed = ansible_local.layout(AnsibleLocalConfig(playbook_file="x", staging_directory="/st"))
    command = ansible_local.playbook_command(config, ctx, fixed, "/st/site.yml", "/st/inv", "")
    assert command == (
        "cd /st && ANSIBLE_FORCE_COLOR=1 PYTHONUNBUFFERED=1 ansible-playbook /st/site.yml --extra-vars "
        '"packer_build_name=qemu packer_builder_type=qemu packer_http_addr=10.0.2.2:8123" --tags base '
        "-c local -i /st/inv"
    )
    galaxy = AnsibleLocalConfig(playbook_file="x", galaxy_file="/g/req.yml", collection_paths=["/c"])
    with_env = ansible_local.playbook_command(
        galaxy, ctx, fixed, "/st/x", "/st/inv", "roles:\ncollections:\n"
    )
    assert with_env.startswith(
        "cd /st && ANSIBLE_COLLECTIONS_PATH=$ANSIBLE_COLLECTIONS_PATH:/st/galaxy_collections:/st/collections "
        "ANSIBLE_ROLES_PATH=$ANSIBLE_ROLES_PATH:/st/galaxy_roles ANSIBLE_FORCE_COLOR=1"
    )
    assert ansible_local.galaxy_commands(galaxy, fixed, "- src: x\n") == [
        "cd /st && ansible-galaxy install -r /st/req.yml -p /st/galaxy_roles"
    ]
    assert ansible_local.inventory_text(config) == "127.0.0.1"
    assert ansible_local.inventory_text(AnsibleLocalConfig(inventory_groups=["a", "b"])) == (
        "[a]\n127.0.0.1\n[b]\n127.0.0.1\n"
    )


def test_ansible_local_playbook_files_keep_their_path(tmp_path: Path) -> None:
    config = AnsibleLocalConfig(playbook_files=["/srv/pb/a.yml", "/other/b.yml"], playbook_dir="/srv/pb")
    place = ansible_local.layout(AnsibleLocalConfig(staging_directory="/st"))
    assert ansible_local.remote_playbooks(config, place) == ["/st/a.yml", "/st/other/b.yml"]


# -- real runs against sshd on loopback ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def sshd() -> Iterator[Sshd]:
    with throwaway_user() as (name, _password), running_sshd(name) as server:
        yield server


def guest_ctx(sshd: Sshd, tmp_path: Path, *specs: ProvisionerSpec) -> tuple[Any, Any]:
    ctx, out, _err = make_ctx(
        tmp_path / "work",
        provisioners=list(specs),
        ssh_host="127.0.0.1",
        ssh_port=sshd.port,
        ssh_username=sshd.user,
    )
    ctx.state.http_port = 8123
    ctx.state.ssh_private_key_path = sshd.client_key
    ctx.state.comm = connect(
        SshTarget("127.0.0.1", sshd.port, sshd.user, key=load_private_key(sshd.client_key))
    )
    return ctx, out


def lines_of(out: Any) -> list[str]:
    return [line for _t, line in out.lines]


@needs_ansible
def test_ansible_runs_a_playbook_against_the_guest(sshd: Sshd, tmp_path: Path) -> None:
    home = home_of(sshd.user)
    config = AnsibleConfig(
        playbook_file=PLAYBOOK,
        groups=["web"],
        extra_arguments=["-e", f"target_dir={home}"],
        # No ControlPersist master outliving the test, and root's known_hosts left alone.
        ansible_env_vars=[
            "ANSIBLE_SSH_ARGS=-o ControlMaster=no -o UserKnownHostsFile=/dev/null",
            f"ANSIBLE_LOCAL_TEMP={tmp_path}/local",
            "ANSIBLE_NOCOLOR=True",
        ],
        inventory_directory=str(tmp_path),
    )
    ctx, out = guest_ctx(sshd, tmp_path, ProvisionerSpec("ansible", config))
    try:
        StepProvision().run(ctx)
    finally:
        ctx.state.comm.close()
    banner = Path(home, "banner.txt")
    assert banner.read_text() == "built by qemu/qemu for default in web, files at 10.0.2.2:8123\n"
    assert banner.stat().st_uid == Path(home).stat().st_uid  # written by the build's user, over SSH
    assert Path(home, "handler.txt").read_text() == "handler ran after qemu/qemu\n"
    text = lines_of(out)
    assert "==> qemu: Provisioning with Ansible..." in text
    assert any(line.startswith("    qemu: PLAY RECAP") for line in text)
    assert not list(tmp_path.glob("packer-provisioner-ansible*"))  # the inventory is removed


@needs_ansible
def test_ansible_local_runs_the_uploaded_playbook_in_the_guest(sshd: Sshd, tmp_path: Path) -> None:
    home = home_of(sshd.user)
    staging = f"{home}/staging"
    config = AnsibleLocalConfig(
        playbook_file=PLAYBOOK,
        role_paths=[ROLE],
        inventory_groups=["db"],
        extra_arguments=["-e", f"target_dir={home}/local"],
        command="ANSIBLE_NOCOLOR=1 ansible-playbook",
        staging_directory=staging,
        clean_staging_directory=True,
    )
    Path(home, "local").mkdir()
    shutil.chown(Path(home, "local"), sshd.user)
    ctx, out = guest_ctx(sshd, tmp_path, ProvisionerSpec("ansible-local", config))
    try:
        StepProvision().run(ctx)
    finally:
        ctx.state.comm.close()
    banner = Path(home, "local", "banner.txt")
    assert banner.read_text() == "built by qemu/qemu for 127.0.0.1 in db, files at 10.0.2.2:8123\n"
    assert Path(home, "local", "handler.txt").read_text() == "handler ran after qemu/qemu\n"
    assert not Path(staging).exists()  # clean_staging_directory
    assert any("Uploading role directories..." in line for line in lines_of(out))


def test_missing_ansible_playbook_names_the_package(sshd: Sshd, tmp_path: Path) -> None:
    config = AnsibleConfig(playbook_file=PLAYBOOK, command="no-such-ansible-playbook")
    ctx, _out = guest_ctx(sshd, tmp_path, ProvisionerSpec("ansible", config))
    try:
        with pytest.raises(StepError) as caught:
            StepProvision().run(ctx)
    finally:
        ctx.state.comm.close()
    assert "no-such-ansible-playbook was not found" in caught.value.message
    assert "apt-get install ansible-core" in (caught.value.hint or "")
    assert "pip install ansible-core" in (caught.value.hint or "")


def test_ansible_local_without_ansible_in_the_guest(sshd: Sshd, tmp_path: Path) -> None:
    home = home_of(sshd.user)
    config = AnsibleLocalConfig(
        playbook_file=PLAYBOOK, command="no-such-ansible-playbook", staging_directory=f"{home}/st2"
    )
    ctx, _out = guest_ctx(sshd, tmp_path, ProvisionerSpec("ansible-local", config))
    try:
        with pytest.raises(StepError) as caught:
            StepProvision().run(ctx)
    finally:
        ctx.state.comm.close()
    assert "could not be found in the guest" in caught.value.message
    assert "apt-get install ansible-core" in (caught.value.hint or "")


def test_validation_names_each_key() -> None:
    bad = AnsibleConfig(
        playbook_file="nowhere.yml", command="no-such-ansible-playbook", ansible_env_vars=["NOEQUALS"]
    )
    keys = {key: (message, hint) for key, message, hint in bad.problems()}
    assert keys["playbook_file"][0] == "file 'nowhere.yml' does not exist"
    assert keys["ansible_env_vars[0]"][0] == "'NOEQUALS' is not KEY=VALUE"
    assert keys["command"] == ("no-such-ansible-playbook was not found", keys["command"][1])
    assert "apt-get install ansible-core" in keys["command"][1]
    skipped = AnsibleConfig(
        playbook_file=PLAYBOOK, command="no-such-ansible-playbook", skip_version_check=True
    )
    assert skipped.problems() == []
    local = AnsibleLocalConfig(playbook_file=PLAYBOOK, playbook_files=[PLAYBOOK], role_paths=["/nonexistent"])
    assert {key for key, _m, _h in local.problems()} == {"playbook_files", "role_paths[0]"}
    assert [key for key, _m, _h in AnsibleLocalConfig().problems()] == ["playbook_file"]


def test_user_is_the_builds_unless_use_proxy_is_false(tmp_path: Path) -> None:
    from vmbake.provisioners.ansible import target

    ctx, _o, _e = make_ctx(tmp_path / "w", ssh_username="debian", ssh_host="192.0.2.7", ssh_port=2200)
    key = make_key(tmp_path / "key")
    ctx.state.ssh_private_key_path = key
    assert target(ctx, AnsibleConfig(playbook_file="p", user="ops")) == Target(
        "192.0.2.7", 2200, "debian", str(key), ""
    )
    assert target(ctx, AnsibleConfig(playbook_file="p", user="ops", use_proxy=False)).user == "ops"
    assert target(ctx, AnsibleConfig(playbook_file="p", use_proxy=False)).user == "debian"


def test_validate_refuses_ansible_in_a_tree_stage_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """provision_stage "tree" has no SSH server when the provisioners run; ansible-local runs in the chroot."""
    from vmbake.cli import main

    monkeypatch.chdir(tmp_path)
    template = tmp_path / "tree.json"
    template.write_text(
        json.dumps(
            {
                "builders": [{"type": "debian-bootstrap", "provision_stage": "tree"}],
                "provisioners": [
                    {"type": "ansible-local", "playbook_file": PLAYBOOK},
                    {"type": "ansible", "playbook_file": PLAYBOOK},
                ],
            }
        )
    )
    assert main(["validate", str(template)]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert "tree.json" in text and "provisioners[1].type" in text and "provisioners[0]" not in text
    assert 'provision_stage "tree"' in text and 'set provision_stage = "vm"' in text
    template.write_text(template.read_text().replace('"tree"', '"vm"'))
    assert main(["validate", str(template)]) == 0
