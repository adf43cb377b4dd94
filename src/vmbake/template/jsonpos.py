"""A small JSON parser that remembers the line of every key path, for error messages.

`parse(text)` returns the decoded value and a map from key paths (`builders[0].disk_size`) to line numbers.
Decoding is strict JSON, as Go's encoding/json reads Packer templates.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from vmbake.errors import Problem

_WS = re.compile(r"[ \t\r\n]*")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"')
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")


class JsonSyntaxError(ValueError):
    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"{message} at line {line}, column {column}")
        self.line = line
        self.column = column
        self.reason = message


def syntax_problem(name: str, exc: JsonSyntaxError | RecursionError) -> Problem:
    """The problem a JSON file that does not parse is reported as, for the template loaders."""
    if isinstance(exc, RecursionError):
        return Problem(name, "", "invalid JSON: nested too deeply")
    return Problem(
        name,
        "",
        f"invalid JSON: {exc.reason} (column {exc.column})",
        "check commas, quotes and brackets near this line",
        exc.line,
    )


def child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: dict[str, int] = {}
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_col(self, pos: int) -> tuple[int, int]:
        lo, hi = 0, len(self._line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._line_starts[mid] <= pos:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1, pos - self._line_starts[lo] + 1

    def fail(self, message: str, pos: int | None = None) -> JsonSyntaxError:
        line, col = self.line_col(self.pos if pos is None else pos)
        return JsonSyntaxError(message, line, col)

    def skip(self) -> None:
        self.pos = _WS.match(self.text, self.pos).end()  # type: ignore[union-attr]

    def value(self, path: str) -> Any:
        self.skip()
        if self.pos >= len(self.text):
            raise self.fail("unexpected end of file")
        c = self.text[self.pos]
        if c == "{":
            return self.obj(path)
        if c == "[":
            return self.arr(path)
        if c == '"':
            return self.string()
        for word, val in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return val
        m = _NUMBER.match(self.text, self.pos)
        if m:
            raw = m.group(0)
            # Go's encoding/json reads every number of a template as a float64 and refuses one beyond its
            # range ("cannot unmarshal number ... into Go value of type float64"); 310 digits are beyond it.
            whole = re.fullmatch(r"-?\d+", raw)
            if (whole and len(raw) > 310) or (not whole and math.isinf(float(raw))):
                raise self.fail(f"number {raw[:20]}{'...' if len(raw) > 20 else ''} is out of range")
            self.pos = m.end()
            return int(raw) if whole else float(raw)
        raise self.fail(f"unexpected character {c!r}")

    def string(self) -> str:
        m = _STRING.match(self.text, self.pos)
        if not m:
            raise self.fail("invalid string (unterminated, a raw control character or a bad escape)")
        self.pos = m.end()
        result: str = json.loads(m.group(0))
        return result

    def obj(self, path: str) -> dict[str, Any]:
        self.pos += 1
        out: dict[str, Any] = {}
        self.skip()
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return out
        while True:
            self.skip()
            if not self.text.startswith('"', self.pos):
                raise self.fail("expected a quoted key")
            key_pos = self.pos
            key = self.string()
            sub = child_path(path, key)
            self.lines.setdefault(sub, self.line_col(key_pos)[0])
            self.skip()
            if not self.text.startswith(":", self.pos):
                raise self.fail(f"expected ':' after key {key!r}")
            self.pos += 1
            out[key] = self.value(sub)
            self.skip()
            if self.text.startswith(",", self.pos):
                self.pos += 1
                continue
            if self.text.startswith("}", self.pos):
                self.pos += 1
                return out
            raise self.fail("expected ',' or '}' (a missing comma?)")

    def arr(self, path: str) -> list[Any]:
        self.pos += 1
        out: list[Any] = []
        self.skip()
        if self.text.startswith("]", self.pos):
            self.pos += 1
            return out
        while True:
            self.skip()
            sub = child_path(path, len(out))
            self.lines.setdefault(sub, self.line_col(self.pos)[0])
            out.append(self.value(sub))
            self.skip()
            if self.text.startswith(",", self.pos):
                self.pos += 1
                continue
            if self.text.startswith("]", self.pos):
                self.pos += 1
                return out
            raise self.fail("expected ',' or ']' (a missing comma?)")


def parse(text: str) -> tuple[Any, dict[str, int]]:
    """The value in `text` and the line of each key path. Raises JsonSyntaxError with line and column."""
    parser = _Parser(text)
    value = parser.value("")
    parser.skip()
    if parser.pos != len(text):
        raise parser.fail("unexpected text after the end of the JSON value")
    return value, parser.lines


def locator(lines: dict[str, int]) -> Any:
    """A function giving the line of a key path, or of its nearest parent that has one."""

    def locate(path: str) -> int | None:
        probe = path
        while probe:
            if probe in lines:
                return lines[probe]
            cut = max(probe.rfind("."), probe.rfind("["))
            if cut <= 0:
                break
            probe = probe[:cut]
        return lines.get(probe)

    return locate
