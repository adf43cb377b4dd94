"""Packer's own template functions for JSON templates, and what one rendering may see.

The list is Packer 1.6.6's (hashicorp/packer v1.6.6 packer-plugin-sdk/template/interpolate/funcs.go,
FuncGens), plus clean_resource_name, which Packer's cloud builders add. Go's built-in functions are in
gotemplate_funcs; the evaluator is gotemplate.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vmbake.template.gotemplate_parse import TemplateSyntaxError
from vmbake.template.gotime import RFC3339, go_format

INIT_TIME = datetime.now(UTC)  # Packer renders every timestamp of a run from one instant


class Pending(Exception):
    """A user variable refers to another one that is not resolved yet (variables are resolved in rounds)."""


@dataclass
class RenderContext:
    """What the functions of one rendering may see."""

    user: Mapping[str, Any] = field(default_factory=dict)
    pending: frozenset[str] = frozenset()  # variables still being resolved: `user` raises Pending
    allow_env: bool = False  # `env` is allowed only inside the variables section, as in Packer
    template_dir: str = ""
    build_name: str | None = None  # None: {{ build_name }} is kept for later
    build_type: str | None = None
    source_name: str | None = None
    fields: Mapping[str, str] | None = None  # None: actions reading {{ .Field }} are kept verbatim
    # The values {{ build `X` }} reads; None: `fields` (render_runtime) or, if that is None too, kept verbatim.
    build_data: Mapping[str, str] | None = None
    undefined: list[str] = field(default_factory=list)  # user variables asked for but not defined


class Defer(Exception):
    """The value needs the build (a run-time field, `build`, a build name not known yet)."""


def _want(name: str, args: list[Any], count: int) -> None:
    if len(args) != count:
        raise TemplateSyntaxError(f"function {name!r} takes {count} argument(s), got {len(args)}")


def _user(ctx: RenderContext, args: list[Any]) -> Any:
    _want("user", args, 1)
    key = str(args[0])
    if key in ctx.pending:
        raise Pending(key)
    if key not in ctx.user:
        ctx.undefined.append(key)
        return ""
    return ctx.user[key]


def _env(ctx: RenderContext, args: list[Any]) -> Any:
    _want("env", args, 1)
    if not ctx.allow_env:
        raise TemplateSyntaxError("the env function is only allowed in the 'variables' section")
    return os.environ.get(str(args[0]), "")


def _isotime(ctx: RenderContext, args: list[Any]) -> Any:
    if len(args) > 1:
        raise TemplateSyntaxError("function 'isotime' takes at most one layout argument")
    return go_format(INIT_TIME, str(args[0]) if args else RFC3339)


def _split(ctx: RenderContext, args: list[Any]) -> Any:
    _want("split", args, 3)
    text, sep, index = str(args[0]), str(args[1]), args[2]
    if not isinstance(index, int) or isinstance(index, bool):
        raise TemplateSyntaxError("function 'split' wants a whole number as its third argument")
    parts = text.split(sep) if sep else list(text)
    if not 0 <= index < len(parts):
        raise TemplateSyntaxError(f"split: index {index} out of range for {text!r} split on {sep!r}")
    return parts[index]


def _replace(ctx: RenderContext, args: list[Any]) -> Any:
    _want("replace", args, 4)
    old, new, count, src = str(args[0]), str(args[1]), args[2], str(args[3])
    if not isinstance(count, int):
        raise TemplateSyntaxError("function 'replace' wants a whole number count as its third argument")
    return src.replace(old, new, count if count >= 0 else -1)


def _replace_all(ctx: RenderContext, args: list[Any]) -> Any:
    _want("replace_all", args, 3)
    return str(args[2]).replace(str(args[0]), str(args[1]))


def _clean_resource_name(ctx: RenderContext, args: list[Any]) -> Any:
    _want("clean_resource_name", args, 1)
    return re.sub(r"[^a-z0-9-]", "-", str(args[0]).lower())[:63]


def _simple(name: str, fn: Callable[[], Any]) -> Callable[[RenderContext, list[Any]], Any]:
    def call(ctx: RenderContext, args: list[Any]) -> Any:
        _want(name, args, 0)
        return fn()

    return call


def _one(name: str, fn: Callable[[str], Any]) -> Callable[[RenderContext, list[Any]], Any]:
    def call(ctx: RenderContext, args: list[Any]) -> Any:
        _want(name, args, 1)
        return fn(str(args[0]))

    return call


def _build_field(name: str) -> Callable[[RenderContext, list[Any]], Any]:
    def call(ctx: RenderContext, args: list[Any]) -> Any:
        _want(name, args, 0)
        values = {"build_name": ctx.build_name, "build_type": ctx.build_type, "source_name": ctx.source_name}
        if values[name] is None:
            raise Defer()  # kept verbatim until the build it belongs to is known
        return values[name]

    return call


def _template_dir(ctx: RenderContext, args: list[Any]) -> Any:
    _want("template_dir", args, 0)
    return ctx.template_dir


# What a builder gives its provisioners and post-processors, as {{ build `X` }} in JSON and build.X in HCL2:
# Packer's common keys (hashicorp/packer packer/provisioner.go, BuilderDataCommonKeys); the QEMU plugin adds
# none of its own (packer-plugin-qemu builder/qemu/builder.go, Builder.Prepare returns no generated names).
BUILD_DATA_KEYS = (
    "ID",
    "Host",
    "Port",
    "User",
    "Password",
    "ConnType",
    "PackerRunUUID",
    "PackerHTTPPort",
    "PackerHTTPIP",
    "PackerHTTPAddr",
    "SSHPublicKey",
    "SSHPrivateKey",
    "WinRMPassword",
)


def _build(ctx: RenderContext, args: list[Any]) -> Any:
    _want("build", args, 1)
    key = str(args[0])
    data = ctx.build_data if ctx.build_data is not None else ctx.fields
    if data is None:
        if key not in BUILD_DATA_KEYS:
            # Packer prepares provisioners with placeholders for these keys only, and refuses any other
            # ("loaded data, but couldnt find X in it": packer-plugin-sdk template/interpolate/funcs.go).
            raise TemplateSyntaxError(
                f"{{{{ build `{key}` }}}} is not a value the build gives (known: {', '.join(BUILD_DATA_KEYS)})"
            )
        raise Defer()
    if key not in data:
        known = ", ".join(sorted(data)) or "none"
        raise TemplateSyntaxError(f"{{{{ build `{key}` }}}} is not available here (available: {known})")
    return data[key]


def _strftime(ctx: RenderContext, args: list[Any]) -> Any:
    _want("strftime", args, 1)
    return INIT_TIME.strftime(str(args[0]))  # Packer uses lestrrat-go/strftime: C's conversions


def _sed(ctx: RenderContext, args: list[Any]) -> Any:
    # Packer 1.6.6 keeps `sed` only to refuse it (packer-plugin-sdk/template/interpolate/funcs.go, funcGenSed).
    raise TemplateSyntaxError("template function 'sed' is deprecated: use 'replace' or 'replace_all' instead")


def _outside(name: str, service: str) -> Callable[[RenderContext, list[Any]], Any]:
    def call(ctx: RenderContext, args: list[Any]) -> Any:
        raise TemplateSyntaxError(
            f"function {name!r} reads {service}, which vmbake does not contact; "
            "read the value outside and pass it with -var or -var-file"
        )

    return call


FUNCTIONS: dict[str, Callable[[RenderContext, list[Any]], Any]] = {
    "strftime": _strftime,
    "sed": _sed,
    "consul_key": _outside("consul_key", "a Consul key"),
    "vault": _outside("vault", "a HashiCorp Vault secret"),
    "aws_secretsmanager": _outside("aws_secretsmanager", "an AWS Secrets Manager secret"),
    "user": _user,
    "env": _env,
    "template_dir": _template_dir,
    "pwd": _simple("pwd", os.getcwd),
    "timestamp": _simple("timestamp", lambda: str(int(INIT_TIME.timestamp()))),
    "isotime": _isotime,
    "uuid": _simple("uuid", lambda: str(uuid.uuid4())),
    "build_name": _build_field("build_name"),
    "build_type": _build_field("build_type"),
    "source_name": _build_field("source_name"),
    "upper": _one("upper", str.upper),
    "lower": _one("lower", str.lower),
    "replace": _replace,
    "replace_all": _replace_all,
    "split": _split,
    "clean_resource_name": _clean_resource_name,
    "packer_version": _simple("packer_version", lambda: "1.6.6"),
    "build": _build,
}
