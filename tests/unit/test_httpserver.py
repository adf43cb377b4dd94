"""The preseed HTTP server: real sockets on loopback, real files and symlinks in a temp directory."""

from __future__ import annotations

import http.client
import io
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from vmbake.config.qemu import QemuConfig
from vmbake.errors import StepError
from vmbake.httpserver import HttpServer, Request
from vmbake.ports import bind_in_range
from vmbake.state import BuildContext, Options
from vmbake.steps.http_server import StepHTTPServer
from vmbake.ui import BuildUi, Ui


def _get(server: HttpServer, path: str, method: str = "GET") -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read(), dict(resp.getheaders())
    finally:
        conn.close()


def _raw(server: HttpServer, request_line: str) -> int:
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        s.sendall(request_line.encode("latin-1") + b"\r\nHost: x\r\n\r\n")
        data = s.recv(4096)
    return int(data.split(b" ", 2)[1])


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "htdocs"
    (root / "sub").mkdir(parents=True)
    (root / "virtual-host.cfg").write_text("d-i debian-installer/locale string en_US\n")
    (root / "sub" / "late.sh").write_text("#!/bin/sh\n")
    (tmp_path / "secret.txt").write_text("top secret\n")
    os.symlink(tmp_path / "secret.txt", root / "escape.txt")
    os.symlink(root / "virtual-host.cfg", root / "inside.cfg")
    os.symlink("/etc", root / "etc")
    return root


@pytest.fixture
def server(site: Path) -> Iterator[HttpServer]:
    seen: list[Request] = []
    srv = HttpServer(
        bind_in_range("127.0.0.1", 0, 0),
        directory=site,
        content={"/key.pub": lambda: "ssh-ed25519 AAAA test", "extra.cfg": "x=1\n"},
        on_request=seen.append,
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
    assert seen == srv.requests


def test_serves_directory_and_content(server: HttpServer) -> None:
    status, body, headers = _get(server, "/virtual-host.cfg")
    assert (status, body) == (200, b"d-i debian-installer/locale string en_US\n")
    assert headers["Content-Type"].startswith("text/plain")
    assert _get(server, "/sub/late.sh")[:2] == (200, b"#!/bin/sh\n")
    assert _get(server, "/key.pub")[:2] == (200, b"ssh-ed25519 AAAA test")
    assert _get(server, "/extra.cfg?x=1")[:2] == (200, b"x=1\n")
    assert _get(server, "/inside.cfg")[0] == 200  # a symlink that stays inside is fine
    status, body, headers = _get(server, "/virtual-host.cfg", method="HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", "41")
    assert _get(server, "/missing.cfg")[0] == 404
    assert _get(server, "/sub")[0] == 403  # no directory listings


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2fsecret.txt",
        "/sub/..%2F..%2Fsecret.txt",
    ],
)
def test_refuses_traversal(server: HttpServer, path: str) -> None:
    status, body, _ = _get(server, path)
    assert status == 403 and b"secret" not in body


def test_refuses_symlinks_out_and_absolute_targets(server: HttpServer) -> None:
    assert _get(server, "/escape.txt")[0] == 403
    assert _get(server, "/etc/passwd")[0] == 403
    assert _raw(server, "GET http://evil.example/etc/passwd HTTP/1.0") == 400
    assert _raw(server, "GET etc/passwd HTTP/1.0") == 400
    assert _get(server, "//etc/passwd")[0] in (403, 404)
    assert _get(server, "/%2fetc%2fpasswd")[0] in (403, 404)
    assert _get(server, "/%ff%fe")[0] == 400


def test_logs_requests_with_escaped_control_characters(server: HttpServer) -> None:
    _get(server, "/virtual-host.cfg")
    _raw(server, "GET /\x1b[2Jboom HTTP/1.0")
    assert server.requests[0] == Request("GET", "/virtual-host.cfg", 200)
    assert server.requests[1].status == 404 and "\x1b" not in server.requests[1].path
    assert "\\x1b" in server.requests[1].path


