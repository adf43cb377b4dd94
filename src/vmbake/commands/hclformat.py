"""HCL2 formatting on the token level, by the rules of hclwrite (what `packer fmt` runs).

Only whitespace changes: each line is indented two spaces per open bracket level, the spaces between
tokens follow hclwrite's rules (none inside brackets or around dots, one after a comma, one around
operators and braces), and the `=` of neighbouring attribute lines, and their trailing comments, line up
in columns. Comments, blank lines and heredoc bodies are kept as they are; spaces at the end of other
lines go.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vmbake.errors import VmbakeError

# Token kinds. Template pieces: OQUOTE/QLIT/CQUOTE, INTERP ("${"), CONTROL ("%{"), SEQEND (their "}").
IDENT, NUMBER, OQUOTE, QLIT, CQUOTE, INTERP, CONTROL, SEQEND = (
    "ident",
    "number",
    "oquote",
    "qlit",
    "cquote",
    "interp",
    "control",
    "seqend",
)
HEREDOC, COMMENT, NEWLINE, OP = "heredoc", "comment", "newline", "op"
OPENERS = {"{", "[", "("}
CLOSERS = {"}", "]", ")"}


@dataclass
class Token:
    kind: str
    text: str
    spaces: int = 0  # spaces before the token, set by the formatter

    def brackets(self) -> int:
        if self.kind in (INTERP, CONTROL) or (self.kind == OP and self.text in OPENERS):
            return 1
        if self.kind == SEQEND or (self.kind == OP and self.text in CLOSERS):
            return -1
        return 0

    def ends_line(self) -> bool:
        return self.kind == NEWLINE or (self.kind == COMMENT and self.text.endswith("\n"))


class HclSyntaxError(VmbakeError):
    pass


_OPS = ("...", "==", "!=", "<=", ">=", "&&", "||", "=>")
_SINGLE = set("{}[]()=,.:?+-*/%<>!")
_IDENT = re.compile(r"[^\W\d][\w-]*")  # HCL identifiers may hold any Unicode letter
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_HEREDOC = re.compile(r"<<(-?)([A-Za-z_][A-Za-z0-9_-]*)\r?\n")


class _Lexer:
    def __init__(self, text: str, name: str) -> None:
        self.text = text
        self.name = name
        self.i = 0
        self.out: list[Token] = []

    def fail(self, message: str) -> HclSyntaxError:
        line = self.text.count("\n", 0, self.i) + 1
        return HclSyntaxError(f"{self.name}:{line}: {message}", hint="fix the syntax, then run fmt again")

    def tokens(self) -> list[Token]:
        self._expression(stop_at_brace=False)
        if self.i < len(self.text):
            raise self.fail(f"unexpected {self.text[self.i]!r}")
        return self.out

    def _expression(self, stop_at_brace: bool) -> None:
        """Tokens up to the end of text, or (inside ${ }) up to the brace that closes the interpolation."""
        depth = 0
        text = self.text
        while self.i < len(text):
            c = text[self.i]
            if c in " \t\r":
                self.i += 1
            elif c == "\n":
                self.out.append(Token(NEWLINE, "\n"))
                self.i += 1
            elif c == "#" or text.startswith("//", self.i):
                end = text.find("\n", self.i)
                end = len(text) if end < 0 else end + 1
                self.out.append(Token(COMMENT, text[self.i : end]))  # kept verbatim, as hclwrite does
                self.i = end
            elif text.startswith("/*", self.i):
                end = text.find("*/", self.i + 2)
                if end < 0:
                    raise self.fail("unterminated /* comment")
                self.out.append(Token(COMMENT, text[self.i : end + 2]))
                self.i = end + 2
            elif c == '"':
                self._quoted()
            elif text.startswith("<<", self.i) and _HEREDOC.match(text, self.i):
                self._heredoc()
            elif c == "}" and stop_at_brace and depth == 0:
                self.out.append(Token(SEQEND, "}"))
                self.i += 1
                return
            elif m := _NUMBER.match(text, self.i):
                self.out.append(Token(NUMBER, m.group()))
                self.i = m.end()
            elif m := _IDENT.match(text, self.i):
                self.out.append(Token(IDENT, m.group()))
                self.i = m.end()
            else:
                op = next((o for o in _OPS if text.startswith(o, self.i)), c if c in _SINGLE else "")
                if not op:
                    raise self.fail(f"unexpected character {c!r}")
                depth += op in OPENERS
                depth -= op in CLOSERS
                self.out.append(Token(OP, op))
                self.i += len(op)
        if stop_at_brace:
            raise self.fail("unterminated ${ interpolation")

    def _quoted(self) -> None:
        text = self.text
        self.out.append(Token(OQUOTE, '"'))
        self.i += 1
        start = self.i
        while True:
            if self.i >= len(text) or text[self.i] == "\n":
                raise self.fail("unterminated string")
            c = text[self.i]
            if c == "\\":
                self.i += 2
            elif text.startswith(("$${", "%%{"), self.i):
                self.i += 3
            elif text.startswith(("${", "%{"), self.i):
                if self.i > start:
                    self.out.append(Token(QLIT, text[start : self.i]))
                self.out.append(Token(INTERP if c == "$" else CONTROL, text[self.i : self.i + 2]))
                self.i += 2
                if text.startswith("~", self.i):
                    self.out.append(Token(OP, "~"))
                    self.i += 1
                self._expression(stop_at_brace=True)
                start = self.i
            elif c == '"':
                if self.i > start:
                    self.out.append(Token(QLIT, text[start : self.i]))
                self.out.append(Token(CQUOTE, '"'))
                self.i += 1
                return
            else:
                self.i += 1

    def _heredoc(self) -> None:
        """A heredoc is kept verbatim, opener to closing marker, as one token."""
        m = _HEREDOC.match(self.text, self.i)
        assert m is not None
        marker = m.group(2)
        pos = m.end()
        while pos < len(self.text):
            end = self.text.find("\n", pos)
            end = len(self.text) if end < 0 else end
            if self.text[pos:end].strip() == marker:
                self.out.append(Token(HEREDOC, self.text[self.i : end]))
                self.i = end
                return
            pos = end + 1
        raise self.fail(f"heredoc <<{marker} is not closed")


def tokenize(text: str, name: str = "<input>") -> list[Token]:
    return _Lexer(text, name).tokens()


@dataclass
class _Line:
    lead: list[Token]
    assign: list[Token] = field(default_factory=list)
    comment: list[Token] = field(default_factory=list)


def _columns(tokens: list[Token]) -> int:
    # characters, as hclwrite counts them (a non-ASCII letter is one column)
    return sum(t.spaces + len(t.text) for t in tokens if t.kind != NEWLINE)


def _lines(tokens: list[Token]) -> list[_Line]:
    lines: list[_Line] = []
    current: list[Token] = []
    for tok in tokens:
        current.append(tok)
        if tok.ends_line():
            lines.append(_Line(current))
            current = []
    if current:
        lines.append(_Line(current))
    for line in lines:
        if len(line.lead) > 1 and line.lead[-1].kind == COMMENT:
            line.comment = line.lead[-1:]
            line.lead = line.lead[:-1]
        for i, tok in enumerate(line.lead):
            if i > 0 and tok.kind == OP and tok.text == "=":
                # Only a whole expression goes to the "assign" cell; `x = [` opens a multi-line value.
                if sum(t.brackets() for t in line.lead[i:]) == 0:
                    line.assign = line.lead[i:]
                    line.lead = line.lead[:i]
                break
    return lines


def _indent(lines: list[_Line]) -> None:
    stack: list[int] = []
    for line in lines:
        if not line.lead or line.lead[0].kind == NEWLINE:
            if line.lead:
                line.lead[0].spaces = 0
            continue
        net = sum(t.brackets() for t in line.lead + line.assign)
        if net < 0:
            closed = -net
            while closed > 0 and stack:
                if closed >= stack[-1]:
                    closed -= stack.pop()
                else:
                    stack[-1] -= closed
                    closed = 0
        line.lead[0].spaces = 2 * len(stack)
        if net > 0:
            stack.append(net)


_EXPR_END = {IDENT, NUMBER, CQUOTE, HEREDOC}
_NEGATION_BEFORE = {"(", "{", "[", "=", ":", ",", "?", "+", "*", "/", "%", "-"}
_NEGATION_BEFORE |= {"==", "!=", ">", ">=", "<", "<=", "&&", "||", "!"}


def _space_after(tok: Token, before: Token | None, after: Token) -> bool:
    if after.kind == NEWLINE:
        return False
    if tok.kind == IDENT and after.text == "(" and after.kind == OP:
        return False
    if (tok.kind == OP and tok.text == ".") or (after.kind == OP and after.text == "."):
        return False
    if after.kind == OP and after.text in (",", "..."):
        return False
    if tok.kind == OP and tok.text == ",":
        return True
    if tok.kind in (QLIT, OQUOTE) or after.kind in (QLIT, CQUOTE):
        return False  # nothing is added inside a string template
    if tok.kind == SEQEND and after.kind in (INTERP, CONTROL):
        return False
    if tok.kind in (INTERP, CONTROL) and after.kind == OP and after.text == "~":
        return False
    if after.kind == SEQEND and tok.kind == OP and tok.text == "~":
        return False
    if tok.kind == IDENT and tok.text == "in" and before is not None and before.kind == IDENT:
        return True
    if after.kind == OP and after.text == "[" and (tok.kind in (IDENT, NUMBER) or tok.brackets() < 0):
        return False
    if tok.kind == OP and tok.text == "-":
        if before is None or before.kind in (INTERP, CONTROL):
            return False
        return not (before.kind == OP and before.text in _NEGATION_BEFORE)
    if tok.kind == OP and tok.text == "!":
        return False
    if (tok.kind == OP and tok.text == "{") or (after.kind == OP and after.text == "}"):
        return not (tok.text == "{" and tok.kind == OP and after.text == "}" and after.kind == OP)
    if tok.kind in (INTERP, CONTROL) and after.kind == OP and after.text == "{":
        return True
    if tok.kind == OP and tok.text == "}" and after.kind == SEQEND:
        return True
    if tok.brackets() > 0:
        return False
    return after.brackets() >= 0


def _spaces(cell: list[Token], first_spaces: int | None) -> None:
    for i, tok in enumerate(cell):
        if i == 0:
            if first_spaces is not None:
                tok.spaces = first_spaces
            continue
        tok.spaces = 1 if _space_after(cell[i - 1], cell[i - 2] if i > 1 else None, tok) else 0


def _align(lines: list[_Line], cell: str) -> None:
    chain: list[_Line] = []

    def width(line: _Line) -> int:
        return _columns(line.lead) + (_columns(line.assign) if cell == "comment" else 0)

    def close() -> None:
        widest = max((width(ln) for ln in chain), default=0)
        for ln in chain:
            getattr(ln, cell)[0].spaces = widest - width(ln) + 1
        chain.clear()

    for line in lines:
        if getattr(line, cell):
            chain.append(line)
        elif chain:
            close()
    if chain:
        close()


def format_hcl(text: str, name: str = "<input>") -> str:
    """`text` formatted as hclwrite formats it; raises HclSyntaxError on text that cannot be tokenized."""
    lines = _lines(tokenize(text, name))
    _indent(lines)
    for line in lines:
        _spaces(line.lead, None)
        _spaces(line.assign, 1)
        _spaces(line.comment, 1)
    _align(lines, "assign")
    _align(lines, "comment")
    out: list[str] = []
    for line in lines:
        for tok in line.lead + line.assign + line.comment:
            out.append(" " * tok.spaces + tok.text)
    return "".join(out)
