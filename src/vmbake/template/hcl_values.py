"""HCL2 values as python-hcl2 gives them, turned into evaluable nodes, and evaluated with a scope.

python-hcl2 (v8) keeps the quotes of string literals ('"a ${var.x}"') and gives bare expressions as
"${...}"; `clean` turns those into `Tpl` and `Expr` nodes and `evaluate` computes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import hcl2  # type: ignore[import-untyped,unused-ignore]
from hcl2.utils import SerializationOptions  # type: ignore[import-untyped,unused-ignore]

from vmbake.errors import Problem
from vmbake.template.assemble import Assembler
from vmbake.template.hcl_errors import Unavailable, UnavailableError, has_unavailable
from vmbake.template.hcl_expr import Evaluator, ExprError
from vmbake.template.hcl_split import MAX_BLOCK_BYTES, runs
from vmbake.template.hcl_syntax import describe, unterminated_string

_OPTIONS = SerializationOptions(with_comments=False, preserve_heredocs=True)


@dataclass(frozen=True)
class Tpl:
    """A quoted string template body, to evaluate."""

    body: str
    heredoc: bool = False  # heredoc bodies take no backslash escapes


_HEREDOC = re.compile(r'^"<<(-?)([A-Za-z_][\w-]*)\n(?:(.*)\n)?[ \t]*\2"$', re.DOTALL)


def _heredoc(text: str) -> Tpl | None:
    """A heredoc as python-hcl2 keeps it ('"<<EOF\n...\nEOF"'); a quoted string cannot hold a raw newline."""
    m = _HEREDOC.match(text)
    if not m:
        return None
    lines = (m.group(3) + "\n").splitlines(keepends=True) if m.group(3) is not None else []
    if m.group(1):  # <<- strips the common indentation
        indents = [len(ln) - len(ln.lstrip(" \t")) for ln in lines if ln.strip()]
        cut = min(indents, default=0)
        lines = [ln[cut:] if ln.strip() else ln.lstrip(" \t") for ln in lines]
    return Tpl("".join(lines), heredoc=True)


class Block(dict[str, Any]):
    """The body of a block (python-hcl2 marks it `__is_block__`), as opposed to an object value: in a block,
    `null` means "unset" and `dynamic "x" { ... }` makes blocks."""


@dataclass(frozen=True)
class Expr:
    """A bare expression (python-hcl2 gives it as "${...}")."""

    text: str


def _unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == '"' else key


def clean(value: Any) -> Any:
    """python-hcl2's output as plain data whose strings are Tpl or Expr nodes."""
    if isinstance(value, str):
        heredoc = _heredoc(value) if value.startswith('"<<') else None
        if heredoc is not None:
            return heredoc
        if len(value) >= 2 and value[0] == value[-1] == '"':
            return Tpl(value[1:-1])
        if value.startswith("${") and value.endswith("}"):
            return Expr(value[2:-1])
        return Expr(value)
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        pairs = {_unquote(k): clean(v) for k, v in value.items() if k != "__is_block__"}
        return Block(pairs) if value.get("__is_block__") else pairs
    return value


_FAILED = object()


def evaluate(tree: Any, scope: dict[str, Any], path: str, report: Any, defer: bool = False) -> Any:
    """`tree` with every Tpl and Expr evaluated; failures are reported with their key path and left out.

    With `defer` (locals), a use of a data source vmbake does not run makes the value Unavailable instead
    of an error: it is an error only where a build uses it."""
    value = _evaluate(tree, scope, path, report, defer)
    return None if value is _FAILED else value


def _evaluate(tree: Any, scope: dict[str, Any], path: str, report: Any, defer: bool = False) -> Any:
    if isinstance(tree, Tpl | Expr):
        try:
            ev = Evaluator(scope)
            value = (
                ev.template(tree.body, not tree.heredoc)
                if isinstance(tree, Tpl)
                else ev.expression(tree.text)
            )
        except UnavailableError as exc:
            if defer:
                return Unavailable(str(exc), exc.hint)
            report(path, str(exc), exc.hint)
            return _FAILED
        except ExprError as exc:
            report(path, str(exc), "check the expression")
            return _FAILED
        if not defer and has_unavailable(value):
            first = _first(value)
            report(path, first.reason, first.hint)
            return _FAILED
        return value
    if isinstance(tree, list):
        items = [_evaluate(v, scope, f"{path}[{i}]", report, defer) for i, v in enumerate(tree)]
        return [v for v in items if v is not _FAILED]
    if isinstance(tree, Block):
        body = dict(tree)
        dynamic = body.pop("dynamic", None)
        pairs = {k: _evaluate(v, scope, f"{path}.{k}" if path else k, report) for k, v in body.items()}
        out = {k: v for k, v in pairs.items() if v is not _FAILED and v is not None}
        if dynamic is not None:
            for name, blocks in _dynamic(dynamic, scope, path, report).items():
                out[name] = [*(out.get(name) or []), *blocks]
        return out
    if isinstance(tree, dict):
        pairs = {k: _evaluate(v, scope, f"{path}.{k}" if path else k, report, defer) for k, v in tree.items()}
        return {k: v for k, v in pairs.items() if v is not _FAILED}
    return tree


