"""A small evaluator for the HCL2 expressions Packer templates use.

python-hcl2 hands back expressions as text ("${var.x}") and strings with their quotes ('"a ${var.x}"').
This module evaluates them: references (var, local, path, source, build), literals, lists, objects,
indexing, arithmetic, comparisons, the conditional operator and a set of Packer's functions.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class ExprError(ValueError):
    """An expression that cannot be evaluated; the message says which part."""


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<str>")
    | (?P<ident>[A-Za-z_][A-Za-z0-9_-]*)
    | (?P<op>==|!=|<=|>=|&&|\|\||\.\.\.|[-+*/%<>!?:.,()\[\]{}=])
    )""",
    re.VERBOSE,
)
_ESC = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def template_parts(body: str, escapes: bool = True) -> list[str | tuple[str]]:
    """Split a string template body into literal text and ("expr",) interpolations.

    Quoted strings read backslash escapes; heredocs (escapes=False) do not, as in HCL."""
    parts: list[str | tuple[str]] = []
    buf: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if escapes and c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in _ESC:
                buf.append(_ESC[nxt])
                i += 2
                continue
            if nxt in "uU":
                width = 4 if nxt == "u" else 8
                try:
                    buf.append(chr(int(body[i + 2 : i + 2 + width], 16)))
                except ValueError:
                    raise ExprError(f"bad escape in {body!r}") from None
                i += 2 + width
                continue
            raise ExprError(f"unknown escape \\{nxt} in {body!r}")
        if body.startswith("$${", i) or body.startswith("%%{", i):
            buf.append(body[i + 1 : i + 3])
            i += 3
            continue
        if body.startswith("%{", i):
            raise ExprError("template directives (%{ ... }) are not supported by vmbake")
        if body.startswith("${", i):
            end = _matching_brace(body, i + 2)
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append((body[i + 2 : end].strip().lstrip("~").rstrip("~").strip(),))
            i = end + 1
            continue
        buf.append(c)
        i += 1
    if buf:
        parts.append("".join(buf))
    return parts


def _matching_brace(text: str, start: int) -> int:
    depth = 1
    i = start
    while i < len(text):
        c = text[i]
        if c == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ExprError("unclosed '${' interpolation")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if value is None:
        raise ExprError("null value in a string template")
    if isinstance(value, list | dict):
        raise ExprError("a list or map cannot be used inside a string")
    return str(value)


def _format(fmt: str, *args: Any) -> str:
    spec = re.sub(r"%[vq]", "%s", fmt)
    try:
        return spec % tuple(args)
    except (TypeError, ValueError) as exc:
        raise ExprError(f"format: {exc}") from None


def _lookup(mapping: Any, key: Any, *default: Any) -> Any:
    if not isinstance(mapping, dict):
        raise ExprError("lookup wants a map")
    if key in mapping:
        return mapping[key]
    if default:
        return default[0]
    raise ExprError(f"lookup: no key {key!r}")


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "upper": lambda s: str(s).upper(),
    "lower": lambda s: str(s).lower(),
    "title": lambda s: str(s).title(),
    "trimspace": lambda s: str(s).strip(),
    "replace": lambda s, old, new: str(s).replace(str(old), str(new)),
    "join": lambda sep, items: str(sep).join(_text(x) for x in items),
    "split": lambda sep, s: str(s).split(str(sep)),
    "concat": lambda *lists: [x for part in lists for x in part],
    "format": _format,
    "length": lambda x: len(x),
    "element": lambda items, i: items[int(i) % len(items)],
    "lookup": _lookup,
    "coalesce": lambda *xs: next((x for x in xs if x not in (None, "")), None),
    "min": lambda *xs: min(xs),
    "max": lambda *xs: max(xs),
    "tostring": _text,
    "tonumber": lambda s: float(s) if "." in str(s) else int(s),
    "abspath": lambda p: str(Path(str(p)).absolute()),
    "basename": lambda p: os.path.basename(str(p)),
    "dirname": lambda p: os.path.dirname(str(p)),
    "file": lambda p: Path(str(p)).read_text(encoding="utf-8"),
    "timestamp": lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "uuidv4": lambda: str(uuid.uuid4()),
    "jsonencode": lambda v: json.dumps(v, separators=(",", ":")),
}