def test_stop_joins_threads_even_with_a_stalled_client(site: Path) -> None:
    before = set(threading.enumerate())
    srv = HttpServer(bind_in_range("127.0.0.1", 0, 0), directory=site).start()
    stalled = socket.create_connection((srv.host, srv.port), timeout=5)
    stalled.sendall(b"GET /virtual-host.cfg HTTP/1.0\r\n")  # never finishes its headers
    assert _get(srv, "/virtual-host.cfg")[0] == 200
    srv.stop()
    srv.stop()  # idempotent
    stalled.close()
    assert set(threading.enumerate()) - before == set()
    with pytest.raises(OSError):
        socket.create_connection((srv.host, srv.port), timeout=1).close()


def _ctx(config: QemuConfig, out: io.StringIO) -> BuildContext:
    ui = Ui(out=out, err=out, color=False)
    return BuildContext("qemu", "qemu", config, cast(Any, None), BuildUi(ui, "qemu"), Options())


def test_step_starts_on_loopback_renders_content_and_logs(site: Path) -> None:
    out = io.StringIO()
    config = QemuConfig(
        http_directory=str(site),
        http_content={
            "/preseed.cfg": "url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ key={{ .SSHPublicKey }} {{.Name}}"
        },
        http_port_min=0,
        http_port_max=0,
    )
    ctx = _ctx(config, out)
    step = StepHTTPServer()
    step.run(ctx)
    try:
        server = ctx.state.http_server
        assert isinstance(server, HttpServer)
        assert server.host == "127.0.0.1" and ctx.state.http_port == server.port
        ctx.state.ssh_public_key = "ssh-ed25519 AAAAlate"  # made after the server started
        status, body, _ = _get(server, "/preseed.cfg")
        assert status == 200
        assert body.decode() == f"url=http://10.0.2.2:{server.port}/ key=ssh-ed25519 AAAAlate packer-qemu"
    finally:
        step.cleanup(ctx)
        step.cleanup(ctx)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"==> qemu: Starting HTTP server on port {server.port}"
    assert "    qemu: http: GET /preseed.cfg 200" in lines
    assert ctx.state.http_server is None


def test_step_skips_without_directory_or_content() -> None:
    out = io.StringIO()
    ctx = _ctx(QemuConfig(), out)
    StepHTTPServer().run(ctx)
    assert ctx.state.http_port is None and out.getvalue() == ""


def test_step_rejects_missing_directory(tmp_path: Path) -> None:
    ctx = _ctx(QemuConfig(http_directory=str(tmp_path / "nope")), io.StringIO())
    with pytest.raises(StepError, match=r"http_directory .* is not a directory"):
        StepHTTPServer().run(ctx)


def test_step_honours_bind_address_and_range(site: Path) -> None:
    sock = bind_in_range("127.0.0.1", 0, 0)
    port = sock.getsockname()[1]
    sock.close()
    config = QemuConfig(
        http_directory=str(site), http_port_min=port, http_port_max=port, http_bind_address="127.0.0.2"
    )
    ctx = _ctx(config, io.StringIO())
    step = StepHTTPServer()
    step.run(ctx)
    try:
        assert (ctx.state.http_server.host, ctx.state.http_port) == ("127.0.0.2", port)
    finally:
        step.cleanup(ctx)


def test_step_refuses_unknown_placeholder_before_serving() -> None:
    config = QemuConfig(http_content={"/p.cfg": "{{ .NoSuchThing }}"}, http_port_min=0, http_port_max=0)
    ctx = _ctx(config, io.StringIO())
    with pytest.raises(StepError, match=r"StepHTTPServer: http_content\['/p.cfg'\]: .*NoSuchThing"):
        StepHTTPServer().run(ctx)
    assert ctx.state.http_server is None


def test_step_names_itself_when_the_port_range_is_taken(site: Path) -> None:
    taken = bind_in_range("127.0.0.1", 0, 0)
    port = taken.getsockname()[1]
    try:
        config = QemuConfig(http_directory=str(site), http_port_min=port, http_port_max=port)
        with pytest.raises(StepError) as info:
            StepHTTPServer().run(_ctx(config, io.StringIO()))
        assert str(info.value) == f"StepHTTPServer: no free port between {port} and {port} on 127.0.0.1"
        assert "http_port_min and http_port_max" in (info.value.hint or "")
    finally:
        taken.close()
