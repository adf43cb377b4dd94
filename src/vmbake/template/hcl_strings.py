"""HCL2 string templates: literal text, `${ ... }` interpolations and `%{ if }` / `%{ for }` directives,
with the `~` strip markers that eat the whitespace beside them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from vmbake.template.hcl_errors import ExprError, Unavailable

_ESC = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
# A part is literal text, ("expr", text), ("if", text), ("else",), ("endif",), ("for", k, v, text), ("endfor",).
Part = str | tuple[str, ...]
_FOR = re.compile(r"for\s+([A-Za-z_][\w-]*)(?:\s*,\s*([A-Za-z_][\w-]*))?\s+in\s+(.+)", re.S)


def matching_brace(text: str, start: int) -> int:
    """The index of the `}` that closes a `{` opened just before `start`, skipping quoted strings."""
    depth = 1
    i = start
    while i < len(text):
        c = text[i]
        if c == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                if text.startswith("${", i):
                    i = matching_brace(text, i + 2)
                i += 2 if text[i] == "\\" else 1
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ExprError("unclosed '${' or '%{' in a string template")


def _escape(body: str, i: int) -> tuple[str, int]:
    nxt = body[i + 1]
    if nxt in _ESC:
        return _ESC[nxt], i + 2
    if nxt in "uU":
        width = 4 if nxt == "u" else 8
        try:
            return chr(int(body[i + 2 : i + 2 + width], 16)), i + 2 + width
        except ValueError:
            raise ExprError(f"bad escape in {body!r}") from None
    raise ExprError(f"unknown escape \\{nxt} in {body!r}")


def _directive(inner: str) -> tuple[str, ...]:
    words = inner.split(None, 1)
    head = words[0] if words else ""
    if head == "if" and len(words) == 2:
        return ("if", words[1])
    if head in ("else", "endif", "endfor") and len(words) == 1:
        return (head,)
    m = _FOR.fullmatch(inner)
    if head == "for" and m:
        key, value = (m.group(1), m.group(2)) if m.group(2) else ("", m.group(1))
        return ("for", key, value, m.group(3))
    raise ExprError(f"unknown template directive %{{{inner}}}: use if, else, endif, for or endfor")


def parse_template(body: str, escapes: bool = True) -> list[Part]:
    """Split a template body into parts; quoted strings read backslash escapes, heredocs do not."""
    items: list[list[Any]] = []  # [part, strip_left, strip_right]
    buf: list[str] = []

    def flush() -> None:
        if buf:
            items.append(["".join(buf), False, False])
            buf.clear()

    i = 0
    while i < len(body):
        c = body[i]
        if escapes and c == "\\" and i + 1 < len(body):
            ch, i = _escape(body, i)
            buf.append(ch)
            continue
        if body.startswith("$${", i) or body.startswith("%%{", i):
            buf.append(body[i + 1 : i + 3])
            i += 3
            continue
        if body.startswith("${", i) or body.startswith("%{", i):
            end = matching_brace(body, i + 2)
            inner = body[i + 2 : end]
            strip_left, strip_right = inner.startswith("~"), inner.endswith("~")
            inner = inner[1 if strip_left else 0 : len(inner) - 1 if strip_right else len(inner)].strip()
            flush()
            part = ("expr", inner) if c == "$" else _directive(inner)
            items.append([part, strip_left, strip_right])
            i = end + 1
            continue
        buf.append(c)
        i += 1
    flush()
    for n, (part, left, right) in enumerate(items):
        if left and n > 0 and isinstance(items[n - 1][0], str):
            items[n - 1][0] = items[n - 1][0].rstrip()
        if right and n + 1 < len(items) and isinstance(items[n + 1][0], str):
            items[n + 1][0] = items[n + 1][0].lstrip()
        del part
    return [item[0] for item in items if item[0] != ""]


Evaluate = Callable[[str, dict[str, Any]], Any]


def render(parts: list[Part], evaluate: Evaluate, as_text: Callable[[Any], str]) -> str:
    out, end = _render(parts, 0, evaluate, as_text, {}, ())
    if end != len(parts):
        raise ExprError(f"%{{{parts[end][0]}}} without its opening directive")
    return out


def _render(
    parts: list[Part],
    i: int,
    evaluate: Evaluate,
    as_text: Callable[[Any], str],
    local: dict[str, Any],
    stops: tuple[str, ...],
) -> tuple[str, int]:
    out: list[str] = []
    while i < len(parts):
        part = parts[i]
        if isinstance(part, str):
            out.append(part)
            i += 1
            continue
        kind = part[0]
        if kind in stops:
            return "".join(out), i
        if kind == "expr":
            out.append(as_text(evaluate(part[1], local)))
            i += 1
        elif kind == "if":
            cond = evaluate(part[1], local)
            if isinstance(cond, Unavailable):
                raise cond.fail()
            if not isinstance(cond, bool):
                raise ExprError(f"%{{ if {part[1]} }} needs a bool, got {cond!r}")
            middle, end = _close(parts, i + 1, "if", "endif", "else")
            if cond:
                text, _ = _render(parts, i + 1, evaluate, as_text, local, ("else", "endif"))
                out.append(text)
            elif middle is not None:
                text, _ = _render(parts, middle + 1, evaluate, as_text, local, ("endif",))
                out.append(text)
            i = end + 1
        elif kind == "for":
            _, key, name, coll_text = part
            coll = evaluate(coll_text, local)
            if isinstance(coll, Unavailable):
                raise coll.fail()
            pairs = list(coll.items()) if isinstance(coll, dict) else list(enumerate(coll or []))
            _, body_end = _close(parts, i + 1, "for", "endfor")
            for k, v in pairs:
                scope = {**local, name: v, **({key: k} if key else {})}
                text, _ = _render(parts, i + 1, evaluate, as_text, scope, ("endfor",))
                out.append(text)
            i = body_end + 1
        else:
            raise ExprError(f"%{{ {kind} }} without its opening directive")
    return "".join(out), i


def _close(parts: list[Part], i: int, opener: str, closer: str, middle: str = "") -> tuple[int | None, int]:
    """The indexes of the `middle` (else) and `closer` directives that belong to the block starting at i."""
    depth = 0
    found: int | None = None
    while i < len(parts):
        kind = parts[i][0] if isinstance(parts[i], tuple) else ""
        if kind == opener:
            depth += 1
        elif kind == closer:
            if depth == 0:
                return found, i
            depth -= 1
        elif kind == middle and depth == 0 and middle:
            found = i
        i += 1
    raise ExprError(f"%{{ {opener} }} without %{{ {closer} }}")
