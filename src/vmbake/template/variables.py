"""Variable values from the command line (-var, -var-file) and the environment (PKR_VAR_x)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmbake.errors import Problem, VmbakeError
from vmbake.files import read_regular_text
from vmbake.template.jsonpos import JsonSyntaxError
from vmbake.template.jsonpos import parse as parse_json


@dataclass
class Inputs:
    """Values given from outside the template, each with where it came from (for error messages)."""

    files: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (file name, values), in order
    cli: dict[str, str] = field(default_factory=dict)  # -var k=v, the last one wins
    problems: list[Problem] = field(default_factory=list)


def parse_var_flag(text: str) -> tuple[str, str]:
    """'k=v' as given to -var. Raises ValueError."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"-var {text!r}: expected NAME=VALUE")
    return key, value


def read_var_file(path: Path) -> tuple[dict[str, Any], list[Problem]]:
    """Values of a -var-file: JSON (an object) or HCL (`name = value` lines, as in .pkrvars.hcl)."""
    name = str(path)
    try:
        text = read_regular_text(path, "variable file")
    except VmbakeError as exc:
        return {}, [Problem(name, "", exc.message, exc.hint or "check the -var-file path")]
    if path.suffix == ".json" or text.lstrip().startswith("{"):
        try:
            data, lines = parse_json(text)
        except JsonSyntaxError as exc:
            return {}, [Problem(name, "", f"invalid JSON: {exc.reason}", "", exc.line)]
        if not isinstance(data, dict):
            return {}, [Problem(name, "", "a variable file must hold one JSON object of name: value pairs")]
        if path.name.endswith(".pkrvars.json"):
            return data, []  # an HCL2 variable file in JSON syntax: lists and objects are values too
        problems = [
            Problem(name, k, "a variable value must be a string, number or boolean", "", lines.get(k))
            for k, v in data.items()
            if isinstance(v, dict | list)
        ]
        return {k: v for k, v in data.items() if not isinstance(v, dict | list)}, problems
    from vmbake.template.hcl_values import read_hcl_values

    return read_hcl_values(text, name)


def collect_inputs(var_flags: dict[str, str], var_files: list[Path]) -> Inputs:
    inputs = Inputs(cli=dict(var_flags))
    for path in var_files:
        values, problems = read_var_file(path)
        inputs.files.append((str(path), values))
        inputs.problems.extend(problems)
    return inputs


def env_values() -> dict[str, str]:
    """PKR_VAR_name=value environment variables (HCL2 templates only, as in Packer)."""
    return {k[len("PKR_VAR_") :]: v for k, v in os.environ.items() if k.startswith("PKR_VAR_") and len(k) > 8}


def as_text(value: Any) -> str:
    """A value as a JSON template's variable holds it: a string (Packer's JSON variables are strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def undeclared_cli_var(key: str, declared: Iterable[str]) -> Problem:
    """The problem of a `-var` naming a variable the template does not declare (both template formats)."""
    names = ", ".join(declared)
    return Problem(
        "-var", key, f"variable {key!r} is not declared in the template", "declared: " + (names or "none")
    )
