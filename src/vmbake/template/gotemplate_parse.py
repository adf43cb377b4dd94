"""The parser of Go's text/template language, as Packer's JSON templates use it: a lexer and a tree.

`parse(text)` returns a list of nodes: literal text, actions ({{ pipeline }}), the control structures
`if`/`else if`/`else`, `with` and `range` (with their `else`), `break` and `continue`. Each action node keeps
its exact source text, so that an action that must wait for the build can be written back verbatim, and
so that errors can show it. The grammar and the trim markers (`{{- ` and ` -}}`) are those of Go's
text/template/parse package (Go 1.19, the Go of Debian's Packer 1.6.6).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any


class TemplateSyntaxError(ValueError):
    """An action that cannot be parsed or evaluated; the message says what and where."""


# -- tokens ----------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""(?P<space>\s+)
    | (?P<str>"(?:[^"\\\n]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<char>'(?:[^'\\\n]|\\.[^']*)')
    | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
    | (?P<num>[+-]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+
                    |(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?))
    | (?P<dot>\.)
    | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<declare>:=)
    | (?P<punct>[|(),=])
    """,
    re.VERBOSE,
)
KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
)


@dataclass(frozen=True)
class Tok:
    kind: str
    text: str


def lex(inner: str, source: str) -> list[Tok]:
    """The tokens of the text between an action's delimiters."""
    tokens: list[Tok] = []
    pos = 0
    while pos < len(inner):
        m = _TOKEN.match(inner, pos)
        if not m:
            raise TemplateSyntaxError(f"unexpected {inner[pos : pos + 20]!r} in {source}")
        kind = m.lastgroup or ""
        if kind != "space":
            tokens.append(Tok(kind, m.group(kind)))
        pos = m.end()
    return tokens


# -- the tree --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Field:
    """`.A.B` (names ("A", "B")) or `.` alone (no names): a field of the current dot."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Var:
    """`$x` or `$x.A.B`; `$` alone is the top-level dot."""

    name: str
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ident:
    """A function name."""

    name: str


@dataclass(frozen=True)
class Command:
    args: tuple[Any, ...]  # Literal | Field | Var | Ident | Pipe


@dataclass(frozen=True)
class Pipe:
    decl: tuple[str, ...]  # variables declared (:=) or assigned (=) by this pipeline
    assign: bool
    cmds: tuple[Command, ...]


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Action:
    pipe: Pipe
    source: str


@dataclass(frozen=True)
class Branch:
    """An `if`, `with` or `range` with its body and `else` part; `source` is the whole block.

    `opener`, `else_source` and `end_source` are the texts of its own actions, so that a block whose
    condition waits for the build can be written back with its inside evaluated. With `chained`, the
    else part is one `{{else if}}` Branch that shares this block's `{{end}}`."""

    kind: str
    pipe: Pipe
    body: tuple[Any, ...]
    orelse: tuple[Any, ...]
    source: str
    opener: str = ""
    else_source: str = ""
    end_source: str = ""
    chained: bool = False


@dataclass(frozen=True)
class Jump:
    """`break` or `continue` inside a range."""

    kind: str
    source: str


Node = Text | Action | Branch | Jump


# -- splitting the text into literal text and actions ----------------------------------------------


@dataclass
class _Item:
    start: int  # offset of '{{' in the whole text
    end: int  # offset after '}}'
    tokens: list[Tok] = field(default_factory=list)
    source: str = ""


def _find_close(text: str, start: int) -> int:
    """Index of the `}}` that ends the action opened before `start`, skipping quoted strings."""
    i = start
    while i < len(text):
        c = text[i]
        if c in "\"'":
            i += 1
            while i < len(text) and text[i] != c and text[i] != "\n":
                i += 2 if text[i] == "\\" else 1
        elif c == "`":
            end = text.find("`", i + 1)
            i = len(text) if end < 0 else end
        elif text.startswith("}}", i):
            return i
        i += 1
    snippet = text[start - 2 : start + 30]
    raise TemplateSyntaxError(f"unclosed action: {snippet!r} has no matching '}}}}'")


def _split(text: str) -> list[str | _Item]:
    """Literal text and actions in order, with the trim markers applied to the literal text."""
    parts: list[str | _Item] = []
    pos = 0
    trim_next = False
    while True:
        start = text.find("{{", pos)
        literal = text[pos:] if start < 0 else text[pos:start]
        if trim_next:
            literal = literal.lstrip(" \t\r\n")
        inner_start = start + 2
        trim_left = (
            start >= 0 and text[inner_start : inner_start + 1] == "-" and _space(text, inner_start + 1)
        )
        if trim_left:
            literal = literal.rstrip(" \t\r\n")
            inner_start += 1
        if literal:
            parts.append(literal)
        if start < 0:
            return parts
        close = _find_close(text, inner_start)
        inner_end = close
        trim_next = close - inner_start >= 2 and text[close - 1] == "-" and _space(text, close - 2)
        if trim_next:
            inner_end -= 1
        source = text[start : close + 2]
        inner = text[inner_start:inner_end]
        stripped = inner.strip()
        if stripped.startswith("/*"):
            if not stripped.endswith("*/"):
                raise TemplateSyntaxError(f"unclosed comment in {source}")
        else:
            tokens = lex(inner, source)
            if not tokens:
                raise TemplateSyntaxError(f"missing value for command in {source}")
            parts.append(_Item(start, close + 2, tokens, source))
        pos = close + 2


