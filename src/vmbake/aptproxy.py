"""The HTTP package proxy (apt-cacher-ng, approx, squid-deb-proxy) a build fetches Debian packages through.

One setting reaches every place packages are fetched: mmdebstrap's apt (`--aptopt`), the netboot fetch
(urllib), and the installer's preseed (`{{ .AptProxy }}` in http_content, for `mirror/http/proxy`). It
comes from the builder's `apt_proxy` key, else from APT_PROXY or http_proxy in the environment (apt
itself reads http_proxy). A proxy that does not answer stops the build before any download: a build that
quietly went to the archive instead would hide a broken cache.
"""

from __future__ import annotations

import http.client
import os
import socket
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from vmbake.errors import VmbakeError

ENV_NAMES = ("APT_PROXY", "http_proxy")
CHECK_TIMEOUT = 10.0  # seconds for the probe: a proxy that is up answers in milliseconds
# Host names that mean "this machine": from a guest under QEMU's user network they mean the guest itself.
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True)
class AptProxy:
    """The proxy a build uses ("" for none) and where the setting came from, for messages."""

    url: str = ""
    origin: str = "apt_proxy"


NO_PROXY = AptProxy()


def resolve(key: str, environ: Mapping[str, str] | None = None) -> AptProxy:
    """The `apt_proxy` key if set, else APT_PROXY, else http_proxy from the environment."""
    if key:
        return AptProxy(key, "apt_proxy")
    env = os.environ if environ is None else environ
    for name in ENV_NAMES:
        value = env.get(name, "").strip()
        if value:
            return AptProxy(value, f"{name} in the environment")
    return NO_PROXY


def url_problem(url: str) -> str:
    """Why `url` is not a usable proxy URL ("" when it is)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return f"{url!r} is not an http:// URL with a host (like http://apt-cacher:3142)"
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return f"{url!r} has a port that is not a number"
    return ""


def check(proxy: AptProxy, probe_url: str, timeout: float = CHECK_TIMEOUT) -> None:
    """A short HTTP request through the proxy: any HTTP answer will do; no answer is an error naming it."""
    if not proxy.url:
        return
    hint = (
        f"start the proxy or fix {proxy.origin}; vmbake does not fall back to the archive "
        "(unset it to download straight from the mirror)"
    )
    problem = url_problem(proxy.url)
    if problem:
        raise VmbakeError(f"{proxy.origin}: {problem}", hint=hint)
    parts = urllib.parse.urlsplit(proxy.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
    try:
        conn.request("HEAD", probe_url, headers={"User-Agent": "vmbake proxy check"})
        conn.getresponse().read()
    except (OSError, http.client.HTTPException) as err:
        reason = (
            "no answer within the time limit"
            if isinstance(err, socket.timeout)
            else str(err) or type(err).__name__
        )
        raise VmbakeError(
            f"the package proxy {proxy.url} ({proxy.origin}) does not answer: {reason}", hint=hint
        ) from err
    finally:
        conn.close()


def opener(proxy: AptProxy) -> urllib.request.OpenerDirector:
    """A urllib opener sending http:// requests through `proxy` (none: urllib's own reading of the environment)."""
    handler = urllib.request.ProxyHandler({"http": proxy.url}) if proxy.url else urllib.request.ProxyHandler()
    return urllib.request.build_opener(handler)


def for_guest(url: str, host_ip: str) -> str:
    """`url` as a guest on QEMU's user network reaches it: a loopback host becomes the host's address."""
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname in LOOPBACK or (parts.hostname or "").startswith("127."):
        netloc = host_ip + (f":{parts.port}" if parts.port else "")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url
