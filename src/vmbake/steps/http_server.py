"""StepHTTPServer: serve http_directory and http_content to the guest.

Reads: config.http_directory, http_content, http_port_min/max, http_bind_address, vm_name; state.http_ip,
ssh_public_key (when a request arrives, so a key made by a later step is still filled in); with
{{ .LoginPreseed }} in http_content, the login keys (root_password, root_ssh_keys, users, cloud_init); with
{{ .AptProxy }}, apt_proxy (or APT_PROXY/http_proxy from the environment).
Writes: state.http_port, state.http_server (a vmbake.httpserver.HttpServer). Cleanup stops the server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from vmbake import placeholders
from vmbake.config.login import LoginConfig, gives_a_way_in
from vmbake.config.qemu import HTTPConfig
from vmbake.errors import StepError, VmbakeError
from vmbake.httpserver import Content, HttpServer, Request
from vmbake.login import NO_WAY_IN, crypted, read_keys
from vmbake.ports import bind_in_range
from vmbake.state import BuildContext
from vmbake.steps import Step


def render_content(ctx: BuildContext, text: str, login: LoginConfig | None) -> str:
    """One http_content value with the build's values as they stand now (vmbake.placeholders)."""
    values = placeholders.of(ctx)
    return values.render(text, values.http_content(login, placeholders.apt_proxy_of(ctx)))


def login_config(ctx: BuildContext, config: LoginConfig) -> LoginConfig:
    """The login keys with root's password hashed once per build (a fresh salt at each request would
    serve a different hash each time), after a warning when they give no way in."""
    if not gives_a_way_in(config):
        ctx.ui.warn(NO_WAY_IN)
    ctx.ui.add_secret(config.root_password)
    try:
        hashed = crypted(config.root_password)
        read_keys(config.root_ssh_keys)  # an unreadable key file fails now, not when the installer asks
        for user in config.users:
            read_keys(user.ssh_authorized_keys)
    except VmbakeError as exc:
        raise StepError(StepHTTPServer.name, f"{{{{ .LoginPreseed }}}}: {exc.message}", exc.hint) from None
    return dataclasses.replace(config, root_password=hashed)


class StepHTTPServer(Step):
    name = "StepHTTPServer"

    def run(self, ctx: BuildContext) -> None:
        config = ctx.config
        if not isinstance(config, HTTPConfig) or not (config.http_directory or config.http_content):
            return
        login = None
        if any("LoginPreseed" in text for text in config.http_content.values()):
            login = login_config(ctx, config)
        for key, text in config.http_content.items():
            try:  # fail now, not when the installer asks
                render_content(ctx, text, login)
            except VmbakeError as exc:
                raise StepError(self.name, f"http_content[{key!r}]: {exc}", exc.hint) from None
        directory: Path | None = None
        if config.http_directory:
            directory = Path(config.http_directory)
            if not directory.is_dir():
                raise StepError(
                    self.name,
                    f"http_directory {config.http_directory!r} is not a directory",
                    hint="create it, or fix http_directory (relative paths start from the current directory)",
                )
        try:
            sock = bind_in_range(
                config.http_bind_address, config.http_port_min, config.http_port_max,
                keys=("http_port_min", "http_port_max"),
            )  # fmt: skip
        except VmbakeError as exc:
            raise StepError(self.name, exc.message, exc.hint) from None
        content: dict[str, Content] = {
            key: self._renderer(ctx, text, login) for key, text in config.http_content.items()
        }
        server = HttpServer(sock, directory=directory, content=content, on_request=self._reporter(ctx))
        ctx.state.http_port = server.port
        ctx.state.http_server = server
        ctx.ui.say(f"Starting HTTP server on port {server.port}")
        server.start()

    def cleanup(self, ctx: BuildContext) -> None:
        server = ctx.state.http_server
        if server is not None:
            server.stop()
        ctx.state.http_server = None

    @staticmethod
    def _renderer(ctx: BuildContext, text: str, login: LoginConfig | None) -> Callable[[], str]:
        return lambda: render_content(ctx, text, login)

    @staticmethod
    def _reporter(ctx: BuildContext) -> Callable[[Request], None]:
        return lambda req: ctx.ui.message(f"http: {req.method} {req.path} {req.status}")
