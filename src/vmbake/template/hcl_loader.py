"""Packer HCL2 templates: variable, locals, source and build blocks, with var files and PKR_VAR_x.

A template is one `.pkr.hcl` file or a directory of them (as `packer build .`). Build names are Packer's:
`TYPE.NAME` for `source "TYPE" "NAME"` (prefixed by the build block's `name` when it has one); `-only`
also matches the bare source name.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2  # type: ignore[import-untyped,unused-ignore]
from hcl2.utils import SerializationOptions  # type: ignore[import-untyped,unused-ignore]

from vmbake.errors import Problem, TemplateError
from vmbake.template.assemble import PROVISIONER_COMMON, Assembler
from vmbake.template.hcl_expr import Evaluator, ExprError
from vmbake.template.hcl_lines import HclLines
from vmbake.template.model import PostProcessorSpec, ProvisionerSpec, Template, Variable
from vmbake.template.variables import Inputs, env_values

_OPTIONS = SerializationOptions(with_comments=False, preserve_heredocs=False)
TOP_BLOCKS = ("variable", "variables", "locals", "local", "source", "build", "packer")
BUILD_KEYS = (
    "name",
    "description",
    "sources",
    "source",
    "provisioner",
    "post-processor",
    "post-processors",
    "error-cleanup-provisioner",
)
VARIABLE_KEYS = ("type", "default", "sensitive", "description", "validation", "nullable")


@dataclass(frozen=True)
class Tpl:
    """A quoted string template body, to evaluate."""

    body: str


@dataclass(frozen=True)
class Expr:
    """A bare expression (python-hcl2 gives it as "${...}")."""

    text: str


def _unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == '"' else key


def clean(value: Any) -> Any:
    """python-hcl2's output as plain data whose strings are Tpl or Expr nodes."""
    if isinstance(value, str):
        if len(value) >= 2 and value[0] == value[-1] == '"':
            return Tpl(value[1:-1])
        if value.startswith("${") and value.endswith("}"):
            return Expr(value[2:-1])
        return Expr(value)
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        return {_unquote(k): clean(v) for k, v in value.items() if k != "__is_block__"}
    return value


_FAILED = object()


def evaluate(tree: Any, scope: dict[str, Any], path: str, report: Any) -> Any:
    """`tree` with every Tpl and Expr evaluated; failures are reported with their key path and left out."""
    value = _evaluate(tree, scope, path, report)
    return None if value is _FAILED else value


def _evaluate(tree: Any, scope: dict[str, Any], path: str, report: Any) -> Any:
    if isinstance(tree, Tpl | Expr):
        try:
            ev = Evaluator(scope)
            return ev.template(tree.body) if isinstance(tree, Tpl) else ev.expression(tree.text)
        except ExprError as exc:
            report(path, str(exc), "check the expression")
            return _FAILED
    if isinstance(tree, list):
        items = [_evaluate(v, scope, f"{path}[{i}]", report) for i, v in enumerate(tree)]
        return [v for v in items if v is not _FAILED]
    if isinstance(tree, dict):
        pairs = {k: _evaluate(v, scope, f"{path}.{k}" if path else k, report) for k, v in tree.items()}
        return {k: v for k, v in pairs.items() if v is not _FAILED}
    return tree


def _parse(text: str, name: str) -> tuple[dict[str, Any], list[Problem]]:
    try:
        data = hcl2.loads(text, serialization_options=_OPTIONS)
    except Exception as exc:  # lark raises many kinds; all mean a syntax error here
        line = getattr(exc, "line", None)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return {}, [
            Problem(
                name,
                "",
                f"invalid HCL: {first}",
                "check quotes, braces and '=' near this line",
                line if isinstance(line, int) and line > 0 else None,
            )
        ]
    return clean(data), []


def read_hcl_values(text: str, name: str) -> tuple[dict[str, Any], list[Problem]]:
    """`name = value` pairs of a .pkrvars.hcl file (constants only)."""
    data, problems = _parse(text, name)
    values: dict[str, Any] = {}

    def report(path: str, message: str, hint: str = "") -> None:
        problems.append(Problem(name, path, message, hint))

    for key, tree in data.items():
        if isinstance(tree, list) and tree and isinstance(tree[0], dict):
            report(key, "a variable file holds only `name = value` lines, not blocks")
            continue
        values[key] = evaluate(tree, {}, key, report)
    return values, problems


