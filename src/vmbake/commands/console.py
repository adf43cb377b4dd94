"""`vmbake console [TEMPLATE]`: evaluate expressions against a template, as `packer console` does.

Each line read (from stdin, or typed at the `> ` prompt) is one expression. For an HCL2 template it is an
HCL2 expression over `var.*`, `local.*` and `path.*` with the functions vmbake knows; for a JSON template it
is Go template text such as `{{user "x"}}`. Without a TEMPLATE, HCL2 expressions see no variables.
Values print as Packer prints them. Piped input gets every line's result, where Packer prints only the
last one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from vmbake.errors import VmbakeError
from vmbake.template import load_template, resolve_template_path
from vmbake.template.gotemplate import RenderContext, TemplateSyntaxError, render
from vmbake.template.hcl_expr import Evaluator, ExprError
from vmbake.template.variables import collect_inputs


def hcl_scope(path: Path | None, vars: Mapping[str, str], var_files: Sequence[Path]) -> dict[str, Any]:
    """var, local, data and path of an HCL2 template (its builds are not needed, so not checked)."""
    from vmbake.template.hcl_loader import template_scope

    if path is None:
        return {"var": {}, "local": {}, "path": {"root": os.getcwd(), "cwd": os.getcwd()}}
    return template_scope(path, collect_inputs(dict(vars), list(var_files)))


def show(value: Any, nested: bool = False) -> str:
    """A value as Packer's console prints it: a string bare (quoted inside a list or map), lists and
    maps one element a line with sorted keys."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value) if nested else value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        rows = [_indent(show(v, True)) + ",\n" for v in value]
        return "[" + ("\n" if rows else "") + "".join(rows) + "]"
    if isinstance(value, dict):
        rows = [_indent(f"{json.dumps(str(k))} = {show(value[k], True)}") + "\n" for k in sorted(value)]
        return "{" + ("\n" if rows else "") + "".join(rows) + "}"
    return str(value)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.split("\n"))


class Console:
    """Evaluates one line at a time against a loaded template."""

    def __init__(self, template: str | None, vars: Mapping[str, str], var_files: Sequence[Path]) -> None:
        self.json = False
        self.scope: dict[str, Any] = {}
        self.context = RenderContext()
        path = resolve_template_path(template) if template else None
        if (
            path is not None
            and path.is_file()
            and path.suffix == ".json"
            and not path.name.endswith(".pkr.json")
        ):
            loaded = load_template(path, vars=vars, var_files=var_files)
            self.json = True
            self.context = RenderContext(user=loaded.values, template_dir=str(loaded.directory))
        else:
            if (
                path is not None
                and path.is_dir()
                and not (any(path.glob("*.pkr.hcl")) or any(path.glob("*.pkr.json")))
            ):
                jsons = sorted(path.glob("*.json"))
                raise VmbakeError(f"no *.pkr.hcl file in {path}", hint=f"name the JSON file: {jsons[:1]}")
            self.scope = hcl_scope(path, vars, var_files)

    def evaluate(self, line: str) -> str:
        if self.json:
            try:
                return render(line, self.context)
            except (TemplateSyntaxError, VmbakeError) as exc:
                raise VmbakeError(str(exc), hint='write Go template text, e.g. {{user "name"}}') from None
        try:
            return show(Evaluator(self.scope).expression(line))
        except ExprError as exc:
            raise VmbakeError(str(exc), hint="write an HCL2 expression, e.g. var.name") from None


def _typed() -> Iterator[str]:
    """Lines typed at the `> ` prompt, with line editing and history."""
    try:
        import readline  # noqa: F401  (input() then edits lines and keeps a history)
    except ImportError:
        pass
    while True:
        try:
            yield input("> ")
        except EOFError:
            return


def run_console(console: Console, lines: Iterable[str] | None, out: IO[str], err: IO[str]) -> int:
    """Evaluate each line (None: the lines typed at a prompt); an error is printed and the console
    goes on, and the status is 1 at the end."""
    status = 0
    for raw in _typed() if lines is None else lines:
        line = raw.strip()
        if line in ("exit", "quit"):
            break
        if not line:
            continue
        try:
            out.write(console.evaluate(line) + "\n")
        except VmbakeError as exc:
            err.write(f"Error: {exc.message}\n")
            status = 1
        out.flush()
    return status
