"""The package proxy setting: where it comes from, the check before a build, and the downloads through it.

The proxy here is a real HTTP server on 127.0.0.1 that answers absolute-form requests (as a caching proxy
does) and records them; the dead proxy is a bound port that nobody listens on. The bootstrap step's
mmdebstrap is replaced by a recorder in one test, to show that it never starts.
"""

from __future__ import annotations

import dataclasses
import http.client
import http.server
import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from vmbake import aptproxy
from vmbake.config.bootstrap import BootstrapConfig
from vmbake.errors import StepError, VmbakeError
from vmbake.installer.netboot import download
from vmbake.state import BuildContext, Options
from vmbake.steps import bootstrap_rootfs
from vmbake.steps.http_server import StepHTTPServer
from vmbake.template import load_template
from vmbake.ui import BuildUi, Ui

MIRROR = "http://deb.debian.org/debian"
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@pytest.fixture
def recording_proxy() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            seen.append(f"HEAD {self.path}")
            self.send_response(200)
            self.end_headers()

        def do_GET(self) -> None:
            seen.append(f"GET {self.path}")
            body = b"from the cache\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_key_wins_then_apt_proxy_then_http_proxy() -> None:
    env = {"APT_PROXY": "http://a:3142", "http_proxy": "http://h:3128"}
    assert aptproxy.resolve("http://key:3142", env) == aptproxy.AptProxy("http://key:3142", "apt_proxy")
    assert aptproxy.resolve("", env) == aptproxy.AptProxy("http://a:3142", "APT_PROXY in the environment")
    assert aptproxy.resolve("", {"http_proxy": "http://h:3128"}).origin == "http_proxy in the environment"
    assert (
        aptproxy.resolve("", {"HTTP_PROXY": "http://H:1"}) == aptproxy.NO_PROXY
    )  # apt reads lower case only
    assert aptproxy.resolve("", {}) == aptproxy.NO_PROXY


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://cache:3142", ""),
        ("https://cache:3142", "is not an http:// URL"),
        ("cache:3142", "is not an http:// URL"),
        ("http://cache:port", "port that is not a number"),
    ],
)
def test_url_problem(url: str, problem: str) -> None:
    found = aptproxy.url_problem(url)
    assert (problem in found) if problem else found == ""


def test_the_guest_reaches_a_loopback_proxy_at_the_host_address() -> None:
    assert aptproxy.for_guest("http://127.0.0.1:3142", "10.0.2.2") == "http://10.0.2.2:3142"
    assert aptproxy.for_guest("http://localhost:3142/", "10.0.2.2") == "http://10.0.2.2:3142/"
    assert aptproxy.for_guest("http://cache.lan:3142", "10.0.2.2") == "http://cache.lan:3142"
    assert aptproxy.for_guest("", "10.0.2.2") == ""


def test_a_live_proxy_passes_the_check(recording_proxy: tuple[str, list[str]]) -> None:
    url, seen = recording_proxy
    aptproxy.check(aptproxy.AptProxy(url), MIRROR + "/")
    assert seen == [f"HEAD {MIRROR}/"]


def test_a_dead_proxy_is_a_clear_error_at_once() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        dead = aptproxy.AptProxy(f"http://127.0.0.1:{sock.getsockname()[1]}", "APT_PROXY in the environment")
        started = time.monotonic()
        with pytest.raises(VmbakeError) as caught:
            aptproxy.check(dead, MIRROR + "/")
    assert time.monotonic() - started < aptproxy.CHECK_TIMEOUT
    assert dead.url in caught.value.message and "APT_PROXY in the environment" in caught.value.message
    assert "does not answer" in caught.value.message
    assert "does not fall back" in (caught.value.hint or "")


def test_a_proxy_that_never_answers_times_out_in_the_limit() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)  # accepts (the kernel does) but never answers
        silent = aptproxy.AptProxy(f"http://127.0.0.1:{sock.getsockname()[1]}")
        started = time.monotonic()
        with pytest.raises(VmbakeError, match="no answer within the time limit"):
            aptproxy.check(silent, MIRROR + "/", timeout=0.5)
    assert time.monotonic() - started < 5


def test_the_netboot_download_goes_through_the_proxy(
    recording_proxy: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, seen = recording_proxy
    target = download(
        f"{MIRROR}/dists/trixie/InRelease", tmp_path / "InRelease", proxy=aptproxy.AptProxy(url)
    )
    assert target.read_text() == "from the cache\n"
    assert seen == [f"GET {MIRROR}/dists/trixie/InRelease"]


def _served_proxy_cfg(variables: dict[str, str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> str:
    """proxy.cfg as the installer fetches it from the real StepHTTPServer of the shipped trixie template."""
    for name in aptproxy.ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (build,) = load_template(TEMPLATES / "trixie", vars=variables, only=["installer"]).builds
    config = dataclasses.replace(build.config, http_port_min=0, http_port_max=0)
    ui = Ui(out=io.StringIO(), err=io.StringIO(), color=False)
    ctx = BuildContext("installer", "qemu", config, cast(Any, None), BuildUi(ui, "installer"), Options())
    step = StepHTTPServer()
    step.run(ctx)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", ctx.state.http_port or 0, timeout=10)
        conn.request("GET", "/proxy.cfg")
        resp = conn.getresponse()
        body = resp.read().decode()
        conn.close()
        assert resp.status == 200
        return body
    finally:
        step.cleanup(ctx)


def test_the_installer_preseed_names_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    line = "d-i mirror/http/proxy string {}\n"
    assert _served_proxy_cfg({}, monkeypatch, {}) == line.format("")
    assert _served_proxy_cfg({"apt_proxy": "http://cache.lan:3142"}, monkeypatch, {}) == line.format(
        "http://cache.lan:3142"
    )
    # From the environment, and a proxy on the build host's loopback as the guest reaches it.
    assert _served_proxy_cfg({}, monkeypatch, {"APT_PROXY": "http://127.0.0.1:3142"}) == line.format(
        "http://10.0.2.2:3142"
    )


def test_the_bootstrap_step_stops_before_mmdebstrap_on_a_dead_proxy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
        monkeypatch.setenv("APT_PROXY", dead)
        ran: list[object] = []
        monkeypatch.setattr(bootstrap_rootfs, "make_rootfs", lambda *a, **k: ran.append(a))
        config = BootstrapConfig(root_password="secret")
        ui = Ui(out=io.StringIO(), err=io.StringIO(), color=False)
        ctx = BuildContext("b", "debian-bootstrap", config, cast(Any, None), BuildUi(ui, "b"), Options())
        ctx.state.work_dir = tmp_path
        with pytest.raises(StepError) as caught:
            bootstrap_rootfs.StepBootstrapRootfs(config).run(ctx)
    assert dead in caught.value.message and "APT_PROXY in the environment" in caught.value.message
    assert ran == []  # mmdebstrap never started
