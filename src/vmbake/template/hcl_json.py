""".pkr.json files: HCL2 in JSON syntax, read into the same tree that `parse_hcl` gives for .pkr.hcl.

HCL's JSON syntax has no schema of its own: what a property is depends on where it is. Packer's blocks
say it (hashicorp/hcl json/spec.md): a block type with N labels is an object nested N deep (or an array
of such objects, to keep several blocks in order), and its body is an object, or an array of bodies for
several blocks with the same labels. A string in an attribute is a template (`"${var.x}"`), but a
variable's `type` and a dynamic block's `iterator` are expressions written as strings. A "//" property
is a comment. Numbers, booleans and null are themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vmbake.errors import Problem
from vmbake.template.hcl_lines import HclLines
from vmbake.template.hcl_values import Block, Expr, Tpl
from vmbake.template.jsonpos import JsonSyntaxError, child_path, syntax_problem
from vmbake.template.jsonpos import parse as parse_json

# Nested block types of each body: name -> (labels, the body's own nested block types).
_Schema = dict[str, tuple[int, "_Schema"]]
_DYNAMIC: _Schema = {"dynamic": (1, {"content": (0, {})})}
_VARIABLE: _Schema = {"validation": (0, {})}
_PROVISIONER: _Schema = dict(_DYNAMIC)
_BUILD: _Schema = {
    "source": (1, {}),
    "provisioner": (1, _PROVISIONER),
    "error-cleanup-provisioner": (1, _PROVISIONER),
    "post-processor": (1, _PROVISIONER),
    "post-processors": (0, {"post-processor": (1, _PROVISIONER)}),
    "hcp_packer_registry": (0, {"bucket_labels": (0, {}), "build_labels": (0, {})}),
    **_DYNAMIC,
}
TOP: _Schema = {
    "variable": (1, _VARIABLE),
    "variables": (0, {}),
    "locals": (0, {}),
    "local": (1, {}),
    "source": (2, _DYNAMIC),
    "data": (2, _DYNAMIC),
    "build": (0, _BUILD),
    "packer": (0, {"required_plugins": (0, {})}),
}
# Attributes whose JSON string is an expression, not a template: (block type, attribute).
_EXPRESSIONS = {("variable", "type"), ("dynamic", "iterator")}

Report = Callable[[str, str, str], None]


def parse_hcl_json(text: str, name: str, lines: HclLines) -> tuple[dict[str, Any], list[Problem]]:
    """The tree of one .pkr.json file, and its problems; `lines` learns the line of each key path."""
    try:
        data, json_lines = parse_json(text)
    except (JsonSyntaxError, RecursionError) as exc:
        return {}, [syntax_problem(name, exc)]
    problems: list[Problem] = []
    if not isinstance(data, dict):
        return {}, [Problem(name, "", "a .pkr.json file holds one JSON object", "start the file with '{'", 1)]
    reader = _Reader(name, json_lines, lines, problems)
    tree: dict[str, Any] = {}
    for key, value in data.items():
        if key == "//":
            continue
        if key not in TOP:
            # an attribute at the top level: kept, so that the loader names it as it does in HCL
            tree[key] = reader.value(value, key, key, "")
            continue
        labels, nested = TOP[key]
        tree[key] = reader.blocks(key, labels, nested, value, key)
    return tree, problems


class _Reader:
    def __init__(self, name: str, json_lines: dict[str, int], lines: HclLines, problems: list[Problem]):
        self.name = name
        self.json_lines = json_lines
        self.lines = lines
        self.problems = problems

    def problem(self, json_path: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.name, json_path, message, hint, self._line(json_path)))

    def _line(self, json_path: str) -> int | None:
        probe = json_path
        while probe:
            if probe in self.json_lines:
                return self.json_lines[probe]
            cut = max(probe.rfind("."), probe.rfind("["))
            if cut <= 0:
                return None
            probe = probe[:cut]
        return None

    def place(self, hcl_path: str, json_path: str) -> None:
        line = self._line(json_path)
        if line is not None:
            self.lines.lines.setdefault(hcl_path, line)

    # -- blocks -------------------------------------------------------------------------------------
    def blocks(
        self,
        kind: str,
        labels: int,
        nested: _Schema,
        value: Any,
        json_path: str,
        parent: str = "",
        counters: dict[str, int] | None = None,
    ) -> list[Any]:
        """Every block of one type, as python-hcl2 gives them: a body (Block) when it has no labels, else
        {label: ... {label: Block}}, one item per block, in the file's order."""
        found: list[tuple[list[str], Any, str]] = []
        self._collect(value, labels, [], json_path, found)
        items: list[Any] = []
        for names, body, where in found:
            labels_text = "".join(f' "{n}"' for n in names)
            hcl_path = self.lines.block_path(parent, kind, labels_text, {} if counters is None else counters)
            self.place(hcl_path, where)
            item: Any = self.body(kind, nested, body, where, hcl_path)
            for label in reversed(names):
                item = {label: item}
            items.append(item)
        return items

    def _collect(
        self, value: Any, depth: int, names: list[str], path: str, out: list[tuple[list[str], Any, str]]
    ) -> None:
        if isinstance(value, list):  # several blocks (or bodies) in order
            for i, item in enumerate(value):
                self._collect(item, depth, names, child_path(path, i), out)
            return
        if not isinstance(value, dict):
            self.problem(path, "expected a JSON object (a block)", "see HCL's JSON syntax for blocks")
            return
        if depth == 0:
            out.append((names, value, path))
            return
        for label, inner in value.items():
            if label != "//":
                self._collect(inner, depth - 1, [*names, label], child_path(path, label), out)

    def body(self, kind: str, nested: _Schema, raw: dict[str, Any], json_path: str, hcl_path: str) -> Block:
        out = Block()
        counters: dict[str, int] = {}
        for key, value in raw.items():
            if key == "//":
                continue
            where = child_path(json_path, key)
            if key in nested:
                labels, inner = nested[key]
                blocks = self.blocks(key, labels, inner, value, where, hcl_path, counters)
                out[key] = [*(out.get(key) or []), *blocks]
                continue
            self.place(f"local.{key}" if hcl_path == "locals" else f"{hcl_path}.{key}", where)
            out[key] = self.value(value, where, key, kind)
        return out

    # -- values -------------------------------------------------------------------------------------
    def value(self, value: Any, json_path: str, key: str, kind: str) -> Any:
        if isinstance(value, str):
            if (kind, key) in _EXPRESSIONS:
                return Expr(value)
            # JSON has already taken the backslash escapes out: the template reads the text as it is
            return Tpl(value, heredoc=True)
        if isinstance(value, list):
            return [self.value(v, child_path(json_path, i), key, kind) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.value(v, child_path(json_path, k), k, "") for k, v in value.items()}
        return value
