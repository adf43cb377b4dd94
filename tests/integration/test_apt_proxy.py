"""The package proxy for real: apt-cacher-ng from Debian's archive on 127.0.0.1, two bootstraps through it.

mmdebstrap runs twice (the essential variant: the smallest set that still downloads a few dozen .debs) with
the proxy option vmbake passes and the hook line vmbake's customize hook uses to drop it again. The second
run's packages must come from the proxy's cache (its log has no upstream fetch for them), and neither
root filesystem may keep the proxy setting. The dead proxy's error is a unit test (tests/unit/test_aptproxy.py).

apt-cacher-ng 3.7.4 keeps the port in a signed 16-bit integer: a port above 32767 turns into a negative
service name ("-2639" for 39142), getaddrinfo answers EAI_SERVICE, and the daemon reports "Error resolving
address for binding: Success" and never listens. The test therefore picks its free port below 32768. It
also runs the daemon with an empty configuration: the stock one remaps deb.debian.org onto the mirror
list of backends_debian, which is not what a test of the cache needs.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmbake import procs
from vmbake.bootstrap.rootfs import FORGET_BUILD_OPTIONS, proxy_aptopt
from vmbake.config.bootstrap import DEFAULT_MIRROR

ACNG = "/usr/sbin/apt-cacher-ng"
# Two mmdebstrap runs of the essential variant: 45 s together on an idle 2-core host (191 s and 168 s
# once beside the unit tier at a high load); cheap enough for the guest tier.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.network,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("mmdebstrap") is None or not Path(ACNG).exists(),
        reason="needs root, mmdebstrap and apt-cacher-ng",
    ),
]


def free_port_below_32768() -> int:
    """A port free on 127.0.0.1 now, under apt-cacher-ng's limit (released before the daemon binds it)."""
    for _ in range(200):
        port = random.randint(20000, 32767)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32767")


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A running apt-cacher-ng: its URL and its log directory."""
    conf, cache, logs = tmp_path / "conf", tmp_path / "cache", tmp_path / "log"
    for d in (conf, cache, logs):
        d.mkdir()
    (conf / "acng.conf").write_text("")
    port = free_port_below_32768()
    argv = [
        ACNG, "-c", str(conf), "ForeGround=1", f"Port={port}", "BindAddress=127.0.0.1",
        f"CacheDir={cache}", f"LogDir={logs}", f"SocketPath={tmp_path / 'acng.socket'}",
    ]  # fmt: skip
    daemon = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if daemon.poll() is not None or time.monotonic() > deadline:
                    out = daemon.stdout.read().decode() if daemon.stdout else ""
                    pytest.fail(f"apt-cacher-ng did not listen on {port}: {out}")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", logs
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        if daemon.stdout:
            daemon.stdout.close()


def bootstrap(url: str, tarball: Path) -> None:
    procs.run(
        [
            "mmdebstrap",
            "--variant=essential",
            proxy_aptopt(url),
            f'--customize-hook=root="$1"; {FORGET_BUILD_OPTIONS}',
            "bookworm",
            str(tarball),
            DEFAULT_MIRROR,
        ],
        what="mmdebstrap",
        timeout=600,
    )


def debs(log: str) -> tuple[set[str], set[str]]:
    """The .deb paths the proxy served to apt and fetched upstream, from apt-cacher.log.

    Its lines read TIME|KIND|SIZE|CLIENT|PATH: KIND I is data that came in from upstream, O data that went
    out to the client."""
    served: set[str] = set()
    fetched: set[str] = set()
    for line in log.splitlines():
        fields = line.split("|")
        if len(fields) >= 5 and fields[-1].endswith(".deb"):
            if fields[1] == "O":
                served.add(fields[-1])
            elif fields[1] == "I":
                fetched.add(fields[-1])
    return served, fetched


def test_second_bootstrap_comes_from_the_proxy_cache(proxy: tuple[str, Path], tmp_path: Path) -> None:
    url, logs = proxy
    log = logs / "apt-cacher.log"
    started = time.monotonic()
    bootstrap(url, tmp_path / "one.tar")
    cold = time.monotonic() - started
    first_served, first_fetched = debs(log.read_text())
    assert first_fetched and first_served == first_fetched, "the first run fetches every .deb upstream"
    size_before = len(log.read_text())
    bootstrap(url, tmp_path / "two.tar")
    second_served, second_fetched = debs(log.read_text()[size_before:])
    assert second_served == first_served, "the second run asks the proxy for the same packages"
    assert not second_fetched, f"the second run went upstream for {sorted(second_fetched)[:5]}"
    for name in ("one.tar", "two.tar"):
        with tarfile.open(tmp_path / name) as tar:
            members = tar.getnames()
            assert not [m for m in members if m.endswith("99mmdebstrap")], members
            for member in tar.getmembers():
                if member.isfile() and member.name.lstrip("./").startswith("etc/apt/"):
                    data = tar.extractfile(member)
                    assert data is not None and b"Proxy" not in data.read(), member.name
    print(f"bootstrap through the proxy: cold {cold:.0f} s, warm {time.monotonic() - started - cold:.0f} s")
