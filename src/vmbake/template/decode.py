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
) -> Any:
    """`value` with every string rendered; a bad action is reported with its key path and left as is."""
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
            report(path, f"undefined variable {name!r}", f'declare it under "variables"; defined: {defined}')
        return out
    if isinstance(value, list):
        return [render_tree(v, ctx, child_path(path, i), report) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: render_tree(v, ctx, child_path(path, k), report) for k, v in value.items()}
    return value
