"""Run-time placeholders, one test per placeholder per place, each with Packer's value.

The places: qemuargs (packer-plugin-qemu qemuArgsTemplateData), the boot command (bootCommandTemplateData),
http_content (vmbake's own set: Packer fills none there) and the build data that provisioners and
post-processors read with {{ build `X` }} (packer-plugin-sdk PopulateProvisionHookData). Each place is
driven through the code that fills it in a build: qemu_argv, StepTypeBootCommand, StepHTTPServer with a real
HTTP request, and shell-local provisioners and post-processors run from a loaded template.
"""

from __future__ import annotations

import io
import json
import urllib.request
from pathlib import Path
from typing import Any, cast

import pytest

from tests.helpers.sshd import Recorder
from vmbake import placeholders
from vmbake.config.login import LoginConfig
from vmbake.config.null import NullConfig
from vmbake.config.qemu import QemuConfig
from vmbake.errors import StepError, VmbakeError
from vmbake.login import preseed_fragment
from vmbake.postprocessors import run_chain
from vmbake.qemu_argv import RunFacts, qemu_argv
from vmbake.state import Artifact, BuildContext, BuildState, Options
from vmbake.steps.http_server import StepHTTPServer
from vmbake.steps.provision import StepProvision
from vmbake.steps.ssh_key_pair import StepSSHKeyPair
from vmbake.steps.type_boot_command import StepTypeBootCommand
from vmbake.template import load_template
from vmbake.ui import BuildUi, Ui

HTTP_PORT = 8123
SSH_HOST_PORT = 2222


def build_ctx(
    tmp_path: Path, name: str = "web", config: QemuConfig | NullConfig | None = None
) -> tuple[BuildContext, Recorder]:
    """A build as the steps leave it by the time each place is filled: an HTTP port, a forwarded SSH port,
    an output directory and the build's own key pair (made by the real key step)."""
    out = Recorder()
    ui = Ui(out=cast(Any, out), err=cast(Any, out), inp=io.StringIO(), color=False)
    work = tmp_path / "work"
    work.mkdir(mode=0o700, exist_ok=True)
    ctx = BuildContext(
        name,
        "null" if isinstance(config, NullConfig) else "qemu",
        config if config is not None else QemuConfig(ssh_username="deb", ssh_password="pw"),
        cast(Any, None),
        BuildUi(ui, name),
        Options(),
        state=BuildState(work_dir=work, output_dir=Path(f"output-{name}")),
    )
    if not isinstance(ctx.config, NullConfig):
        ctx.state.http_port = HTTP_PORT
        ctx.state.ssh_host_port = SSH_HOST_PORT
    return ctx, out


def with_key(ctx: BuildContext) -> BuildContext:
    """The build's temporary key pair, as StepSSHKeyPair makes it (it makes none when a password is set)."""
    config = ctx.config
    assert isinstance(config, QemuConfig)
    ctx.config = QemuConfig(ssh_username=config.ssh_username, http_directory=config.http_directory)
    StepSSHKeyPair().run(ctx)
    assert ctx.state.ssh_public_key.startswith("ssh-ed25519 ")
    return ctx


# -- qemuargs -----------------------------------------------------------------------------------------------
def qemuargs_value(ctx: BuildContext, text: str) -> str:
    config = ctx.config
    assert isinstance(config, QemuConfig)
    config = QemuConfig(**{**vars(config), "qemuargs": [["-x-test", text]]})
    argv = qemu_argv(
        config, ctx.state, RunFacts(vm_name=config.vm_name or f"packer-{ctx.name}", accelerator="tcg")
    )
    return argv[argv.index("-x-test") + 1]


QEMUARGS = {
    "HTTPIP": "10.0.2.2",
    "HTTPPort": str(HTTP_PORT),
    "HTTPDir": "site",
    "OutputDir": "output-web",
    "Name": "packer-web",
    "SSHHostPort": str(SSH_HOST_PORT),
}


@pytest.mark.parametrize("key", sorted(QEMUARGS))
def test_qemuargs_placeholder(tmp_path: Path, key: str) -> None:
    ctx, _ = build_ctx(tmp_path, config=QemuConfig(http_directory="site"))
    ctx.state.http_port, ctx.state.ssh_host_port = HTTP_PORT, SSH_HOST_PORT
    assert qemuargs_value(ctx, f"{{{{ .{key} }}}}") == QEMUARGS[key]


