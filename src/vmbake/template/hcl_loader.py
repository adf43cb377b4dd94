"""Packer HCL2 templates: variable, locals, source and build blocks, with var files and PKR_VAR_x.

A template is one `.pkr.hcl` or `.pkr.json` file (HCL2 in JSON syntax: hcl_json) or a directory of them
(as `packer build .`). Build names are Packer's:
`TYPE.NAME` for `source "TYPE" "NAME"` (prefixed by the build block's `name` when it has one); `-only`
also matches the bare source name.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmbake import registry
from vmbake.errors import Problem, TemplateError, VmbakeError
from vmbake.files import read_regular_text
from vmbake.template import hcl_dynamic
from vmbake.template.assemble import (
    POST_PROCESSOR_COMMON,
    PROVISIONER_COMMON,
    Assembler,
    BlockBody,
    GatheredBlock,
    Target,
)
from vmbake.template.decode import render_tree
from vmbake.template.gotemplate import RenderContext
from vmbake.template.hcl_json import parse_hcl_json
from vmbake.template.hcl_lines import HclLines
from vmbake.template.hcl_packer import PACKER_VERSION, check_packer_block
from vmbake.template.hcl_values import Block, evaluate, parse_hcl, reporter
from vmbake.template.hcl_vars import resolve_locals, resolve_variables
from vmbake.template.model import Template, Variable
from vmbake.template.packer_funcs import BUILD_DATA_KEYS
from vmbake.template.variables import Inputs

TOP_BLOCKS = ("variable", "variables", "locals", "local", "data", "source", "build", "packer")
BUILD_KEYS = (
    "name",
    "description",
    "sources",
    "source",
    "provisioner",
    "post-processor",
    "post-processors",
    "error-cleanup-provisioner",
    "hcp_packer_registry",
    "dynamic",
)


@dataclass
class _Blocks:
    variables: list[tuple[str, Any, str]] = field(default_factory=list)  # (name, body, file)
    locals: list[tuple[str, Any, str]] = field(default_factory=list)
    sources: dict[str, tuple[str, str, dict[str, Any], str]] = field(default_factory=dict)
    builds: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    data: list[tuple[str, str, Any, str]] = field(default_factory=list)  # (type, name, body, file)


def _files(path: Path) -> tuple[list[Path], Path]:
    if path.is_dir():
        # Packer reads every *.pkr.hcl and *.pkr.json file of the directory, in name order.
        found = sorted(
            (p for pattern in ("*.pkr.hcl", "*.pkr.json") for p in path.glob(pattern) if not p.is_dir()),
            key=lambda p: p.name,
        )  # a FIFO is named, not skipped
        if not found:
            raise TemplateError(
                [
                    Problem(
                        str(path),
                        "",
                        "no *.pkr.hcl or *.pkr.json file in this directory",
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
        if file.name.endswith(".json"):
            data, problems = parse_hcl_json(text, name, lines)
        else:
            data, problems = parse_hcl(text, name)
            lines.scan(text)
        asm.problems.extend(problems)
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
    elif key == "data":
        for kind, named in item.items():
            for label, body in named.items() if isinstance(named, dict) else []:
                blocks.data.append((kind, label, body, file))
    elif key == "packer":
        check_packer_block(item, file, asm)


def _scope(
    blocks: _Blocks,
    inputs: Inputs,
    directory: Path,
    asm: Assembler,
    lines: HclLines,
    template_files: set[str],
) -> tuple[dict[str, Variable], dict[str, Any]]:
    """The template's variables, and the scope its expressions see: var, local, data, path, packer."""
    variables, values = resolve_variables(blocks.variables, inputs, directory, asm)
    if asm.problems:
        raise TemplateError(
            _with_lines(asm.problems, lines, template_files)
        )  # later blocks would only repeat the missing variables
    scope: dict[str, Any] = {
        "var": values,
        "path": {"root": str(directory), "cwd": os.getcwd()},
        "packer": {"version": PACKER_VERSION},
    }
    data_files = {f"data.{kind}.{name}": file for kind, name, _body, file in blocks.data}

    def data_place(ref: str) -> str:
        line = lines.locate(ref)
        return f"{data_files[ref]}:{line}" if line else data_files[ref]

    sensitive = frozenset(f"var.{name}" for name, var in variables.items() if var.sensitive)
    scope["local"], scope["data"] = resolve_locals(
        blocks.locals, blocks.data, scope, asm, data_place, sensitive
    )
    return variables, scope


