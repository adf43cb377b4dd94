"""`data` blocks: Packer's built-in `null` and `http` data sources run here; other types are named (a
warning) and their values are Unavailable, an error only where a build uses them.

Data sources and locals may refer to each other, so they are resolved together, in rounds (hcl_vars).
"""

from __future__ import annotations

from typing import Any

from vmbake.errors import VmbakeError
from vmbake.fetch import fetch_response, is_remote
from vmbake.template.hcl_errors import ExprError, Unavailable

BUILTIN = ("null", "http")
_HTTP_KEYS = ("url", "request_headers", "method", "request_body")
_METHODS = ("HEAD", "GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")


def unavailable(kind: str, name: str, where: str) -> Unavailable:
    return Unavailable(
        f"data.{kind}.{name} ({where}) is a {kind!r} data source, which vmbake does not run "
        f"(it runs Packer's built-in {' and '.join(BUILTIN)} data sources)"
    )


def run(kind: str, name: str, config: dict[str, Any]) -> dict[str, Any]:
    """The outputs of a built-in data source, from its evaluated configuration. Raises ExprError."""
    if kind == "null":
        unknown = sorted(set(config) - {"input"})
        if unknown:
            raise ExprError(f"unknown key {unknown[0]!r} in a null data source (valid: input)")
        if "input" not in config:
            raise ExprError("a null data source needs input")
        return {"input": config["input"], "output": config["input"]}
    return _http(config)


def _http(config: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(config) - set(_HTTP_KEYS))
    if unknown:
        raise ExprError(f"unknown key {unknown[0]!r} in an http data source (valid: {', '.join(_HTTP_KEYS)})")
    url = config.get("url")
    if not isinstance(url, str) or not url:
        raise ExprError("an http data source needs url")
    if not is_remote(url):
        raise ExprError(f"the http data source fetches http:// or https:// URLs, not {url!r}")
    headers = config.get("request_headers") or {}
    if not isinstance(headers, dict):
        raise ExprError("request_headers must be a map of strings")
    method = str(config.get("method") or "GET")
    if method not in _METHODS:
        raise ExprError(f"the http data source's method must be one of {', '.join(_METHODS)}, not {method!r}")
    body = config.get("request_body")
    try:
        status, raw_headers, data = fetch_response(
            url,
            method=method,
            headers={str(k): str(v) for k, v in headers.items()},
            body=str(body).encode() if body is not None else None,
        )
    except VmbakeError as exc:
        raise ExprError(str(exc)) from None
    if not 200 <= status < 300:
        raise ExprError(f"{url} answered HTTP {status}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ExprError(f"the body of {url} is not UTF-8 text") from None
    response_headers: dict[str, str] = {}
    for key, value in raw_headers:
        canonical = "-".join(part[:1].upper() + part[1:].lower() for part in key.split("-"))
        joined = response_headers.get(canonical)
        response_headers[canonical] = value if joined is None else f"{joined}, {value}"  # RFC 2616 4.2
    # Packer's output names the response headers `request_headers`; `response_headers` says what they are.
    return {
        "url": url,
        "body": text,
        "request_headers": response_headers,
        "response_headers": response_headers,
    }
