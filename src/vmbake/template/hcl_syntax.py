"""Where an HCL2 syntax error is: line, column and the offending line with a caret under the spot.

python-hcl2's grammar lets a quoted string run across lines, so an unterminated string is found pages later
at the next quote. HCL forbids a newline in a quoted string; `unterminated_string` finds it where it starts,
with a light lexical scan (comments, heredocs, nested `${ }` / `%{ }` are skipped properly). Other errors
come from lark, whose exceptions carry the line and column.
"""

from __future__ import annotations

import re
from typing import Any

_HEREDOC = re.compile(r"<<-?([A-Za-z_][\w-]*)[ \t]*\r?\n")


def excerpt(text: str, line: int, column: int) -> str:
    """The source line and a caret under `column` (both 1-based), indented for a problem list."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return ""
    shown = lines[line - 1].expandtabs(1)
    return f"\n      {line:>4} | {shown}\n           | {' ' * max(column - 1, 0)}^"


def unterminated_string(text: str) -> tuple[int, int] | None:
    """(line, column) of the opening quote of a string that a newline cuts, or None."""
    i = 0
    stack: list[list[Any]] = []  # [brace depth, opening quote] of each open ${ } / %{ } inside a string
    in_string: tuple[int, int] | None = None
    line, col0 = 1, 0  # col0: index where the current line starts
    while i < len(text):
        c = text[i]
        if c == "\n":
            if in_string is not None:
                return in_string
            line, col0 = line + 1, i + 1
            i += 1
            continue
        if in_string is not None:
            if c == "\\":
                i += 2
                continue
            if text.startswith("${", i) or text.startswith("%{", i):
                if text.startswith("$${", i - 1) or text.startswith("%%{", i - 1):
                    i += 2
                    continue
                stack.append([0, in_string])
                in_string = None
                i += 2
                continue
            if c == '"':
                in_string = None
            i += 1
            continue
        if c == "#" or text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            stop = len(text) if end < 0 else end + 2
            line += text.count("\n", i, stop)
            if "\n" in text[i:stop]:
                col0 = text.rfind("\n", i, stop) + 1
            i = stop
            continue
        m = _HEREDOC.match(text, i)
        if m:
            closing = re.compile(rf"^[ \t]*{re.escape(m.group(1))}[ \t]*$", re.M).search(text, m.end())
            stop = len(text) if closing is None else closing.end()
            line += text.count("\n", i, stop)
            col0 = text.rfind("\n", 0, stop) + 1
            i = stop
            continue
        if c == '"':
            in_string = (line, i - col0 + 1)
        elif c == "{" and stack:
            stack[-1][0] += 1
        elif c == "}" and stack:
            if stack[-1][0] == 0:
                in_string = stack.pop()[1]  # back inside the string that holds the interpolation
            else:
                stack[-1][0] -= 1
        i += 1
    return in_string


def describe(exc: Exception, text: str) -> tuple[str, int | None]:
    """A message (with the offending line shown) and the line of a python-hcl2 / lark parse error."""
    cut = unterminated_string(text)
    if cut is not None:
        line, column = cut
        return (
            f"invalid HCL at column {column}: unterminated string (a quoted string must end on its own line; "
            "use \\n or a heredoc for several lines)" + excerpt(text, line, column),
            line,
        )
    at_line = getattr(exc, "line", None)
    at_column = getattr(exc, "column", None)
    original = getattr(exc, "orig_exc", None)  # lark's VisitError: python-hcl2 refused a parsed rule
    if original is not None:
        meta = getattr(getattr(exc, "obj", None), "meta", None)
        at_line, at_column = getattr(meta, "line", None), getattr(meta, "column", None)
        exc = Exception(str(original))
    token = getattr(exc, "token", None)
    expected = sorted(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or [])
    if token is not None:
        shown = str(token).split("\n")[0][:30]
        what = f"unexpected {shown!r}" if shown else "unexpected end of line"
    elif getattr(exc, "char", None) is not None:
        what = f"unexpected character {exc.char!r}"  # type: ignore[attr-defined]
    else:
        what = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if expected:
        names = [e.lower().replace("_", " ") for e in expected if not e.startswith("__")][:6]
        what += " (expected " + ", ".join(names) + ")"
    if isinstance(at_line, int) and at_line > 0 and isinstance(at_column, int) and at_column > 0:
        return f"invalid HCL at column {at_column}: {what}" + excerpt(text, at_line, at_column), at_line
    return f"invalid HCL: {what}", at_line if isinstance(at_line, int) and at_line > 0 else None
