"""Run-time placeholders: one builder for the values a build gives its templates, and the set each place reads.

The values are taken from the build's config and state when a place asks, that is once they exist: the
HTTP port after the HTTP server starts, the SSH key after the key step, the forwarded port after QEMU's
ports are chosen, the connection after SSH is up. Each value has the meaning Packer gives it (the table of
placeholder by place is docs/placeholders.md):
- qemuargs: packer-plugin-qemu step_run.go, qemuArgsTemplateData;
- boot_command: packer-plugin-qemu step_type_boot_command.go, bootCommandTemplateData;
- http_content: none in Packer, which renders it before the build; vmbake gives its own set;
- provisioners and post-processors: packer-plugin-sdk commonsteps.PopulateProvisionHookData, read with
  {{ build `X` }} and, in a provisioner, {{ .X }}.

Where Packer has an int (HTTPPort, SSHHostPort), the text is Go's: "0" when there is no HTTP server or no
communicator. `{{ build_name }}` and `{{ build_type }}` are functions, not fields, and read the build in
every place.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vmbake import aptproxy
from vmbake.config.bootstrap import BootstrapConfig
from vmbake.config.login import LoginConfig
from vmbake.config.null import NullConfig
from vmbake.config.qemu import QemuConfig
from vmbake.login import preseed_fragment
from vmbake.state import BuildContext, BuildState
from vmbake.template.gotemplate import render_runtime

# Packer gives every build of one run, and the manifest, the same PackerRunUUID (its main.go puts one in
# PACKER_RUN_UUID per run); one set by a calling Packer-like wrapper is kept.
RUN_UUID = os.environ.get("PACKER_RUN_UUID") or str(uuid.uuid4())

# What Packer's QEMU builder gives for `{{ build `ID` }}`: it puts no instance_id in its state
# (packer-plugin-sdk multistep/commonsteps/step_provision.go).
ID_NOT_IMPLEMENTED = "ERR_ID_NOT_IMPLEMENTED_BY_BUILDER"
# What the null builder gives for the PackerHTTP* keys: it has no HTTP server, so no http_ip or http_port.
HTTP_IP_NOT_IMPLEMENTED = "ERR_HTTP_IP_NOT_IMPLEMENTED_BY_BUILDER"
HTTP_PORT_NOT_IMPLEMENTED = "ERR_HTTP_PORT_NOT_IMPLEMENTED_BY_BUILDER"
HTTP_ADDR_NOT_IMPLEMENTED = "ERR_HTTP_ADDR_NOT_IMPLEMENTED_BY_BUILDER"

Config = QemuConfig | BootstrapConfig | NullConfig


@dataclass(frozen=True)
class RuntimeValues:
    """The run-time facts of one build, read from its config and state at one moment."""

    build_name: str
    builder_type: str
    vm_name: str  # vm_name, default packer-BUILDNAME ("" for a null build, which has no VM)
    http_ip: str  # the host as the guest sees it
    http_port: int | None  # None: no HTTP server step ran (null builder); 0: the step ran, serving nothing
    http_dir: str  # http_directory as written
    output_dir: str  # output_directory as the build uses it (default output-BUILDNAME)
    ssh_host_port: int  # host side of the forward to the guest's SSH port; 0 with communicator "none"
    ssh_public_key: str  # the key the guest must accept (the build's own, or ssh_private_key_file's)
    ssh_private_key_path: Path | None
    comm: Config  # the communicator keys (ssh_host, ssh_username, ...)

    # -- the places ----------------------------------------------------------------------------------------
    def qemuargs(self) -> dict[str, str]:
        """`{{ .X }}` in qemuargs (and vmbake's kernel_args), as Packer's qemuArgsTemplateData."""
        return {
            "HTTPIP": self.http_ip,
            "HTTPPort": str(self.http_port or 0),
            "HTTPDir": self.http_dir,
            "OutputDir": self.output_dir,
            "Name": self.vm_name,
            "SSHHostPort": str(self.ssh_host_port),
        }

    def boot_command(self) -> dict[str, str]:
        """`{{ .X }}` in boot_command and boot_steps, as Packer's bootCommandTemplateData."""
        return {
            "HTTPIP": self.http_ip,
            "HTTPPort": str(self.http_port or 0),
            "Name": self.vm_name,
            "SSHPublicKey": self.ssh_public_key,
        }

    def http_content(self, login: LoginConfig | None, apt_proxy: str) -> dict[str, str]:
        """`{{ .X }}` in http_content. Packer fills none (it renders http_content before the build starts),
        so all of these are vmbake's: the boot command's four, so that a preseed can name what the boot
        command names, and LoginPreseed (the installer's answers for the way in, from the login keys) and
        AptProxy (the package proxy as the guest reaches it; a loopback proxy is the host's, at HTTPIP)."""
        return {
            **self.boot_command(),
            "LoginPreseed": preseed_fragment(login, self.ssh_public_key) if login is not None else "",
            "AptProxy": aptproxy.for_guest(aptproxy.resolve(apt_proxy).url, self.http_ip),
        }

    def build_data(self) -> dict[str, str]:
        """What `{{ build `X` }}` reads in provisioners and post-processors, as Packer's provision hook data.

        With communicator "none" Packer has no connection, so Host, Port, User, Password, ConnType and the
        key and password fields are not there at all."""
        if self.http_port is None:
            http_ip, http_port, http_addr = (
                HTTP_IP_NOT_IMPLEMENTED,
                HTTP_PORT_NOT_IMPLEMENTED,
                HTTP_ADDR_NOT_IMPLEMENTED,
            )
        else:
            http_ip, http_port = self.http_ip, str(self.http_port)
            http_addr = f"{http_ip}:{http_port}"
        data = {
            "ID": ID_NOT_IMPLEMENTED,
            "PackerRunUUID": RUN_UUID,
            "PackerHTTPIP": http_ip,
            "PackerHTTPPort": http_port,
            "PackerHTTPAddr": http_addr,
        }
        comm = self.comm
        if comm.communicator == "none":
            return data
        return {
            **data,
            "Host": comm.ssh_host or "127.0.0.1",
            "Port": str(self.ssh_host_port or comm.ssh_port),
            "User": comm.ssh_username,
            "Password": comm.ssh_password,
            "ConnType": comm.communicator,
            "SSHPublicKey": self.ssh_public_key,
            "SSHPrivateKey": _read(self.ssh_private_key_path),
            "SSHPrivateKeyFile": comm.ssh_private_key_file,
            "SSHAgentAuth": "true" if comm.ssh_agent_auth else "false",  # Go prints a bool so
            "WinRMPassword": "",  # the SSH communicator has none
        }

    def provisioner(self, **own: str) -> dict[str, str]:
        """`{{ .X }}` in a provisioner: Packer renders its fields with the build data, plus the provisioner's
        own values (shell's Path, Vars and EnvVarFile; ansible's HostAlias ...), which win."""
        return {**self.build_data(), **own}

    def render(
        self, text: str, fields: Mapping[str, str], build_data: Mapping[str, str] | None = None
    ) -> str:
        """`text` with `fields` filled in, and {{ build_name }} and {{ build_type }} read from this build."""
        return render_runtime(
            text,
            fields,
            build_name=self.build_name,
            build_type=self.builder_type,
            source_name=self.build_name,
            build_data=build_data,
        )


def _read(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text()
    except OSError:
        return ""


def from_state(
    config: Config, state: BuildState, *, build_name: str, builder_type: str, vm_name: str
) -> RuntimeValues:
    """The run-time values of a build (or of a VM that vmbake boots outside a build, with its own name)."""
    output_dir = "" if state.output_dir is None else str(state.output_dir)
    http_dir = "" if isinstance(config, NullConfig) else config.http_directory
    http_port = state.http_port
    if http_port is None and not isinstance(config, NullConfig):
        http_port = 0  # Packer's HTTP server step puts 0 when it has nothing to serve
    return RuntimeValues(
        build_name=build_name,
        builder_type=builder_type,
        vm_name=vm_name,
        http_ip=state.http_ip,
        http_port=http_port,
        http_dir=http_dir,
        output_dir=output_dir,
        ssh_host_port=0 if config.communicator == "none" else (state.ssh_host_port or 0),
        ssh_public_key=state.ssh_public_key,
        ssh_private_key_path=state.ssh_private_key_path,
        comm=config,
    )


def of(ctx: BuildContext) -> RuntimeValues:
    """The run-time values of `ctx`'s build as they stand now."""
    config = ctx.config
    vm_name = "" if isinstance(config, NullConfig) else config.vm_name or f"packer-{ctx.name}"
    return from_state(config, ctx.state, build_name=ctx.name, builder_type=ctx.builder_type, vm_name=vm_name)


def apt_proxy_of(ctx: BuildContext) -> str:
    """The build's apt_proxy key ("" for a null build, which has none)."""
    return "" if isinstance(ctx.config, NullConfig) else ctx.config.apt_proxy
