"""Lines of HCL2 key paths (`source.qemu.deb.disk_size` -> 12), found by a light scan of the text.

python-hcl2 does not report where values are, so error messages find the line of a block or attribute
here. The scan follows braces outside strings; a key it cannot place falls back to its block's line.
"""

from __future__ import annotations

import re

_BLOCK = re.compile(r'^\s*([A-Za-z_][\w-]*)((?:\s+"[^"]*"|\s+[A-Za-z_][\w-]*)*)\s*\{')
_ATTR = re.compile(r'^\s*("[^"]*"|[A-Za-z_][\w-]*)\s*=(?!=)')
_LABEL = re.compile(r'"([^"]*)"|([A-Za-z_][\w-]*)')
_HEREDOC = re.compile(r"<<-?([A-Za-z_]\w*)\s*$")


def _braces(line: str) -> int:
    """Net '{' minus '}' outside string literals."""
    depth = 0
    in_string = False
    i = 0
    while i < len(line):
        c = line[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "#" or line.startswith("//", i):
            break
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        i += 1
    return depth


class HclLines:
    """Collects key paths and their lines over the files of one template, in load order."""

    def __init__(self) -> None:
        self.lines: dict[str, int] = {}
        self._builds = 0

    def scan(self, text: str) -> None:
        stack: list[tuple[str, int, dict[str, int]]] = []  # (path, depth at which it closes, child counters)
        depth = 0
        heredoc: str | None = None
        for number, line in enumerate(text.splitlines(), 1):
            if heredoc is not None:
                if line.strip() == heredoc:
                    heredoc = None
                continue
            parent = stack[-1][0] if stack else ""
            counters = stack[-1][2] if stack else {}
            block = _BLOCK.match(line)
            attr = _ATTR.match(line)
            opened: str | None = None
            if block and not attr:
                opened = self.block_path(parent, block.group(1), block.group(2), counters)
            elif attr:
                name = attr.group(1).strip('"')
                key = f"{parent}.{name}" if parent else name
                if parent in ("locals", ""):
                    key = f"local.{name}" if parent == "locals" else name
                self.lines.setdefault(key, number)
                if line.rstrip().endswith("{"):
                    opened = key
            if opened is not None:
                self.lines.setdefault(opened, number)
            doc = _HEREDOC.search(line)
            if doc:
                heredoc = doc.group(1)
            change = _braces(line)
            if opened is not None and change > 0:
                stack.append((opened, depth, {}))
            depth += change
            while stack and depth <= stack[-1][1]:
                stack.pop()

    def block_path(self, parent: str, kind: str, labels_text: str, counters: dict[str, int]) -> str:
        """The key path of a block opened inside `parent` (counters: its earlier child blocks, by type)."""
        labels = [m.group(1) if m.group(1) is not None else m.group(2) for m in _LABEL.finditer(labels_text)]
        if not parent:
            if kind == "build":
                self._builds += 1
                return f"build[{self._builds - 1}]"
            if kind in ("locals", "variables"):
                return kind
            return ".".join([kind, *labels])
        if parent.startswith("build[") or ".post-processors[" in parent:
            if kind == "source" and labels:
                return f"{parent}.source.{labels[0]}"
            index = counters.get(kind, 0)
            counters[kind] = index + 1
            return f"{parent}.{kind}[{index}]"
        return f"{parent}.{kind}"

    def locate(self, path: str) -> int | None:
        probe = path
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            cut = max(probe.rfind("."), probe.rfind("["))
            if cut <= 0:
                return None
            probe = probe[:cut]
        return None