def _space(text: str, i: int) -> bool:
    return i < len(text) and text[i] in " \t\r\n"


# -- the parser ------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.parts = _split(text)
        self.i = 0

    def parse(self) -> list[Node]:
        nodes, stop = self._list(in_range=False)
        if stop is not None:
            raise TemplateSyntaxError(f"unexpected {stop.source}: no block is open")
        return nodes

    def _list(self, *, in_range: bool) -> tuple[list[Node], _Item | None]:
        """Nodes up to the next `{{else}}`/`{{end}}` (returned as the stop item) or the end of the text."""
        nodes: list[Node] = []
        while self.i < len(self.parts):
            part = self.parts[self.i]
            self.i += 1
            if isinstance(part, str):
                nodes.append(Text(part))
                continue
            head = part.tokens[0]
            word = head.text if head.kind == "ident" and head.text in KEYWORDS else ""
            if word in ("else", "end"):
                return nodes, part
            if word in ("if", "with", "range"):
                nodes.append(self._branch(word, part, in_range=in_range)[0])
            elif word in ("break", "continue"):
                if len(part.tokens) != 1:
                    raise TemplateSyntaxError(f"unexpected {part.tokens[1].text!r} in {part.source}")
                if not in_range:
                    raise TemplateSyntaxError(f"{{{{{word}}}}} outside {{{{range}}}} in {part.source}")
                nodes.append(Jump(word, part.source))
            elif word:
                raise TemplateSyntaxError(
                    f"{{{{{word}}}}} (named templates) is not available in Packer templates: {part.source}"
                )
            else:
                nodes.append(Action(_pipe(part.tokens, part.source, decl_ok=True), part.source))
        return nodes, None

    def _branch(
        self, kind: str, opener: _Item, *, in_range: bool, start: int | None = None
    ) -> tuple[Branch, int]:
        """The block opened by `opener`, and the offset where its {{end}} ends."""
        tokens = opener.tokens[1:]
        if kind == "if" and opener.tokens[0].text == "else":
            tokens = opener.tokens[2:]  # {{else if ...}}
        if not tokens:
            raise TemplateSyntaxError(f"missing value for {kind} in {opener.source}")
        pipe = _pipe(tokens, opener.source, decl_ok=True, range_decl=kind == "range")
        body, stop = self._list(in_range=in_range or kind == "range")
        orelse: list[Node] = []
        end = 0
        else_source = end_source = ""
        chained = False
        if stop is None:
            raise TemplateSyntaxError(f"{opener.source} has no matching {{{{end}}}}")
        if stop.tokens[0].text == "else":
            rest = stop.tokens[1:]
            else_source = stop.source
            if rest and rest[0].kind == "ident" and rest[0].text == "if":
                # {{else if x}} is an {{if}} inside the else part that shares the outer {{end}}.
                inner, end = self._branch("if", stop, in_range=in_range, start=stop.start)
                orelse = [inner]
                stop = None
                chained = True
                end_source = inner.end_source
            elif rest:
                raise TemplateSyntaxError(f"unexpected {rest[0].text!r} in {stop.source}")
            else:
                orelse, stop = self._list(in_range=in_range)
                if stop is None or stop.tokens[0].text != "end":
                    raise TemplateSyntaxError(f"{opener.source} has no matching {{{{end}}}}")
        if stop is not None:
            if len(stop.tokens) != 1:
                raise TemplateSyntaxError(f"unexpected {stop.tokens[1].text!r} in {stop.source}")
            end = stop.end
            end_source = stop.source
        first = opener.start if start is None else start
        block = Branch(kind, pipe, tuple(body), tuple(orelse), self.text[first:end])
        return replace(
            block, opener=opener.source, else_source=else_source, end_source=end_source, chained=chained
        ), end


def _pipe(tokens: list[Tok], source: str, *, decl_ok: bool = False, range_decl: bool = False) -> Pipe:
    decl: tuple[str, ...] = ()
    assign = False
    if decl_ok:
        decl, assign, tokens = _declaration(tokens, source, range_decl)
    commands: list[list[Tok]] = [[]]
    depth = 0
    for tok in tokens:
        if tok.kind == "punct" and tok.text == "|" and depth == 0:
            commands.append([])
            continue
        if tok.kind == "punct" and tok.text in "()":
            depth += 1 if tok.text == "(" else -1
            if depth < 0:
                raise TemplateSyntaxError(f"unexpected right paren in {source}")
        commands[-1].append(tok)
    if depth:
        raise TemplateSyntaxError(f"unclosed left paren in {source}")
    if any(not c for c in commands):
        raise TemplateSyntaxError(f"missing value for command in {source}")
    return Pipe(decl, assign, tuple(_command(c, source) for c in commands))


