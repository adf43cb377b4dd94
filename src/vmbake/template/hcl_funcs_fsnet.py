"""Packer's HCL2 filesystem and IP network functions."""

from __future__ import annotations

import base64
import ipaddress
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmbake.errors import VmbakeError
from vmbake.files import digest_regular, read_regular_bytes
from vmbake.template.hcl_errors import ExprError
from vmbake.template.hcl_funcs_core import integer, text


# -- filesystem --------------------------------------------------------------------------------------------
def _read(path: Any, fn: str) -> bytes:
    """The file's bytes: a regular file only (a FIFO would block, /dev/zero fill memory), of a size a
    template can hold."""
    try:
        return read_regular_bytes(Path(text(path)).expanduser(), f"{fn}:")
    except VmbakeError as exc:
        raise ExprError(exc.message) from None


def _file(path: Any) -> str:
    try:
        return _read(path, "file").decode("utf-8")
    except UnicodeDecodeError:
        raise ExprError(f"file: {text(path)!r} is not UTF-8 text; use filebase64") from None


def _fileexists(path: Any) -> bool:
    p = Path(text(path)).expanduser()
    if p.exists() and not p.is_file():
        raise ExprError(f"fileexists: {str(p)!r} exists but is not a regular file")
    return p.is_file()


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """doublestar's pattern syntax: * ? [..] {a,b} within a name, ** across directories."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ExprError(f"fileset: unclosed '[' in {pattern!r}")
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        elif c == "{":
            end = pattern.find("}", i + 1)
            if end < 0:
                raise ExprError(f"fileset: unclosed '{{' in {pattern!r}")
            out.append("(?:" + "|".join(re.escape(a) for a in pattern[i + 1 : end].split(",")) + ")")
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 1
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def _fileset(path: Any, pattern: Any) -> list[str]:
    root = Path(text(path)).expanduser()
    rx = _glob_regex(text(pattern))
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            if rx.fullmatch(rel):
                found.append(rel)
    return sorted(found)


def _file_digest(name: str, b64: bool) -> Callable[[Any], str]:
    def fn(path: Any) -> str:
        try:  # any size (an ISO's checksum), read in blocks
            digest = digest_regular(Path(text(path)).expanduser(), f"file{name}:", name)
        except VmbakeError as exc:
            raise ExprError(exc.message) from None
        return base64.b64encode(digest.digest()).decode() if b64 else digest.hexdigest()

    return fn


# -- IP networks -------------------------------------------------------------------------------------------
def _network(prefix: Any, fn: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text(prefix), strict=False)
    except ValueError:
        raise ExprError(f"{fn}: {prefix!r} is not a CIDR prefix like 10.0.0.0/16") from None


def _cidrhost(prefix: Any, hostnum: Any) -> str:
    net = _network(prefix, "cidrhost")
    n = integer(hostnum)
    index = n if n >= 0 else net.num_addresses + n
    if not 0 <= index < net.num_addresses:
        raise ExprError(f"cidrhost: prefix {net} has no host number {n}")
    return str(net.network_address + index)


def _cidrnetmask(prefix: Any) -> str:
    net = _network(prefix, "cidrnetmask")
    if net.version != 4:
        raise ExprError("cidrnetmask: only IPv4 prefixes have a netmask")
    return str(net.netmask)


def _subnet(net: Any, newbits: int, netnum: int, fn: str) -> Any:
    length = net.prefixlen + newbits
    if newbits < 0 or length > net.max_prefixlen:
        raise ExprError(f"{fn}: cannot extend /{net.prefixlen} by {newbits} bits")
    if not 0 <= netnum < (1 << newbits):
        raise ExprError(f"{fn}: network number {netnum} does not fit in {newbits} bits")
    base = int(net.network_address) + (netnum << (net.max_prefixlen - length))
    return ipaddress.ip_network((base, length))


def _cidrsubnet(prefix: Any, newbits: Any, netnum: Any) -> str:
    return str(_subnet(_network(prefix, "cidrsubnet"), integer(newbits), integer(netnum), "cidrsubnet"))


def _cidrsubnets(prefix: Any, *newbits: Any) -> list[str]:
    net = _network(prefix, "cidrsubnets")
    out: list[str] = []
    cursor = int(net.network_address)
    end = int(net.broadcast_address)
    for bits in (integer(b) for b in newbits):
        length = net.prefixlen + bits
        if bits < 1 or length > net.max_prefixlen:
            raise ExprError(f"cidrsubnets: cannot extend /{net.prefixlen} by {bits} bits")
        size = 1 << (net.max_prefixlen - length)
        cursor = (cursor + size - 1) // size * size  # each subnet starts on its own boundary
        if cursor + size - 1 > end:
            raise ExprError(f"cidrsubnets: not enough room in {net} for all the subnets")
        out.append(str(ipaddress.ip_network((cursor, length))))
        cursor += size
    return out


FSNET: dict[str, Callable[..., Any]] = {
    # filesystem
    "abspath": lambda p: os.path.abspath(text(p)),
    "basename": lambda p: os.path.basename(text(p).rstrip("/")) or "/",
    "dirname": lambda p: os.path.dirname(text(p).rstrip("/") or "/") or ".",
    "file": _file,
    "filebase64": lambda p: base64.b64encode(_read(p, "filebase64")).decode(),
    "filebase64sha256": _file_digest("sha256", True),
    "filebase64sha512": _file_digest("sha512", True),
    "fileexists": _fileexists,
    "filemd5": _file_digest("md5", False),
    "fileset": _fileset,
    "filesha1": _file_digest("sha1", False),
    "filesha256": _file_digest("sha256", False),
    "filesha512": _file_digest("sha512", False),
    "pathexpand": lambda p: os.path.expanduser(text(p)),
    # IP network
    "cidrhost": _cidrhost,
    "cidrnetmask": _cidrnetmask,
    "cidrsubnet": _cidrsubnet,
    "cidrsubnets": _cidrsubnets,
}