def _convert(value: str, type_text: str, evaluator_scope: dict[str, Any]) -> Any:
    """A string from -var or PKR_VAR_x converted to the variable's declared type."""
    kind = type_text.strip()
    if kind in ("", "string", "any"):
        return value
    if kind == "number":
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            raise ExprError(f"{value!r} is not a number") from None
    if kind == "bool":
        if value not in ("true", "false"):
            raise ExprError(f"{value!r} is not a bool (true or false)")
        return value == "true"
    return Evaluator(evaluator_scope).expression(value)


@dataclass
class _Blocks:
    variables: list[tuple[str, Any, str]] = field(default_factory=list)  # (name, body, file)
    locals: list[tuple[str, Any, str]] = field(default_factory=list)
    sources: dict[str, tuple[str, str, dict[str, Any], str]] = field(default_factory=dict)
    builds: list[tuple[dict[str, Any], str]] = field(default_factory=list)


def _files(path: Path) -> tuple[list[Path], Path]:
    if path.is_dir():
        found = sorted(p for p in path.glob("*.pkr.hcl") if p.is_file())
        if not found:
            raise TemplateError(
                [
                    Problem(
                        str(path),
                        "",
                        "no *.pkr.hcl file in this directory",
                        "give a .json or .pkr.hcl file, or a directory holding .pkr.hcl files",
                    )
                ]
            )
        return found, path.resolve()
    return [path], path.resolve().parent


def _collect(files: list[Path], asm: Assembler, lines: HclLines) -> _Blocks:
    blocks = _Blocks()
    for file in files:
        name = str(file)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            asm.problems.append(
                Problem(name, "", f"cannot read template: {getattr(exc, 'strerror', None) or exc}")
            )
            continue
        data, problems = _parse(text, name)
        asm.problems.extend(problems)
        lines.scan(text)
        for key, items in data.items():
            if key not in TOP_BLOCKS:
                asm.problems.append(
                    Problem(
                        name,
                        key,
                        f"unknown block or attribute {key!r}",
                        "valid blocks: " + ", ".join(TOP_BLOCKS),
                    )
                )
                continue
            for item in items if isinstance(items, list) else [items]:
                _block(key, item, name, blocks, asm)
    return blocks


def _block(key: str, item: Any, file: str, blocks: _Blocks, asm: Assembler) -> None:
    if not isinstance(item, dict):
        asm.problems.append(Problem(file, key, f"{key!r} must be a block"))
        return
    if key == "variable":
        for label, body in item.items():
            blocks.variables.append((label, body, file))
    elif key == "variables":
        for label, default in item.items():
            blocks.variables.append((label, {"default": default}, file))
    elif key == "locals":
        for label, expr in item.items():
            blocks.locals.append((label, expr, file))
    elif key == "local":
        for label, body in item.items():
            expr = body.get("expression") if isinstance(body, dict) else None
            blocks.locals.append((label, expr, file))
    elif key == "source":
        for kind, named in item.items():
            for label, body in named.items() if isinstance(named, dict) else []:
                ref = f"source.{kind}.{label}"
                if ref in blocks.sources:
                    asm.problems.append(Problem(file, ref, f"duplicate source block {ref!r}", "rename one"))
                blocks.sources[ref] = (kind, label, body if isinstance(body, dict) else {}, file)
    elif key == "build":
        blocks.builds.append((item, file))


def load_hcl(path: Path, inputs: Inputs, only: list[str], except_: list[str]) -> Template:
    files, directory = _files(path)
    lines = HclLines()
    asm = Assembler(str(path), lines.locate)
    asm.problems.extend(inputs.problems)
    blocks = _collect(files, asm, lines)
    template_files = {str(f) for f in files} | {str(path)}
    variables, values = _variables(blocks, inputs, directory, asm)
    if asm.problems:
        raise TemplateError(
            _with_lines(asm.problems, lines, template_files)
        )  # later blocks would only repeat the missing variables
    scope: dict[str, Any] = {"var": values, "path": {"root": str(directory), "cwd": os.getcwd()}}
    scope["local"] = _locals(blocks, scope, asm)
    if not blocks.builds and not any(p.message.startswith("invalid HCL") for p in asm.problems):
        asm.problems.append(
            Problem(
                str(path),
                "build",
                "a template needs a build block",
                'add build { sources = ["source.qemu.NAME"] }',
            )
        )
    provisioners: list[ProvisionerSpec] = []
    chains: list[list[PostProcessorSpec]] = []
    cleanup: ProvisionerSpec | None = None
    scopes = [_add_builds(b, f, i, blocks, scope, asm) for i, (b, f) in enumerate(blocks.builds)]
    multi = len(blocks.builds) > 1
    for i, (build, file) in enumerate(blocks.builds):
        names, build_scope, members = scopes[i]
        limit = names if multi else ()
        provisioners += _provisioners(
            build.get("provisioner", []), f"build[{i}].provisioner", build_scope, limit, asm, file, members
        )
        for found in _provisioners(
            build.get("error-cleanup-provisioner", []),
            f"build[{i}].error-cleanup-provisioner",
            build_scope,
            limit,
            asm,
            file,
            members,
        ):
            cleanup = found
        chains += _post_processors(build, f"build[{i}]", build_scope, limit, asm, file)
    description = ""
    for build, file in blocks.builds:
        if "description" in build:
            description = str(
                evaluate(build["description"], scope, "build.description", _reporter(asm, file)) or ""
            )
            break
    builds = asm.select(only, except_)
    if asm.problems:
        raise TemplateError(_with_lines(asm.problems, lines, template_files))
    asm.warnings[:] = _with_lines(asm.warnings, lines, template_files)
    return Template(
        path=path,
        directory=directory,
        format="hcl2",
        description=description,
        variables=variables,
        values=values,
        builds=builds,
        provisioners=provisioners,
        error_cleanup_provisioner=cleanup,
        post_processors=chains,
        warnings=asm.warnings,
        all_builds=asm.build_names(),
    )