def _declaration(tokens: list[Tok], source: str, range_decl: bool) -> tuple[tuple[str, ...], bool, list[Tok]]:
    if len(tokens) >= 2 and tokens[0].kind == "var" and "." not in tokens[0].text:
        if tokens[1].kind == "declare" or (tokens[1].kind == "punct" and tokens[1].text == "="):
            return (tokens[0].text,), tokens[1].kind != "declare", tokens[2:]
        pair = range_decl and len(tokens) >= 4 and tokens[1].text == "," and tokens[2].kind == "var"
        if pair and (tokens[3].kind == "declare" or tokens[3].text == "="):
            return (tokens[0].text, tokens[2].text), tokens[3].kind != "declare", tokens[4:]
    return (), False, tokens


def _command(tokens: list[Tok], source: str) -> Command:
    args: list[Any] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind == "punct" and tok.text == "(":
            depth, j = 1, i + 1
            while depth:
                if tokens[j].kind == "punct" and tokens[j].text in "()":
                    depth += 1 if tokens[j].text == "(" else -1
                j += 1
            inner = tokens[i + 1 : j - 1]
            if not inner:
                raise TemplateSyntaxError(f"missing value for parenthesized pipeline in {source}")
            args.append(_pipe(inner, source))
            i = j
            continue
        args.append(_operand(tok, source))
        i += 1
    return Command(tuple(args))


def _operand(tok: Tok, source: str) -> Any:
    if tok.kind == "str":
        return Literal(unquote(tok.text, source))
    if tok.kind == "raw":
        return Literal(tok.text[1:-1])
    if tok.kind == "char":
        text = unquote('"' + tok.text[1:-1].replace('"', '\\"') + '"', source)
        if len(text) != 1:
            raise TemplateSyntaxError(f"malformed character constant {tok.text} in {source}")
        return Literal(ord(text))
    if tok.kind == "num":
        return Literal(number(tok.text, source))
    if tok.kind == "field":
        return Field(tuple(tok.text[1:].split(".")))
    if tok.kind == "dot":
        return Field(())
    if tok.kind == "var":
        name, *names = tok.text.split(".")
        return Var(name, tuple(names))
    if tok.kind == "ident":
        if tok.text in ("true", "false"):
            return Literal(tok.text == "true")
        if tok.text == "nil":
            return Literal(None)
        if tok.text in KEYWORDS:
            raise TemplateSyntaxError(f"unexpected keyword {tok.text!r} in {source}")
        return Ident(tok.text)
    raise TemplateSyntaxError(f"unexpected {tok.text!r} in {source}")


def number(text: str, source: str) -> int | float:
    """A Go number constant: an int unless it is written with a point or an exponent (as Go decides)."""
    body = text.replace("_", "")
    sign = -1 if body.startswith("-") else 1
    digits = body.lstrip("+-")
    try:
        if len(digits) > 400:
            raise ValueError(digits)
        value: int | float
        if digits[:2].lower() in ("0x", "0b", "0o"):
            value = sign * int(digits, 0)
        elif any(c in digits for c in ".eE"):
            value = sign * float(digits)
        elif len(digits) > 1 and digits.startswith("0"):
            value = sign * int(digits, 8)  # Go reads a leading zero as octal
        else:
            value = sign * int(digits)
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            raise ValueError(digits)  # Go: "integer overflow"
        if math.isinf(value):
            raise ValueError(digits)
        return value
    except (ValueError, OverflowError):
        raise TemplateSyntaxError(f"bad number syntax or overflow: {text!r} in {source}") from None


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b"}
_ESCAPES.update({"f": "\f", "v": "\v"})


def unquote(text: str, source: str = "") -> str:
    """The value of a Go interpreted string literal ("...")."""
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
        width = {"x": 2, "u": 4, "U": 8}.get(nxt, 0)
        if width or nxt in "01234567":
            digits = body[i + 2 : i + 2 + width] if width else body[i + 1 : i + 4]
            try:
                out.append(chr(int(digits, 16 if width else 8)))
            except ValueError:
                raise TemplateSyntaxError(f"bad escape \\{nxt} in string {text} in {source}") from None
            i += 2 + width if width else 4
            continue
        if nxt not in _ESCAPES:
            raise TemplateSyntaxError(f"unknown escape \\{nxt} in string {text} in {source}")
        out.append(_ESCAPES[nxt])
        i += 2
    return "".join(out)


def parse(text: str) -> list[Node]:
    """The tree of `text`. Raises TemplateSyntaxError naming the action."""
    return _Parser(text).parse()