def _first(value: Any) -> Unavailable:
    if isinstance(value, Unavailable):
        return value
    items = value.values() if isinstance(value, dict) else value
    return next(_first(v) for v in items if has_unavailable(v))


def _dynamic(items: Any, scope: dict[str, Any], path: str, report: Any) -> dict[str, list[Any]]:
    """`dynamic "disk" { for_each = ...; iterator = d; content { ... } }` as the blocks it makes."""
    made: dict[str, list[Any]] = {}
    for item in items if isinstance(items, list) else [items]:
        for name, spec in item.items() if isinstance(item, dict) else []:
            where = f"{path}.dynamic.{name}"
            if not isinstance(spec, dict) or "for_each" not in spec or not spec.get("content"):
                report(
                    where,
                    f"dynamic block {name!r} needs for_each and a content block",
                    "see Packer's dynamic blocks",
                )
                continue
            for key in spec:
                if key not in ("for_each", "iterator", "labels", "content"):
                    report(
                        f"{where}.{key}",
                        f"unknown key {key!r} in a dynamic block",
                        "valid: for_each, iterator, labels, content",
                    )
            collection = _evaluate(spec["for_each"], scope, f"{where}.for_each", report)
            if collection is _FAILED:
                continue
            iterator = spec.get("iterator")
            var = iterator.text.strip() if isinstance(iterator, Expr) else name
            pairs = (
                list(collection.items())
                if isinstance(collection, dict)
                else list(enumerate(collection))
                if isinstance(collection, list)
                else None
            )
            if pairs is None:
                report(f"{where}.for_each", f"for_each wants a list or map, got {collection!r}")
                continue
            content = spec["content"][0] if isinstance(spec["content"], list) else spec["content"]
            for key, value in pairs:
                local = {**scope, var: {"key": key, "value": value}}
                block = _evaluate(content, local, f"{where}.content", report)
                if block is not _FAILED:
                    made.setdefault(name, []).append(block)
    return made


def parse_hcl(text: str, name: str) -> tuple[dict[str, Any], list[Problem]]:
    """The file's top-level items, parsed in runs of whole blocks so that memory follows a run's size."""
    parts, too_large = runs(text)
    if too_large is not None and unterminated_string(text) is not None:
        message, line = describe(ValueError("unterminated string"), text)  # the cause of the long "block"
        return {}, [Problem(name, "", message, "", line)]
    if too_large is not None:
        message = (
            f"a top-level block of {too_large.size} bytes is over vmbake's limit of {MAX_BLOCK_BYTES} bytes "
            "for one block (parsing it would take hundreds of megabytes)"
        )
        hint = "split the block, or move long inline scripts and data into files that the template names"
        return {}, [Problem(name, "", message, hint, too_large.line)]
    data: dict[str, Any] = {}
    for run in parts:
        chunk = text[run.start : run.end]
        try:  # leading newlines keep lark's line numbers those of the file
            raw = hcl2.loads("\n" * (run.line - 1) + chunk, serialization_options=_OPTIONS)
        except Exception as exc:  # lark raises many kinds; all mean a syntax error here
            message, line = describe(exc, text)
            return {}, [Problem(name, "", message, "", line)]
        for key, value in raw.items():
            if key in data and _blocks(raw[key]) and isinstance(data[key], list):
                data[key].extend(clean(value))  # blocks of a type seen in an earlier run: one list
            else:
                data[key] = clean(value)  # a repeated attribute: the last one wins, as in one parse
    return data, []


def _blocks(value: Any) -> bool:
    """python-hcl2's list of top-level blocks: each is marked, or a label over a marked body."""

    def block(item: Any) -> bool:
        if not isinstance(item, dict):
            return False
        return bool(item.get("__is_block__")) or (len(item) == 1 and block(next(iter(item.values()))))

    return isinstance(value, list) and all(block(v) for v in value)


def read_hcl_values(text: str, name: str) -> tuple[dict[str, Any], list[Problem]]:
    """`name = value` pairs of a .pkrvars.hcl file (constants only)."""
    data, problems = parse_hcl(text, name)
    values: dict[str, Any] = {}

    def report(path: str, message: str, hint: str = "") -> None:
        problems.append(Problem(name, path, message, hint))

    for key, tree in data.items():
        if isinstance(tree, list) and tree and isinstance(tree[0], dict):
            report(key, "a variable file holds only `name = value` lines, not blocks")
            continue
        values[key] = evaluate(tree, {}, key, report)
    return values, problems


def reporter(asm: Assembler, file: str) -> Any:
    def report(path: str, message: str, hint: str = "") -> None:
        asm.problems.append(Problem(file, path, message, hint))

    return report