def _with_lines(problems: list[Problem], lines: HclLines, files: set[str]) -> list[Problem]:
    """Problems in the template's own files get the line of their key."""
    return [
        dataclasses.replace(p, line=lines.locate(p.key))
        if p.line is None and p.key and p.file in files
        else p
        for p in problems
    ]


def _blocks_of(value: Any) -> list[dict[str, Any]]:
    """The blocks python-hcl2 gives for a block type (an attribute of the same name gives none)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _reporter(asm: Assembler, file: str) -> Any:
    def report(path: str, message: str, hint: str = "") -> None:
        asm.problems.append(Problem(file, path, message, hint))

    return report


def _variables(
    blocks: _Blocks, inputs: Inputs, directory: Path, asm: Assembler
) -> tuple[dict[str, Variable], dict[str, Any]]:
    variables: dict[str, Variable] = {}
    values: dict[str, Any] = {}
    types: dict[str, str] = {}
    for name, body, file in blocks.variables:
        report = _reporter(asm, file)
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
        type_node = body.get("type")
        types[name] = type_node.text if isinstance(type_node, Expr) else ""
        has_default = "default" in body
        default = evaluate(body.get("default"), {}, f"{path}.default", report) if has_default else None
        sensitive = body.get("sensitive", False) is True
        description = evaluate(body.get("description", ""), {}, f"{path}.description", report)
        variables[name] = Variable(name, default, not has_default, sensitive, str(description or ""))
        if has_default:
            values[name] = default
    convert_scope: dict[str, Any] = {}
    for key, text in env_values().items():
        if key in variables:
            try:
                values[key] = _convert(text, types[key], convert_scope)
            except ExprError as exc:
                asm.problems.append(Problem(f"PKR_VAR_{key}", key, str(exc), f"type is {types[key]}"))
    auto = sorted(directory.glob("*.auto.pkrvars.hcl"))
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
                values[key] = value
    for key, text in inputs.cli.items():
        if key not in variables:
            asm.problems.append(
                Problem(
                    "-var",
                    key,
                    f"variable {key!r} is not declared in the template",
                    "declared: " + (", ".join(variables) or "none"),
                )
            )
            continue
        try:
            values[key] = _convert(text, types[key], convert_scope)
        except ExprError as exc:
            asm.problems.append(Problem("-var", key, str(exc), f"type is {types[key]}"))
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
    return variables, values


def _locals(blocks: _Blocks, scope: dict[str, Any], asm: Assembler) -> dict[str, Any]:
    done: dict[str, Any] = {}
    todo = {name: (expr, file) for name, expr, file in blocks.locals}
    while todo:
        progress = False
        errors: dict[str, tuple[str, str]] = {}
        for name, (expr, file) in list(todo.items()):
            failed: list[str] = []

            def note(_path: str, message: str, _hint: str = "", sink: list[str] = failed) -> None:
                sink.append(message)

            value = evaluate(expr, {**scope, "local": done}, f"local.{name}", note)
            if failed:
                errors[name] = (failed[0], file)
                continue
            done[name] = value
            del todo[name]
            progress = True
        if not progress:
            for name, (message, file) in errors.items():
                asm.problems.append(
                    Problem(file, f"local.{name}", message, "locals may not refer to each other in a loop")
                )
            break
    return done


def _add_builds(
    build: dict[str, Any], file: str, index: int, blocks: _Blocks, scope: dict[str, Any], asm: Assembler
) -> tuple[tuple[str, ...], dict[str, Any], list[tuple[str, str, str]]]:
    report = _reporter(asm, file)
    path = f"build[{index}]"
    for key in build:
        if key not in BUILD_KEYS:
            report(
                f"{path}.{key}",
                f"unknown key or block {key!r} in a build block",
                "valid: " + ", ".join(BUILD_KEYS),
            )
    build_name = evaluate(build.get("name", ""), scope, f"{path}.name", report) or ""
    refs: list[tuple[str, dict[str, Any], str]] = []
    for i, ref in enumerate(evaluate(build.get("sources", []), scope, f"{path}.sources", report) or []):
        refs.append((str(ref), {}, f"{path}.sources[{i}]"))
    for item in _blocks_of(build.get("source", [])):
        for ref, body in item.items():
            refs.append((ref, body if isinstance(body, dict) else {}, f"{path}.source.{ref}"))
    if not refs:
        report(f"{path}.sources", "a build block needs sources", 'for example sources = ["source.qemu.NAME"]')
    names: list[str] = []
    members: list[tuple[str, str, str]] = []  # (build name, source type, source name)
    for ref, extra, where in refs:
        if ref not in blocks.sources:
            known = ", ".join(blocks.sources) or "none"
            report(where, f"no source block {ref!r}", f"defined sources: {known}")
            continue
        kind, label, body, src_file = blocks.sources[ref]
        extra = dict(extra)
        rename = extra.pop("name", None)
        if rename is not None:
            label = str(evaluate(rename, scope, f"{where}.name", report))
        local_scope = {**scope, "source": {"name": label, "type": kind}, "build": {"name": build_name}}
        src_path = f"source.{kind}.{label}"
        config = evaluate({**body, **extra}, local_scope, src_path, _reporter(asm, src_file))
        full = f"{build_name}.{kind}.{label}" if build_name else f"{kind}.{label}"
        aliases = tuple(dict.fromkeys(a for a in (f"{kind}.{label}", label) if a != full))
        asm.file = src_file
        asm.add_build(
            full,
            kind,
            config,
            src_path,
            source_name=label,
            aliases=aliases,
            type_path=f"source.{kind}.{label}",
        )
        names.append(full)
        members.append((full, kind, label))
    deferred = {"name": "{{ source_name }}", "type": "{{ build_type }}"}
    build_scope = {**scope, "source": deferred, "build": {"name": build_name}}
    return tuple(names), build_scope, members


def _provisioners(
    items: Any,
    path: str,
    scope: dict[str, Any],
    limit: tuple[str, ...],
    asm: Assembler,
    file: str,
    members: list[tuple[str, str, str]],
) -> list[ProvisionerSpec]:
    out: list[ProvisionerSpec] = []
    asm.file = file
    for i, item in enumerate(_blocks_of(items)):
        for kind, body in item.items():
            where = f"{path}[{i}]"
            raw = evaluate(body, scope, where, _reporter(asm, file)) if isinstance(body, dict) else {}
            spec = asm.provisioner(raw, where, type_name=kind, scope=limit)
            if spec is None:
                continue
            if isinstance(body, dict) and "source." in repr(body):
                # source.name / source.type differ per build: evaluate the block once for each.
                per_build = {}
                for full, source_type, label in members:
                    local = {**scope, "source": {"name": label, "type": source_type}}
                    block = evaluate(body, local, where, lambda *_a: None)
                    per_build[full] = {k: v for k, v in block.items() if k not in PROVISIONER_COMMON}
                spec = dataclasses.replace(spec, per_build=per_build)
            out.append(spec)
    return out


def _post_processors(
    build: dict[str, Any], path: str, scope: dict[str, Any], limit: tuple[str, ...], asm: Assembler, file: str
) -> list[list[PostProcessorSpec]]:
    asm.file = file
    chains: list[list[PostProcessorSpec]] = []

    def one(item: dict[str, Any], where: str) -> list[PostProcessorSpec]:
        found = []
        for kind, body in item.items():
            raw = evaluate(body, scope, where, _reporter(asm, file)) if isinstance(body, dict) else {}
            spec = asm.post_processor(raw, where, type_name=kind, scope=limit)
            if spec is not None:
                found.append(spec)
        return found

    for i, item in enumerate(_blocks_of(build.get("post-processor", []))):
        chain = one(item, f"{path}.post-processor[{i}]")
        if chain:
            chains.append(chain)
    for i, group in enumerate(_blocks_of(build.get("post-processors", []))):
        chain = []
        for j, item in enumerate(_blocks_of(group.get("post-processor", []))):
            chain += one(item, f"{path}.post-processors[{i}].post-processor[{j}]")
        if chain:
            chains.append(chain)
    return chains