def test_qemuargs_ports_are_zero_without_a_server_or_communicator(tmp_path: Path) -> None:
    # Packer's data holds ints: 0 when no HTTP server runs and when the communicator is "none".
    ctx, _ = build_ctx(tmp_path, config=QemuConfig(communicator="none", vm_name="box"))
    ctx.state.http_port = None
    assert qemuargs_value(ctx, "{{ .HTTPPort }}/{{ .SSHHostPort }}/{{ .Name }}") == "0/0/box"


def test_qemuargs_refuses_what_packer_does_not_give_there(tmp_path: Path) -> None:
    ctx, _ = build_ctx(tmp_path)
    with pytest.raises(VmbakeError) as info:
        qemuargs_value(ctx, "{{ .SSHPublicKey }}")
    assert info.value.message == "qemuargs: unknown placeholder '{{ .SSHPublicKey }}'"
    assert info.value.hint == (
        "valid placeholders: {{ .HTTPDir }}, {{ .HTTPIP }}, {{ .HTTPPort }}, {{ .Name }}, {{ .OutputDir }}, "
        "{{ .SSHHostPort }}"
    )


# -- boot command -------------------------------------------------------------------------------------------
def boot_command_value(ctx: BuildContext, text: str) -> str:
    """The command as StepTypeBootCommand types it: the step renders before it waits or connects, so a
    placeholder it refuses stops it here; the values come from the same call."""
    values = placeholders.of(ctx)
    return values.render(text, values.boot_command())


BOOT_COMMAND = {"HTTPIP": "10.0.2.2", "HTTPPort": str(HTTP_PORT), "Name": "packer-web"}


@pytest.mark.parametrize("key", sorted(BOOT_COMMAND))
def test_boot_command_placeholder(tmp_path: Path, key: str) -> None:
    ctx, _ = build_ctx(tmp_path)
    assert boot_command_value(ctx, f"{{{{ .{key} }}}}") == BOOT_COMMAND[key]


def test_boot_command_ssh_public_key_is_the_builds_key(tmp_path: Path) -> None:
    ctx = with_key(build_ctx(tmp_path)[0])
    assert boot_command_value(ctx, "{{ .SSHPublicKey }}") == ctx.state.ssh_public_key


def test_boot_command_name_is_vm_name_and_port_zero_without_a_server(tmp_path: Path) -> None:
    ctx, _ = build_ctx(tmp_path, config=QemuConfig(vm_name="box"))
    ctx.state.http_port = None
    assert boot_command_value(ctx, "{{ .Name }}:{{ .HTTPPort }} {{ build_name }}") == "box:0 web"


def test_boot_command_refuses_what_packer_does_not_give_there(tmp_path: Path) -> None:
    ctx, _ = build_ctx(tmp_path)
    ctx.config = QemuConfig(boot_command=["<esc>{{ .HTTPDir }}<enter>"], boot_command_transport="qmp")
    with pytest.raises(StepError) as info:
        StepTypeBootCommand().run(ctx)  # fails before it waits or looks for QMP
    assert "cannot prepare the boot command" in info.value.message
    assert "{{ .HTTPDir }} is not available here (available: .HTTPIP, .HTTPPort, .Name, .SSHPublicKey)" in (
        info.value.message
    )


# -- http_content -------------------------------------------------------------------------------------------
def served(ctx: BuildContext, text: str) -> str:
    """`text` as the real StepHTTPServer serves it from http_content, fetched over HTTP."""
    config = ctx.config
    assert isinstance(config, QemuConfig)
    ctx.config = QemuConfig(
        **{**vars(config), "http_content": {"/t": text}, "http_port_min": 0, "http_port_max": 0}
    )
    step = StepHTTPServer()
    step.run(ctx)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ctx.state.http_port}/t", timeout=10) as response:
            return str(response.read().decode())
    finally:
        step.cleanup(ctx)


def test_http_content_http_ip(tmp_path: Path) -> None:
    assert served(build_ctx(tmp_path)[0], "{{ .HTTPIP }}") == "10.0.2.2"


def test_http_content_http_port_is_the_servers(tmp_path: Path) -> None:
    ctx, _ = build_ctx(tmp_path)
    assert served(ctx, "{{ .HTTPPort }}") == str(ctx.state.http_port) != str(HTTP_PORT)


