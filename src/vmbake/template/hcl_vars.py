"""HCL2 variables and locals: declarations, values from every source in Packer's order, locals in rounds."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmbake.errors import Problem
from vmbake.template import hcl_data
from vmbake.template.assemble import Assembler
from vmbake.template.hcl_errors import ExprError, Unavailable, has_unavailable
from vmbake.template.hcl_expr import Evaluator
from vmbake.template.hcl_types import HclType, TypeMismatch, convert, parse_type, type_of
from vmbake.template.hcl_values import Expr, Tpl, evaluate, reporter
from vmbake.template.model import Variable
from vmbake.template.order import dependencies_first
from vmbake.template.variables import Inputs, env_values, undeclared_cli_var
from vmbake.ui import register_secret

VARIABLE_KEYS = ("type", "default", "sensitive", "description", "validation", "nullable")
Declared = list[tuple[str, Any, str]]  # (name, body or expression, file)


def resolve_variables(
    declared: Declared, inputs: Inputs, directory: Path, asm: Assembler
) -> tuple[dict[str, Variable], dict[str, Any]]:
    variables: dict[str, Variable] = {}
    values: dict[str, Any] = {}
    types: dict[str, HclType | None] = {}  # None: no constraint (any), and -var values are strings
    checks: list[tuple[str, Any, str]] = []  # (variable, validation block, file)

    def problem_in(source: str, key: str) -> Callable[[str, str], None]:
        return lambda message, hint: asm.problems.append(Problem(source, key, message, hint))

    for name, body, file in declared:
        report = reporter(asm, file)
        path = f"variable.{name}"
        if name in variables:
            report(path, f"variable {name!r} is declared twice", "keep one declaration")
            continue
        if not isinstance(body, dict):
            body = {}
        for key in body:
            if key not in VARIABLE_KEYS:
                report(
                    f"{path}.{key}",
                    f"unknown key {key!r} in a variable block",
                    "valid: " + ", ".join(VARIABLE_KEYS),
                )
        types[name] = _declared_type(body.get("type"), f"{path}.type", report)
        has_default = "default" in body
        default = evaluate(body.get("default"), {}, f"{path}.default", report) if has_default else None
        if has_default:
            default = _fit(name, default, types[name], problem_in(file, f"{path}.default"), "default")
            if types[name] is None and default not in ([], {}, None):
                # Packer gives a variable without a type the type of its default (types.variables.go)
                types[name] = type_of(default)
        sensitive = body.get("sensitive", False) is True
        description = evaluate(body.get("description", ""), {}, f"{path}.description", report)
        variables[name] = Variable(name, default, not has_default, sensitive, str(description or ""))
        if has_default:
            values[name] = default
        validations = body.get("validation", [])
        checks += [(name, block, file) for block in (validations if isinstance(validations, list) else [])]

    for key, text in env_values().items():
        if key in variables:
            value = _from_text(text, types[key], problem_in(f"PKR_VAR_{key}", key), key)
            values[key] = _fit(key, value, types[key], problem_in(f"PKR_VAR_{key}", key), "PKR_VAR_" + key)
    auto = sorted([*directory.glob("*.auto.pkrvars.hcl"), *directory.glob("*.auto.pkrvars.json")])
    from vmbake.template.variables import read_var_file

    sources: list[tuple[str, dict[str, Any]]] = []
    for auto_file in auto:
        found, problems = read_var_file(auto_file)
        asm.problems.extend(problems)
        sources.append((str(auto_file), found))
    for source, found in [*sources, *inputs.files]:
        for key, value in found.items():
            if key not in variables:
                asm.warnings.append(Problem(source, key, f"variable {key!r} is set but not declared", ""))
            else:
                values[key] = _fit(key, value, types[key], problem_in(source, key), "file")
    for key, text in inputs.cli.items():
        if key not in variables:
            asm.problems.append(undeclared_cli_var(key, variables))
            continue
        value = _from_text(text, types[key], problem_in("-var", key), key)
        values[key] = _fit(key, value, types[key], problem_in("-var", key), "-var")
    for name, var in variables.items():
        if var.required and name not in values:
            asm.problems.append(
                Problem(
                    str(asm.file),
                    f"variable.{name}",
                    f"required variable {name!r} is not set",
                    f"pass -var '{name}=VALUE', a -var-file, or PKR_VAR_{name}",
                )
            )
    for name, var in variables.items():
        if var.sensitive and name in values:
            register_secret(values[name])  # before any message about the template can quote it
    for name, block, file in checks:
        if name in values:
            _validate(name, block, values[name], file, asm)
    return variables, values


def _declared_type(node: Any, path: str, report: Any) -> HclType | None:
    if node is None:
        return None
    text = node.text if isinstance(node, Expr) else node.body if isinstance(node, Tpl) else str(node)
    try:
        found = parse_type(text)
    except TypeMismatch as exc:
        report(
            path,
            f"invalid type constraint: {exc}",
            "types: string, number, bool, any, list(T), set(T), map(T), tuple([T, ...]), object({name = T, ...})",
        )
        return None
    return None if found.kind == "any" else found


def _from_text(text: str, want: HclType | None, problem: Callable[[str, str], None], name: str) -> Any:
    """A -var or PKR_VAR_x string: kept as text for a string or number (or no) type, read as an HCL
    expression for the others (Packer's expressionFromVariableDefinition)."""
    if want is None or want.kind in ("string", "number"):
        return text
    try:
        return Evaluator({}).expression(text)
    except ExprError as exc:
        problem(
            f"the value for {name} is not a valid expression for type {want}: {exc}",
            f"write it as HCL, e.g. {_example(want)}",
        )
        return None


def _fit(
    name: str, value: Any, want: HclType | None, problem: Callable[[str, str], None], origin: str
) -> Any:
    """`value` converted to the variable's type; a value that does not fit is a problem naming the fix."""
    if want is None or value is None:
        return value
    try:
        return convert(value, want)
    except TypeMismatch as exc:
        what = "default value" if origin == "default" else "value"
        problem(
            f"invalid {what} for variable {name!r}: it is not compatible with the type {want}: {exc}",
            f"give a value of type {want}, e.g. {_example(want)}"
            + ("" if origin == "default" else ", or change the variable's type"),
        )
        return value


def _example(want: HclType) -> str:
    examples = {"string": '"text"', "number": "2048", "bool": "true", "any": '"text"'}
    if want.kind in examples:
        return examples[want.kind]
    if want.kind in ("list", "set") and want.element is not None:
        return f"[{_example(want.element)}]"
    if want.kind == "map" and want.element is not None:
        return "{ key = " + _example(want.element) + " }"
    if want.kind == "tuple":
        return "[" + ", ".join(_example(t) for t in want.items) + "]"
    return "{ " + ", ".join(f"{k} = {_example(t)}" for k, t in want.attrs.items()) + " }"


def _validate(name: str, block: Any, value: Any, file: str, asm: Assembler) -> None:
    """A `validation { condition, error_message }` block, evaluated as Packer does once the value is known."""
    report = reporter(asm, file)
    path = f"variable.{name}.validation"
    if not isinstance(block, dict) or "condition" not in block or "error_message" not in block:
        report(path, "a validation block needs condition and error_message")
        return
    scope = {"var": {name: value}}
    ok = evaluate(block["condition"], scope, f"{path}.condition", report)
    if ok is False:
        message = evaluate(block["error_message"], scope, f"{path}.error_message", report)
        report(
            f"variable.{name}",
            f"invalid value for variable {name!r}: {message}",
            "see the variable's validation",
        )
    elif ok is not True and ok is not None:
        report(f"{path}.condition", f"the condition must be true or false, got {ok!r}")


DataBlock = tuple[str, str, Any, str]  # (type, name, body, file)

_SENSITIVE_REF = re.compile(r"\b((?:var|local)\.[A-Za-z_][\w-]*|data\.[A-Za-z_][\w-]*\.[A-Za-z_][\w-]*)")
_REF = re.compile(r"\b(local\.[A-Za-z_][\w-]*|data\.[A-Za-z_][\w-]*\.[A-Za-z_][\w-]*)")


def _text_of(node: Any) -> str:
    """Every expression and template text in a value, for finding what it refers to."""
    if isinstance(node, Expr):
        return node.text
    if isinstance(node, Tpl):
        return node.body
    if isinstance(node, dict):
        return " ".join(_text_of(k) + " " + _text_of(v) for k, v in node.items())
    if isinstance(node, list | tuple):
        return " ".join(_text_of(v) for v in node)
    return node if isinstance(node, str) else ""


def _dependencies_first(todo: dict[str, tuple[Any, str]]) -> dict[str, tuple[Any, str]]:
    """`todo` with each local or data source after those it refers to: one round then resolves them
    all, in time linear in their number (the rounds below still report a loop)."""
    return dependencies_first(todo, {ref: _REF.findall(_text_of(expr)) for ref, (expr, _f) in todo.items()})


def resolve_locals(
    declared: Declared,
    data: list[DataBlock],
    scope: dict[str, Any],
    asm: Assembler,
    where: Any,
    sensitive: frozenset[str] = frozenset(),
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Locals and data sources, in rounds: each may use the others, in any order, without a loop.

    `where(path)` gives "file:line" for a data block, to name it in warnings. A local or data source
    built on a `sensitive` variable (names as "var.x") is sensitive too, as Packer marks it: its value is
    registered as a secret, so no output shows it."""
    tainted = set(sensitive)
    done: dict[str, Any] = {}
    sources: dict[str, dict[str, Any]] = {}
    todo: dict[str, tuple[Any, str]] = {f"local.{name}": (expr, file) for name, expr, file in declared}
    kinds: dict[str, tuple[str, str]] = {}
    for kind, name, body, file in data:
        ref = f"data.{kind}.{name}"
        if ref in kinds:
            asm.problems.append(Problem(file, ref, f"duplicate data block {ref!r}", "rename one"))
            continue
        kinds[ref] = (kind, name)
        if kind in hcl_data.BUILTIN:
            sources.setdefault(kind, {})
            todo[ref] = (body, file)
        else:
            placed = where(ref)
            sources.setdefault(kind, {})[name] = hcl_data.unavailable(kind, name, placed)
            asm.warnings.append(
                Problem(
                    file,
                    ref,
                    f"data source type {kind!r} is not run by vmbake; a build that uses its value fails",
                    "",
                )
            )
    todo = _dependencies_first(todo)
    failures: list[Problem] = []
    while todo:
        progress = False
        errors: dict[str, tuple[str, str]] = {}
        for ref, (expr, file) in list(todo.items()):
            failed: list[str] = []

            def note(_path: str, message: str, _hint: str = "", sink: list[str] = failed) -> None:
                sink.append(message)

            value = evaluate(expr, {**scope, "local": done, "data": sources}, ref, note, defer=True)
            if failed:
                errors[ref] = (failed[0], file)
                continue
            del todo[ref]
            progress = True
            if tainted.intersection(_SENSITIVE_REF.findall(_text_of(expr))):
                tainted.add(ref)
                register_secret(value)
            if ref.startswith("local."):
                done[ref.removeprefix("local.")] = value
                continue
            kind, name = kinds[ref]
            if has_unavailable(value):
                sources[kind][name] = Unavailable(f"{ref} uses a value vmbake cannot compute")
                continue
            try:
                sources[kind][name] = hcl_data.run(kind, name, value if isinstance(value, dict) else {})
            except ExprError as exc:
                failures.append(Problem(file, ref, str(exc), "check the data block"))
                sources[kind][name] = Unavailable(
                    f"{ref} has an error (reported above)", "fix that error first"
                )
        if not progress:
            for ref, (message, file) in errors.items():
                waiting = any(
                    f"{other} is not defined" in message or f"{other}." in message
                    for other in todo
                    if other != ref
                )
                hint = (
                    "locals and data sources may not refer to each other in a loop"
                    if waiting
                    else "check the expression"
                )
                asm.problems.append(Problem(file, ref, message, hint))
                # Uses of a failed local say so, instead of "not defined".
                broken = Unavailable(f"{ref} has an error (reported above)", "fix that error first")
                if ref.startswith("local."):
                    done[ref.removeprefix("local.")] = broken
                else:
                    sources[kinds[ref][0]][kinds[ref][1]] = broken
            break
    asm.problems.extend(failures)
    return done, sources
