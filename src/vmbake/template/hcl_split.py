"""A large HCL2 file cut into runs of whole top-level blocks, so python-hcl2 parses one run at a time.

python-hcl2 builds a lark parse tree of the whole text before it gives anything back, and that tree takes
about a hundred bytes of memory per byte of template (a 1 MB file peaked near 180 MB). Top-level blocks are
independent in HCL, so parsing them in runs of about `RUN_BYTES` gives the same result while the peak
follows the size of one run, not of the file. One top-level block larger than `MAX_BLOCK_BYTES` is refused:
no real template has one (a long script belongs in a file that `script`/`scripts` names), and parsing it
would cost hundreds of megabytes.

The cut is found by a light lexical scan that skips strings (with `${ }` / `%{ }` inside them), heredocs
and comments: a cut falls on a newline outside every bracket, before a line that starts a new item (a name).
If the scan is wrong on some odd text, the run fails to parse and the error names its line, as a whole-file
parse would.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

RUN_BYTES = 64 * 1024
MAX_BLOCK_BYTES = 1024 * 1024

_HEREDOC = re.compile(r"<<-?([A-Za-z_][\w-]*)[ \t]*\r?\n")
_ITEM_START = re.compile(r"[ \t]*[A-Za-z_]")


@dataclass(frozen=True)
class Run:
    start: int  # offset of the run in the text
    end: int
    line: int  # 1-based line on which the run starts


@dataclass(frozen=True)
class TooLarge:
    line: int
    size: int


def item_starts(text: str) -> list[int]:
    """Offsets at which a top-level item (block or attribute) may start, after the first one."""
    starts: list[int] = []
    stack: list[int] = [0]  # bracket depth of each code context; -1 marks a quoted string
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if stack[-1] < 0:  # inside a quoted string
            if c == "\\":
                i += 2
                continue
            if text.startswith(("$${", "%%{"), i):
                i += 3
                continue
            if text.startswith(("${", "%{"), i):
                stack.append(0)
                i += 2
                continue
            if c == '"':
                stack.pop()
            i += 1
            continue
        if c == '"':
            stack.append(-1)
        elif c in "([{":
            stack[-1] += 1
        elif c in ")]}":
            if stack[-1] == 0 and len(stack) > 1:
                stack.pop()  # the end of an interpolation: back in its string
            else:
                stack[-1] -= 1
        elif c == "#" or text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        elif c == "<" and (m := _HEREDOC.match(text, i)):
            closing = re.compile(rf"^[ \t]*{re.escape(m.group(1))}[ \t]*$", re.M).search(text, m.end())
            i = n if closing is None else closing.end()
            continue
        elif c == "\n" and stack == [0] and _ITEM_START.match(text, i + 1):
            starts.append(i + 1)
        i += 1
    return starts


def runs(text: str) -> tuple[list[Run], TooLarge | None]:
    """The text as runs of whole items of about RUN_BYTES each, and the first item over MAX_BLOCK_BYTES."""
    if len(text) <= RUN_BYTES:
        return [Run(0, len(text), 1)], None
    bounds = [0, *item_starts(text), len(text)]
    too_large = None
    for a, b in itertools.pairwise(bounds):
        if b - a > MAX_BLOCK_BYTES:
            too_large = TooLarge(text.count("\n", 0, a) + 1, b - a)
            break
    found: list[Run] = []
    start, line = 0, 1
    for cut in bounds[1:]:
        if cut - start >= RUN_BYTES or cut == len(text):
            found.append(Run(start, cut, line))
            line += text.count("\n", start, cut)
            start = cut
    return found, too_large