def template_scope(path: Path, inputs: Inputs) -> dict[str, Any]:
    """What `vmbake console` evaluates against: the scope of an HCL2 template, its builds unchecked."""
    files, directory = _files(path)
    lines = HclLines()
    asm = Assembler(str(path), lines.locate, format="hcl2", check=False)
    asm.problems.extend(inputs.problems)
    blocks = _collect(files, asm, lines)
    template_files = {str(f) for f in files} | {str(path)}
    _, scope = _scope(blocks, inputs, directory, asm, lines, template_files)
    if asm.problems:
        raise TemplateError(_with_lines(asm.problems, lines, template_files))
    return scope


def load_hcl(
    path: Path, inputs: Inputs, only: list[str], except_: list[str], *, check: bool = True
) -> Template:
    files, directory = _files(path)
    lines = HclLines()
    asm = Assembler(str(path), lines.locate, format="hcl2", check=check)
    asm.problems.extend(inputs.problems)
    blocks = _collect(files, asm, lines)
    template_files = {str(f) for f in files} | {str(path)}
    variables, scope = _scope(blocks, inputs, directory, asm, lines, template_files)
    if not blocks.builds and not any(p.message.startswith("invalid HCL") for p in asm.problems):
        asm.problems.append(
            Problem(
                str(path),
                "build",
                "a template needs a build block",
                'add build { sources = ["source.qemu.NAME"] }',
            )
        )
    for i, (build, file) in enumerate(blocks.builds):
        members, build_scope = _add_builds(build, file, i, blocks, scope, asm)
        where = f"build[{i}]"
        made = hcl_dynamic.expand(build.get("dynamic"), build_scope, where, reporter(asm, file))
        binding = _Binding(where, build_scope, members, asm, file)
        asm.provisioners += _in_order(build, "provisioner", made, binding)
        asm.cleanups += _in_order(build, "error-cleanup-provisioner", made, binding)[-1:]
        chains = _post_processors(build, where, build_scope, members, asm, file)
        for m in made:
            if m.block == "post-processor":
                single = _post_processors(
                    {"post-processor": [m.item]}, where, m.scope, members, asm, file, f"dynamic[{m.index}]"
                )
                line = asm.locate(f"{where}.dynamic[{m.index}]") or 0
                at = sum(1 for c in chains if (asm.locate(c[0].path) or 0) < line)
                chains[at:at] = single
        asm.chains += chains
    description = ""
    for build, file in blocks.builds:
        if "description" in build:
            description = str(
                evaluate(build["description"], scope, "build.description", reporter(asm, file)) or ""
            )
            break
    builds = asm.resolve(only, except_)
    if asm.problems:
        raise TemplateError(_with_lines(asm.problems, lines, template_files))
    asm.warnings[:] = _with_lines(asm.warnings, lines, template_files)
    return Template(
        path=path,
        directory=directory,
        format="hcl2",
        description=description,
        variables=variables,
        values=scope["var"],
        builds=builds,
        provisioner_types=[b.type for b in asm.provisioners],
        post_processor_types=[[b.type for b in chain] for chain in asm.chains],
        warnings=asm.warnings,
    )


@dataclass(frozen=True)
class _Binding:
    """What the blocks of one build block are gathered with."""

    where: str  # "build[0]"
    scope: dict[str, Any]
    members: tuple[str, ...]
    asm: Assembler
    file: str


