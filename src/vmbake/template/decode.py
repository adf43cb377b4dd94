"""Turn a raw (already variable-filled) block into its config dataclass, collecting problems."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from vmbake.config.fields import Decoder
from vmbake.errors import Problem
from vmbake.template.gotemplate import RenderContext, TemplateSyntaxError, render
from vmbake.template.jsonpos import child_path

T = TypeVar("T")


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


def decode_block(
    cls: type[T],
    raw: dict[str, Any],
    file: str,
    path: str,
    problems: list[Problem],
    *,
    warnings: list[Problem] | None = None,
    locate: Callable[[str], int | None] | None = None,
    build: tuple[str, str, str] | None = None,
    ignore: frozenset[str] = frozenset(),
) -> T:
    """`cls` decoded from `raw`; with `build` (name, type, source name), {{ build_name }} is filled in first."""
    decoder = Decoder(file, locate)
    if build is not None:
        ctx = RenderContext(build_name=build[0], build_type=build[1], source_name=build[2] or build[0])
        raw = render_tree(raw, ctx, path, decoder.problem)
    config = decoder.decode(cls, raw, path, ignore=ignore)
    problems.extend(decoder.problems)
    if warnings is not None:
        warnings.extend(decoder.warnings)
    return config