def test_http_content_name_is_the_vm_name_as_in_the_boot_command(tmp_path: Path) -> None:
    assert served(build_ctx(tmp_path)[0], "{{ .Name }}") == "packer-web"


def test_http_content_ssh_public_key(tmp_path: Path) -> None:
    ctx = with_key(build_ctx(tmp_path)[0])
    assert served(ctx, "{{ .SSHPublicKey }}") == ctx.state.ssh_public_key


def test_http_content_login_preseed_is_vmbakes(tmp_path: Path) -> None:
    ctx = with_key(build_ctx(tmp_path)[0])
    ctx.config = QemuConfig(ssh_username="deb", root_password="")
    text = served(ctx, "{{ .LoginPreseed }}")
    assert text == preseed_fragment(LoginConfig(), ctx.state.ssh_public_key)
    assert ctx.state.ssh_public_key.split()[1] in text  # the build's key, for root


def test_http_content_apt_proxy_is_vmbakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("APT_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    ctx, _ = build_ctx(tmp_path, config=QemuConfig(apt_proxy="http://127.0.0.1:3142"))
    assert served(ctx, "{{ .AptProxy }}") == "http://10.0.2.2:3142"  # a loopback proxy is the host's


def test_http_content_refuses_what_it_does_not_give(tmp_path: Path) -> None:
    ctx, _ = build_ctx(tmp_path)
    with pytest.raises(StepError) as info:
        served(ctx, "{{ .OutputDir }}")
    assert "http_content['/t']: cannot fill in" in info.value.message
    assert (
        "{{ .OutputDir }} is not available here (available: .AptProxy, .HTTPIP, .HTTPPort, .LoginPreseed, "
        ".Name, .SSHPublicKey)" in info.value.message
    )


# -- provisioners and post-processors: {{ build `X` }} ------------------------------------------------------
# The template only gives the provisioner or post-processor; the values come from the build context.
LOADED_BY = {"type": "null", "communicator": "none"}


def load(tmp_path: Path, builder: dict[str, Any], section: str, inline: str) -> Any:
    """The first provisioner or post-processor of a JSON template: a shell-local running `inline`."""
    body: dict[str, Any] = {"type": "shell-local", "inline": [inline]}
    template = {"builders": [{"name": "web", **builder}], section: [body]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(template))
    build = load_template(path).builds[0]
    return build.provisioners[0] if section == "provisioners" else build.post_processors[0][0]


def provisioned(tmp_path: Path, ctx: BuildContext, text: str, builder: dict[str, Any] | None = None) -> str:
    """`text` as a shell-local provisioner, run by StepProvision as in a build, writes it to a file."""
    ctx.provisioners = [load(tmp_path, builder or LOADED_BY, "provisioners", write(tmp_path, text))]
    StepProvision().run(ctx)
    return (tmp_path / "written").read_text()


def write(tmp_path: Path, text: str) -> str:
    return f"printf %s '{text}' > {tmp_path / 'written'}"


def build_data_expected(ctx: BuildContext) -> dict[str, str]:
    key = ctx.state.ssh_private_key_path
    assert key is not None
    return {
        "ID": "ERR_ID_NOT_IMPLEMENTED_BY_BUILDER",  # the QEMU builder sets no instance_id
        "Host": "127.0.0.1",
        "Port": str(SSH_HOST_PORT),  # the forwarded port, as StepConnect stores it
        "User": "deb",
        "Password": "",
        "ConnType": "ssh",
        "PackerRunUUID": placeholders.RUN_UUID,
        "PackerHTTPIP": "10.0.2.2",
        "PackerHTTPPort": str(HTTP_PORT),
        "PackerHTTPAddr": f"10.0.2.2:{HTTP_PORT}",
        "SSHPublicKey": ctx.state.ssh_public_key,
        "SSHPrivateKey": key.read_text(),
        "WinRMPassword": "",
    }


# Packer's common keys (BuilderDataCommonKeys); the QEMU builder adds none.
BUILD_KEYS = [
    "ID", "Host", "Port", "User", "Password", "ConnType", "PackerRunUUID", "PackerHTTPIP", "PackerHTTPPort",
    "PackerHTTPAddr", "SSHPublicKey", "SSHPrivateKey", "WinRMPassword",
]  # fmt: skip


@pytest.mark.parametrize("key", BUILD_KEYS)
def test_provisioner_build_data(tmp_path: Path, key: str) -> None:
    ctx = with_key(build_ctx(tmp_path)[0])
    assert provisioned(tmp_path, ctx, f"{{{{ build `{key}` }}}}") == build_data_expected(ctx)[key]


def test_provisioner_password_and_port_without_a_forward(tmp_path: Path) -> None:
    # A password build makes no key; with skip_nat_mapping (no forward) Port is the guest's ssh_port.
    config = QemuConfig(ssh_username="deb", ssh_password="pw", ssh_port=2200, skip_nat_mapping=True)
    ctx, _ = build_ctx(tmp_path, config=config)
    ctx.state.ssh_host_port = None
    assert provisioned(tmp_path, ctx, "{{ build `Password` }} {{ build `Port` }}") == "pw 2200"


def test_provisioner_http_values_without_a_server(tmp_path: Path) -> None:
    # Packer's HTTP step puts port 0 when it serves nothing; the IP is always the host's.
    ctx, _ = build_ctx(tmp_path)
    ctx.state.http_port = None
    text = "{{ build `PackerHTTPIP` }} {{ build `PackerHTTPPort` }} {{ build `PackerHTTPAddr` }}"
    assert provisioned(tmp_path, ctx, text) == "10.0.2.2 0 10.0.2.2:0"


def test_provisioner_fields_read_the_build_data_too(tmp_path: Path) -> None:
    # Packer renders a provisioner's fields with the build data as their data: {{ .Host }} is {{ build `Host` }}.
    ctx, _ = build_ctx(tmp_path)
    assert placeholders.of(ctx).render("{{ .Host }}:{{ .Port }}", placeholders.of(ctx).provisioner()) == (
        f"127.0.0.1:{SSH_HOST_PORT}"
    )


def test_null_builder_build_data(tmp_path: Path) -> None:
    # No HTTP server step: Packer's "not implemented" texts; no communicator: no connection keys at all.
    ctx, _ = build_ctx(tmp_path, config=NullConfig(communicator="none"))
    data = placeholders.of(ctx).build_data()
    assert data == {
        "ID": "ERR_ID_NOT_IMPLEMENTED_BY_BUILDER",
        "PackerRunUUID": placeholders.RUN_UUID,
        "PackerHTTPIP": "ERR_HTTP_IP_NOT_IMPLEMENTED_BY_BUILDER",
        "PackerHTTPPort": "ERR_HTTP_PORT_NOT_IMPLEMENTED_BY_BUILDER",
        "PackerHTTPAddr": "ERR_HTTP_ADDR_NOT_IMPLEMENTED_BY_BUILDER",
    }


def test_provisioner_refuses_a_key_the_build_does_not_give(tmp_path: Path) -> None:
    # Accepted when the template loads (Packer prepares with placeholders for every common key), refused
    # when it runs with no connection, as Packer's `build` function refuses it.
    ctx, _ = build_ctx(tmp_path, config=NullConfig(communicator="none"))
    with pytest.raises(StepError) as info:
        provisioned(tmp_path, ctx, "{{ build `Host` }}", {"type": "null", "communicator": "none"})
    assert "{{ build `Host` }} is not available here (available: ID, PackerHTTPAddr" in info.value.message


@pytest.mark.parametrize("key", BUILD_KEYS)
def test_post_processor_build_data(tmp_path: Path, key: str) -> None:
    ctx = with_key(build_ctx(tmp_path)[0])
    spec = load(tmp_path, LOADED_BY, "post-processors", write(tmp_path, f"{{{{ build `{key}` }}}}"))
    run_chain(ctx, [spec], [Artifact("transcend.qemu", tmp_path, "VM files")])
    assert (tmp_path / "written").read_text() == build_data_expected(ctx)[key]


def test_post_processor_refuses_a_key_the_build_does_not_give(tmp_path: Path) -> None:
    ctx, _ = build_ctx(tmp_path, config=NullConfig(communicator="none"))
    spec = load(
        tmp_path, {"type": "null", "communicator": "none"}, "post-processors", "echo {{ build `User` }}"
    )
    with pytest.raises(VmbakeError) as info:
        run_chain(ctx, [spec], [])
    assert "{{ build `User` }} is not available here" in info.value.message