def _in_order(
    build: dict[str, Any], kind: str, made: list[hcl_dynamic.Made], b: _Binding
) -> list[GatheredBlock]:
    """The provisioner blocks of one type, written and made by dynamic blocks, in the file's order."""
    placed: list[tuple[int, int, list[GatheredBlock]]] = []
    for j, item in enumerate(_blocks_of(build.get(kind, []))):
        found = _provisioners([item], f"{b.where}.{kind}", b.scope, b.members, b.asm, b.file, j)
        placed.append((b.asm.locate(f"{b.where}.{kind}[{j}]") or 0, len(placed), found))
    for m in made:
        if m.block == kind:
            found = _provisioners([m.item], f"{b.where}.dynamic", m.scope, b.members, b.asm, b.file, m.index)
            placed.append((b.asm.locate(f"{b.where}.dynamic[{m.index}]") or 0, len(placed), found))
    return [block for _line, _order, found in sorted(placed, key=lambda p: p[:2]) for block in found]


def _with_lines(problems: list[Problem], lines: HclLines, files: set[str]) -> list[Problem]:
    """Problems in the template's own files get the line of their key."""
    return [
        dataclasses.replace(p, line=lines.locate(p.key))
        if p.line is None and p.key and p.file in files
        else p
        for p in problems
    ]


def _source_config(
    kind: str, tree: dict[str, Any], scope: dict[str, Any], path: str, report: Any
) -> dict[str, Any]:
    """A source body evaluated as a block (null is unset, dynamic blocks expand), nested blocks fitted."""
    return _fit_blocks(kind, evaluate(Block(tree), scope, path, report) or {})


