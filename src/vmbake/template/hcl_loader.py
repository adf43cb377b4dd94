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

from vmbake.errors import Problem, TemplateError, VmbakeError
from vmbake.files import read_regular_text
from vmbake.template.assemble import PROVISIONER_COMMON, Assembler
from vmbake.template.hcl_lines import HclLines
from vmbake.template.hcl_values import evaluate, parse_hcl, reporter
from vmbake.template.hcl_vars import resolve_locals, resolve_variables
from vmbake.template.model import PostProcessorSpec, ProvisionerSpec, Template
from vmbake.template.variables import Inputs

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


@dataclass
class _Blocks:
    variables: list[tuple[str, Any, str]] = field(default_factory=list)  # (name, body, file)
    locals: list[tuple[str, Any, str]] = field(default_factory=list)
    sources: dict[str, tuple[str, str, dict[str, Any], str]] = field(default_factory=dict)
    builds: list[tuple[dict[str, Any], str]] = field(default_factory=list)


def _files(path: Path) -> tuple[list[Path], Path]:
    if path.is_dir():
        found = sorted(p for p in path.glob("*.pkr.hcl") if not p.is_dir())  # a FIFO is named, not skipped
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
            text = read_regular_text(file, "template")
        except VmbakeError as exc:
            asm.problems.append(Problem(name, "", exc.message, exc.hint or ""))
            continue
        data, problems = parse_hcl(text, name)
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
    variables, values = resolve_variables(blocks.variables, inputs, directory, asm)
    if asm.problems:
        raise TemplateError(
            _with_lines(asm.problems, lines, template_files)
        )  # later blocks would only repeat the missing variables
    scope: dict[str, Any] = {"var": values, "path": {"root": str(directory), "cwd": os.getcwd()}}
    scope["local"] = resolve_locals(blocks.locals, scope, asm)
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
                evaluate(build["description"], scope, "build.description", reporter(asm, file)) or ""
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


def _add_builds(
    build: dict[str, Any], file: str, index: int, blocks: _Blocks, scope: dict[str, Any], asm: Assembler
) -> tuple[tuple[str, ...], dict[str, Any], list[tuple[str, str, str]]]:
    report = reporter(asm, file)
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
        config = evaluate({**body, **extra}, local_scope, src_path, reporter(asm, src_file))
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
            raw = evaluate(body, scope, where, reporter(asm, file)) if isinstance(body, dict) else {}
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
            raw = evaluate(body, scope, where, reporter(asm, file)) if isinstance(body, dict) else {}
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
