"""Render the Go-template actions of a raw block, reporting each bad one with its key path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vmbake.template.gotemplate import RenderContext, TemplateSyntaxError, render
from vmbake.template.jsonpos import child_path


def render_tree(
    value: Any,
    ctx: RenderContext,
    path: str,
    report: Callable[[str, str, str], None],
    warn: Callable[[str, str, str], None] | None = None,
) -> Any:
    """`value` with every string rendered; a bad action is reported with its key path and left as is.

    With `warn`, a user variable that is not defined is a warning: outside the variables section Packer
    renders it as "" (hashicorp/packer v1.6.6 packer-plugin-sdk/template/interpolate/funcs.go, funcGenUser: the "variable
    not set" error is only raised while the variables themselves are interpolated)."""
    if isinstance(value, str):
        seen = len(ctx.undefined)
        try:
            out = render(value, ctx)
        except TemplateSyntaxError as exc:
            report(
                path,
                f"template error: {exc}",
                "actions look like {{user `name`}} or {{ .HTTPIP }}; see 'vmbake help template'",
            )
            return value
        for name in dict.fromkeys(ctx.undefined[seen:]):
            defined = ", ".join(sorted(ctx.user)) or "none"
            hint = f'declare it under "variables"; defined: {defined}'
            if warn is None:
                report(path, f"undefined variable {name!r}", hint)
            else:
                warn(
                    path, f"undefined variable {name!r} is rendered as an empty string (as Packer does)", hint
                )
        return out
    if isinstance(value, list):
        return [render_tree(v, ctx, child_path(path, i), report, warn) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: render_tree(v, ctx, child_path(path, k), report, warn) for k, v in value.items()}
    return value