def _fit_blocks(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """A key that the builder's schema makes a single nested block (`qemu_img_args { create = [...] }`)
    may be written as a block or as an attribute, as in the plugin's HCL2 spec."""
    cls = registry.builder_class(kind)
    if cls is None or not dataclasses.is_dataclass(cls):
        return config
    hints = typing.get_type_hints(cls)
    out = dict(config)
    for key, value in config.items():
        tp = hints.get(key)
        if (
            tp is not None
            and dataclasses.is_dataclass(tp)
            and isinstance(value, list)
            and len(value) == 1
            and isinstance(value[0], dict)
        ):
            out[key] = value[0]
    return out


def _blocks_of(value: Any) -> list[dict[str, Any]]:
    """The blocks python-hcl2 gives for a block type (an attribute of the same name gives none)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _add_builds(
    build: dict[str, Any], file: str, index: int, blocks: _Blocks, scope: dict[str, Any], asm: Assembler
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Gather the sources a build block uses; their bodies are evaluated only if they are selected."""
    report = reporter(asm, file)
    path = f"build[{index}]"
    for key in build:
        if key == "hcp_packer_registry":
            asm.warnings.append(
                Problem(
                    file,
                    f"{path}.{key}[0]",
                    "hcp_packer_registry has no effect in vmbake (it publishes to HCP Packer)",
                    "",
                )
            )
        elif key not in BUILD_KEYS:
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
        src_path = f"source.{kind}.{label}"
        full = f"{build_name}.{kind}.{label}" if build_name else f"{kind}.{label}"
        aliases = tuple(
            dict.fromkeys(a for a in (f"{kind}.{label}", label, f"source.{kind}.{label}") if a != full)
        )
        local_scope = {**scope, "source": {"name": label, "type": kind}, "build": {"name": build_name}}

        config = functools.partial(
            _source_config, kind, {**body, **extra}, local_scope, src_path, reporter(asm, src_file)
        )
        asm.file = src_file
        asm.add_build(Target(full, kind, label), src_path, config, aliases=aliases, type_path=src_path)
        names.append(full)
    build_scope = {**scope, "build": build_values(build_name)}
    return tuple(names), build_scope


def build_values(build_name: str) -> dict[str, str]:
    """What `build.X` reads in a provisioner or post-processor: the build block's name, and each value the
    builder gives as the placeholder that the provisioner fills in when it runs. Packer evaluates these
    to unknown values while it validates, and evaluates the block again with the real ones when it runs
    (hashicorp/packer hcl2template/types.packer_config.go, unknownBuildValues; types.hcl_provisioner.go,
    HCL2Prepare); any other key is an error ("Unsupported attribute")."""
    return {"name": build_name, **{key: f"{{{{ build `{key}` }}}}" for key in BUILD_DATA_KEYS}}


def _body(tree: dict[str, Any], scope: dict[str, Any], where: str, file: str, asm: Assembler) -> BlockBody:
    """A block's keys for one build: evaluated with that build's source.name and source.type, the
    override for it merged in, then {{ build_name }} and the like filled in, once."""
    own = Block({k: v for k, v in tree.items() if k not in PROVISIONER_COMMON | POST_PROCESSOR_COMMON})

    def body(target: Target, override: dict[str, Any]) -> dict[str, Any]:
        local = {**scope, "source": {"name": target.source_name, "type": target.type}}
        merged = {**(evaluate(own, local, where, reporter(asm, file)) or {}), **override}
        ctx = RenderContext(build_name=target.name, build_type=target.type, source_name=target.source_name)
        result: dict[str, Any] = render_tree(merged, ctx, where, reporter(asm, file))
        return result

    return body


def _common(
    tree: dict[str, Any], keys: frozenset[str], scope: dict[str, Any], where: str, file: str, asm: Assembler
) -> dict[str, Any]:
    common = Block({k: v for k, v in tree.items() if k in keys})
    result: dict[str, Any] = evaluate(common, scope, where, reporter(asm, file)) or {}
    return result


def _provisioners(
    items: Any,
    path: str,
    scope: dict[str, Any],
    members: tuple[str, ...],
    asm: Assembler,
    file: str,
    first: int = 0,  # the index of the first of `items` among its build's blocks (for key paths)
) -> list[GatheredBlock]:
    out: list[GatheredBlock] = []
    asm.file = file
    for i, item in enumerate(_blocks_of(items), first):
        for kind, tree in item.items():
            where = f"{path}[{i}]"
            tree = tree if isinstance(tree, dict) else {}
            common = _common(tree, PROVISIONER_COMMON, scope, where, file, asm)
            found = asm.provisioner(
                common, where, _body(tree, scope, where, file, asm), type_name=kind, scope=members
            )
            if found is not None:
                out.append(found)
    return out


def _post_processors(
    build: dict[str, Any],
    path: str,
    scope: dict[str, Any],
    members: tuple[str, ...],
    asm: Assembler,
    file: str,
    dynamic: str = "",  # the key path of the dynamic block that made `build`'s one post-processor
) -> list[list[GatheredBlock]]:
    asm.file = file

    def one(item: dict[str, Any], where: str) -> list[GatheredBlock]:
        found = []
        for kind, tree in item.items():
            tree = tree if isinstance(tree, dict) else {}
            common = _common(tree, POST_PROCESSOR_COMMON, scope, where, file, asm)
            block = asm.post_processor(
                common, where, _body(tree, scope, where, file, asm), type_name=kind, scope=members
            )
            if block is not None:
                found.append(block)
        return found

    placed: list[tuple[int, int, list[GatheredBlock]]] = []  # (line, order read, chain)
    for i, item in enumerate(_blocks_of(build.get("post-processor", []))):
        where = f"{path}.{dynamic}" if dynamic else f"{path}.post-processor[{i}]"
        chain = one(item, where)
        if chain:
            placed.append((asm.locate(where) or 0, len(placed), chain))
    for i, group in enumerate(_blocks_of(build.get("post-processors", []))):
        chain = []
        for j, item in enumerate(_blocks_of(group.get("post-processor", []))):
            chain += one(item, f"{path}.post-processors[{i}].post-processor[{j}]")
        if chain:
            placed.append((asm.locate(f"{path}.post-processors[{i}]") or 0, len(placed), chain))
    # python-hcl2 groups post-processor and post-processors blocks by kind; Packer runs them in the
    # order the file has them, which their lines give back.
    return [chain for _line, _order, chain in sorted(placed, key=lambda p: (p[0], p[1]))]
