"""Packer's JSON template language: Go text/template actions such as {{ user `x` }} and {{ .HTTPIP }}.

Templates are rendered twice. At load time (`render`) user variables and functions are filled in, while
actions that read a run-time field (`{{ .HTTPIP }}`, `{{ .Path }}`) or the `build` function are kept
verbatim. During the build, `render_runtime` fills those in from the values the steps found.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vmbake.errors import VmbakeError
from vmbake.template.gotime import RFC3339, go_format

INIT_TIME = datetime.now(UTC)  # Packer renders every timestamp of a run from one instant


class TemplateSyntaxError(ValueError):
    """An action that cannot be parsed or evaluated; the message says what and where."""


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
    undefined: list[str] = field(default_factory=list)  # user variables asked for but not defined


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\\n]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<field>\.[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*|\.(?![A-Za-z_]))
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<punct>[|()])
    | (?P<var>\$[A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
_DEFERRED_FUNCS = {"build"}
_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "\\": "\\",
    '"': '"',
    "'": "'",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "0": "\0",
}


def _unquote(text: str) -> str:
    body = text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[nxt]
            digits = body[i + 2 : i + 2 + width]
            try:
                out.append(chr(int(digits, 16)))
            except ValueError:
                raise TemplateSyntaxError(f"bad escape \\{nxt}{digits} in string {text}") from None
            i += 2 + width
            continue
        if nxt not in _ESCAPES:
            raise TemplateSyntaxError(f"unknown escape \\{nxt} in string {text}")
        out.append(_ESCAPES[nxt])
        i += 2
    return "".join(out)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str


def _lex(action: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(action):
        if action[pos:].strip() == "":
            break
        m = _TOKEN.match(action, pos)
        if not m or m.end() == pos:
            rest = action[pos:].strip()
            raise TemplateSyntaxError(f"unexpected {rest[:20]!r} in {{{{{action}}}}}")
        kind = m.lastgroup or ""
        tokens.append(_Tok(kind, m.group(kind)))
        pos = m.end()
    return tokens


def _find_close(text: str, start: int) -> int:
    """Index of the `}}` that ends the action opened before `start`, skipping quoted strings."""
    i = start
    while i < len(text):
        c = text[i]
        if c == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c == "`":
            end = text.find("`", i + 1)
            i = len(text) if end < 0 else end
        elif text.startswith("}}", i):
            return i
        i += 1
    raise TemplateSyntaxError("unclosed action: '{{' without a matching '}}'")


def _deferred(tokens: list[_Tok], ctx: RenderContext) -> bool:
    for tok in tokens:
        if tok.kind == "field" and ctx.fields is None:
            return True
        if tok.kind == "ident":
            if tok.text in _DEFERRED_FUNCS and ctx.fields is None:
                return True
            if tok.text == "build_name" and ctx.build_name is None:
                return True
            if tok.text == "build_type" and ctx.build_type is None:
                return True
            if tok.text == "source_name" and ctx.source_name is None:
                return True
    return False


def render(text: str, ctx: RenderContext) -> str:
    """`text` with every action evaluated, except those that must wait for the build (kept verbatim)."""
    if "{{" not in text:
        return text
    out: list[str] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            out.append(text[pos:])
            break
        literal = text[pos:start]
        inner_start = start + 2
        if text.startswith("- ", inner_start) or text.startswith("-\t", inner_start):
            literal = literal.rstrip()
            inner_start += 1
        out.append(literal)
        close = _find_close(text, inner_start)
        inner = text[inner_start:close]
        end = close + 2
        trim_after = inner.endswith((" -", "\t-"))
        if trim_after:
            inner = inner[:-1]
        stripped = inner.strip()
        if stripped.startswith("/*"):
            if not stripped.endswith("*/"):
                raise TemplateSyntaxError("unclosed comment in {{/* ... */}}")
        else:
            tokens = _lex(inner)
            if not tokens:
                raise TemplateSyntaxError("empty action {{}}")
            if _deferred(tokens, ctx):
                out.append(text[start:end])
            else:
                out.append(_to_text(_pipeline(tokens, ctx, inner)))
        pos = end
        if trim_after:
            while pos < len(text) and text[pos].isspace():
                pos += 1
    return "".join(out)


def _to_text(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_to_text(v) for v in value) + "]"
    return str(value)


def _pipeline(tokens: list[_Tok], ctx: RenderContext, source: str) -> Any:
    if tokens[0].kind == "ident" and tokens[0].text in _KEYWORDS:
        raise TemplateSyntaxError(
            f"{{{{{source.strip()}}}}}: '{tokens[0].text}' blocks are not supported by vmbake"
        )
    commands: list[list[_Tok]] = [[]]
    depth = 0
    for tok in tokens:
        if tok.kind == "punct" and tok.text == "|" and depth == 0:
            commands.append([])
            continue
        if tok.kind == "punct":
            depth += 1 if tok.text == "(" else -1 if tok.text == ")" else 0
            if depth < 0:
                raise TemplateSyntaxError(f"unbalanced ')' in {{{{{source.strip()}}}}}")
        commands[-1].append(tok)
    if depth != 0:
        raise TemplateSyntaxError(f"unbalanced '(' in {{{{{source.strip()}}}}}")
    if any(not c for c in commands):
        raise TemplateSyntaxError(f"missing command around '|' in {{{{{source.strip()}}}}}")
    value: Any = _NOTHING
    for command in commands:
        value = _command(command, ctx, source, value)
    return value


_NOTHING = object()


def _operands(tokens: list[_Tok], ctx: RenderContext, source: str) -> list[tuple[_Tok, Any]]:
    """Split a command into operands, evaluating parenthesised pipelines."""
    items: list[tuple[_Tok, Any]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind == "punct" and tok.text == "(":
            depth = 1
            j = i + 1
            while depth:
                depth += {"(": 1, ")": -1}.get(tokens[j].text, 0) if tokens[j].kind == "punct" else 0
                j += 1
            items.append((_Tok("value", ""), _pipeline(tokens[i + 1 : j - 1], ctx, source)))
            i = j
            continue
        items.append((tok, _NOTHING))
        i += 1
    return items


def _operand_value(tok: _Tok, value: Any, ctx: RenderContext, source: str) -> Any:
    if value is not _NOTHING:
        return value
    if tok.kind == "str":
        return _unquote(tok.text)
    if tok.kind == "raw":
        return tok.text[1:-1]
    if tok.kind == "num":
        return float(tok.text) if "." in tok.text else int(tok.text)
    if tok.kind == "field":
        return _field(tok.text, ctx)
    if tok.kind == "ident" and tok.text in ("true", "false"):
        return tok.text == "true"
    if tok.kind == "ident" and tok.text == "nil":
        return None
    if tok.kind == "ident":
        return _call(tok.text, [], ctx, source)
    raise TemplateSyntaxError(
        f"{{{{{source.strip()}}}}}: template variables such as {tok.text} are not supported"
    )


def _field(name: str, ctx: RenderContext) -> Any:
    fields = ctx.fields or {}
    if name == ".":
        return ""
    key = name[1:]
    if key not in fields:
        known = ", ".join("." + k for k in sorted(fields)) or "none"
        raise TemplateSyntaxError(f"{{{{ {name} }}}} is not available here (available: {known})")
    return fields[key]


def _command(tokens: list[_Tok], ctx: RenderContext, source: str, piped: Any) -> Any:
    items = _operands(tokens, ctx, source)
    head, head_value = items[0]
    if head.kind == "ident" and head_value is _NOTHING and head.text not in ("true", "false", "nil"):
        args = [_operand_value(t, v, ctx, source) for t, v in items[1:]]
        if piped is not _NOTHING:
            args.append(piped)
        return _call(head.text, args, ctx, source)
    if len(items) > 1 or piped is not _NOTHING:
        raise TemplateSyntaxError(f"{{{{{source.strip()}}}}}: only a function can take arguments")
    return _operand_value(head, head_value, ctx, source)


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
        value = {"build_name": ctx.build_name, "build_type": ctx.build_type, "source_name": ctx.source_name}[
            name
        ]
        return value or ""

    return call


def _template_dir(ctx: RenderContext, args: list[Any]) -> Any:
    _want("template_dir", args, 0)
    return ctx.template_dir


def _build(ctx: RenderContext, args: list[Any]) -> Any:
    _want("build", args, 1)
    return _field("." + str(args[0]), ctx)


def _printf(ctx: RenderContext, args: list[Any]) -> Any:
    if not args:
        raise TemplateSyntaxError("function 'printf' needs a format")
    fmt = re.sub(r"%v", "%s", str(args[0]))
    try:
        return fmt % tuple(args[1:])
    except (TypeError, ValueError, KeyError) as exc:
        raise TemplateSyntaxError(f"printf: {exc}") from None


FUNCTIONS: dict[str, Callable[[RenderContext, list[Any]], Any]] = {
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
    "printf": _printf,
}


def _call(name: str, args: list[Any], ctx: RenderContext, source: str) -> Any:
    fn = FUNCTIONS.get(name)
    if fn is None:
        known = ", ".join(sorted(k for k in FUNCTIONS if k != "source_name"))
        raise TemplateSyntaxError(f"function {name!r} is not defined (known functions: {known})")
    return fn(ctx, args)


def has_runtime(text: str) -> bool:
    """True when `text` still holds actions for the build to fill in."""
    return "{{" in text


def render_runtime(text: str, values: Mapping[str, str]) -> str:
    """Fill the run-time placeholders ({{ .HTTPIP }}, {{ .Path }}, {{ build `X` }} ...) of a loaded value.

    `values` maps field names without the dot (HTTPIP, HTTPPort, Name, SSHPublicKey, ...) to their text.
    Raises VmbakeError naming the placeholder when a value is missing."""
    ctx = RenderContext(
        fields=values,
        build_name=values.get("BuildName", ""),
        build_type=values.get("BuilderType", ""),
        source_name=values.get("SourceName", ""),
    )
    try:
        return render(text, ctx)
    except TemplateSyntaxError as exc:
        raise VmbakeError(f"cannot fill in {text!r}: {exc}", hint="check the template placeholders") from None