class Evaluator:
    """Evaluates one expression against a scope of top-level names (var, local, path, source, build)."""

    def __init__(self, scope: Mapping[str, Any]) -> None:
        self.scope = scope

    def template(self, body: str, escapes: bool = True) -> Any:
        """A string template body (without quotes); a lone interpolation keeps its value's type."""
        parts = template_parts(body, escapes)
        if len(parts) == 1 and isinstance(parts[0], tuple):
            return self.expression(parts[0][0])
        return "".join(p if isinstance(p, str) else _text(self.expression(p[0])) for p in parts)

    def expression(self, text: str) -> Any:
        self.text = text
        self.tokens = self._lex(text)
        self.pos = 0
        value = self._conditional()
        if self.pos != len(self.tokens):
            raise ExprError(f"unexpected {self.tokens[self.pos][1]!r} in expression {text!r}")
        return value

    def _lex(self, text: str) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        i = 0
        while i < len(text):
            if not text[i:].strip():
                break
            m = _TOKEN.match(text, i)
            if not m:
                raise ExprError(f"cannot read {text[i:].strip()[:20]!r} in expression {text!r}")
            kind = m.lastgroup or ""
            if kind == "str":
                start = m.end()
                j = start
                while j < len(text) and text[j] != '"':
                    if text[j] == "\\":
                        j += 1
                    elif text.startswith("${", j):
                        j = _matching_brace(text, j + 2)
                    j += 1
                if j >= len(text):
                    raise ExprError(f"unterminated string in expression {text!r}")
                out.append(("str", text[start:j]))
                i = j + 1
                continue
            out.append((kind, m.group(kind)))
            i = m.end()
        return out

    def _peek(self, value: str | None = None) -> bool:
        return self.pos < len(self.tokens) and (value is None or self.tokens[self.pos] == ("op", value))

    def _take(self, value: str) -> None:
        if not self._peek(value):
            got = self.tokens[self.pos][1] if self.pos < len(self.tokens) else "the end"
            raise ExprError(f"expected {value!r}, got {got!r} in expression {self.text!r}")
        self.pos += 1

    def _conditional(self) -> Any:
        cond = self._binary(0)
        if self._peek("?"):
            self.pos += 1
            yes = self._conditional()
            self._take(":")
            no = self._conditional()
            return yes if cond else no
        return cond

    _LEVELS = (("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="), ("+", "-"), ("*", "/", "%"))

    def _binary(self, level: int) -> Any:
        if level == len(self._LEVELS):
            return self._unary()
        left = self._binary(level + 1)
        while (
            self.pos < len(self.tokens)
            and self.tokens[self.pos][0] == "op"
            and self.tokens[self.pos][1] in self._LEVELS[level]
        ):
            op = self.tokens[self.pos][1]
            self.pos += 1
            right = self._binary(level + 1)
            left = self._apply(op, left, right)
        return left

    def _apply(self, op: str, a: Any, b: Any) -> Any:
        try:
            result: Any = {
                "||": lambda: a or b,
                "&&": lambda: a and b,
                "==": lambda: a == b,
                "!=": lambda: a != b,
                "<": lambda: a < b,
                ">": lambda: a > b,
                "<=": lambda: a <= b,
                ">=": lambda: a >= b,
                "+": lambda: a + b,
                "-": lambda: a - b,
                "*": lambda: a * b,
                "/": lambda: a / b,
                "%": lambda: a % b,
            }[op]()
        except (TypeError, ZeroDivisionError) as exc:
            raise ExprError(f"cannot apply {op!r} to {a!r} and {b!r}: {exc}") from None
        return result

    def _unary(self) -> Any:
        if self._peek("-"):
            self.pos += 1
            value = self._unary()
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ExprError(f"cannot negate {value!r} in {self.text!r}")
            return -value
        if self._peek("!"):
            self.pos += 1
            return not self._unary()
        return self._postfix(self._primary())

    def _postfix(self, value: Any) -> Any:
        while True:
            if self._peek("["):
                self.pos += 1
                index = self._conditional()
                self._take("]")
                try:
                    value = value[index if isinstance(value, dict) else int(index)]
                except (KeyError, IndexError, TypeError, ValueError):
                    raise ExprError(f"no element [{index!r}] in {self.text!r}") from None
            elif (
                self._peek(".")
                and self.pos + 1 < len(self.tokens)
                and self.tokens[self.pos + 1][0] == "ident"
            ):
                name = self.tokens[self.pos + 1][1]
                self.pos += 2
                if not isinstance(value, dict) or name not in value:
                    raise ExprError(f"no attribute {name!r} in {self.text!r}")
                value = value[name]
            else:
                return value

    def _primary(self) -> Any:
        if self.pos >= len(self.tokens):
            raise ExprError(f"expression {self.text!r} ends too early")
        kind, tok = self.tokens[self.pos]
        self.pos += 1
        if kind == "num":
            return float(tok) if any(c in tok for c in ".eE") else int(tok)
        if kind == "str":
            return self.__class__(self.scope).template(tok)
        if kind == "op" and tok == "(":
            value = self._conditional()
            self._take(")")
            return value
        if kind == "op" and tok == "[":
            items = []
            while not self._peek("]"):
                items.append(self._conditional())
                if not self._peek("]"):
                    self._take(",")
            self._take("]")
            return items
        if kind == "op" and tok == "{":
            obj: dict[str, Any] = {}
            while not self._peek("}"):
                if self.pos >= len(self.tokens):
                    raise ExprError(f"unclosed '{{' in expression {self.text!r}")
                key_kind, key_tok = self.tokens[self.pos]
                ahead = self.tokens[self.pos + 1] if self.pos + 1 < len(self.tokens) else ("", "")
                if key_kind == "ident" and ahead in (("op", "="), ("op", ":")):
                    key = key_tok
                    self.pos += 1
                else:
                    key = _text(self._conditional())
                if self._peek("="):
                    self.pos += 1
                else:
                    self._take(":")
                obj[key] = self._conditional()
                if self._peek(","):
                    self.pos += 1
            self._take("}")
            return obj
        if kind == "ident":
            if tok in ("true", "false"):
                return tok == "true"
            if tok == "null":
                return None
            if self._peek("("):
                return self._call(tok)
            if tok not in self.scope:
                raise ExprError(
                    f"unknown name {tok!r} in {self.text!r} (known: {', '.join(sorted(self.scope))})"
                )
            root = self.scope[tok]
            if isinstance(root, dict) and self._peek(".") and self.pos + 1 < len(self.tokens):
                attr = self.tokens[self.pos + 1][1]
                if attr not in root:
                    known = ", ".join(sorted(root)) or "none"
                    raise ExprError(f"{tok}.{attr} is not defined (defined {tok} names: {known})")
            return root
        raise ExprError(f"unexpected {tok!r} in expression {self.text!r}")

    def _call(self, name: str) -> Any:
        self._take("(")
        args = []
        while not self._peek(")"):
            args.append(self._conditional())
            if self._peek("..."):
                self.pos += 1
                args.extend(args.pop())
            if not self._peek(")"):
                self._take(",")
        self._take(")")
        fn = FUNCTIONS.get(name)
        if fn is None:
            raise ExprError(f"function {name!r} is not supported (supported: {', '.join(sorted(FUNCTIONS))})")
        try:
            return fn(*args)
        except ExprError:
            raise
        except Exception as exc:
            raise ExprError(f"{name}(): {exc}") from None
