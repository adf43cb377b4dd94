"""Packer JSON templates: top-level sections, user variables, Go-template functions, exact lines."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from vmbake.config.fields import suggest
from vmbake.errors import Problem, TemplateError, VmbakeError
from vmbake.files import read_regular_text
from vmbake.template.assemble import (
    POST_PROCESSOR_COMMON,
    PROVISIONER_COMMON,
    Assembler,
    BlockBody,
    GatheredBlock,
    Target,
)
from vmbake.template.decode import render_tree
from vmbake.template.gotemplate import Pending, RenderContext, TemplateSyntaxError, render
from vmbake.template.jsonpos import JsonSyntaxError, locator, parse, syntax_problem
from vmbake.template.model import Template, Variable
from vmbake.template.order import dependencies_first
from vmbake.template.variables import Inputs, as_text
from vmbake.ui import register_secret

TOP_LEVEL = (
    "variables",
    "sensitive-variables",
    "builders",
    "provisioners",
    "post-processors",
    "description",
    "min_packer_version",
    "error-cleanup-provisioner",
)


def load_json(
    path: Path,
    inputs: Inputs,
    only: list[str],
    except_: list[str],
    *,
    check: bool = True,
    text: str | None = None,
) -> Template:
    """The template in `path` (or `text`, read as if it were that file: `vmbake fix -validate`)."""
    name = str(path)
    try:
        if text is None:
            text = read_regular_text(path, "template")
    except VmbakeError as exc:
        raise TemplateError([Problem(name, "", exc.message, exc.hint or "")]) from None
    try:
        data, lines = parse(text)
    except (JsonSyntaxError, RecursionError) as exc:
        raise TemplateError([syntax_problem(name, exc)]) from None
    locate = locator(lines)
    asm = Assembler(name, locate, format="json", check=check)
    asm.problems.extend(inputs.problems)
    if not isinstance(data, dict):
        asm.problem("", "a template is a JSON object", "start the file with '{'")
        raise TemplateError(asm.problems)
    for key in data:
        if key not in TOP_LEVEL and not key.startswith("_"):
            hint = suggest(key, list(TOP_LEVEL)) or "valid keys: " + ", ".join(TOP_LEVEL)
            asm.problem(key, f"unknown top-level key {key!r}", hint)
    directory = path.resolve().parent
    variables, values = _variables(data, inputs, asm, str(directory))
    known = {**dict.fromkeys(variables, ""), **values}  # a required variable left unset is reported once

    def rendered(value: Any, key_path: str, *, build: tuple[str, str] | None = None) -> Any:
        local = RenderContext(user=known, template_dir=str(directory))
        if build is not None:
            local.build_name, local.build_type = build
        return render_tree(value, local, key_path, asm.problem, warn)

    def warn(key_path: str, message: str, hint: str) -> None:
        asm.warnings.append(Problem(name, key_path, message, hint, locate(key_path)))

    _builders(data.get("builders"), asm, rendered)
    _provisioners(data.get("provisioners"), asm, rendered)
    if "error-cleanup-provisioner" in data:
        raw = data["error-cleanup-provisioner"]
        if isinstance(raw, dict):
            # Packer runs it for every build: its only/except are neither checked nor read (core.go).
            common = {k: v for k, v in raw.items() if k not in ("only", "except")}
            found = asm.provisioner(
                rendered(common, "error-cleanup-provisioner"),
                "error-cleanup-provisioner",
                _block_body(raw, "error-cleanup-provisioner", PROVISIONER_COMMON, rendered),
            )
            asm.cleanups += [found] if found is not None else []
        else:
            asm.problem("error-cleanup-provisioner", "expected a provisioner object", "")
    _post_processors(data.get("post-processors"), asm, rendered)
    description = data.get("description", "")
    if not isinstance(description, str):
        asm.problem("description", "expected a string", "")
        description = ""
    builds = asm.resolve(only, except_)
    if asm.problems:
        raise TemplateError(asm.problems)
    return Template(
        path=path,
        directory=directory,
        format="json",
        description=description,
        variables=variables,
        values=values,
        builds=builds,
        provisioner_types=[b.type for b in asm.provisioners],
        post_processor_types=[[b.type for b in chain] for chain in asm.chains],
        warnings=asm.warnings,
    )


def _variables(
    data: dict[str, Any], inputs: Inputs, asm: Assembler, directory: str
) -> tuple[dict[str, Variable], dict[str, Any]]:
    raw = data.get("variables", {})
    if not isinstance(raw, dict):
        asm.problem(
            "variables", "expected an object of name: default value", 'for example {"memory": "1024"}'
        )
        raw = {}
    sensitive_raw = data.get("sensitive-variables", [])
    if not isinstance(sensitive_raw, list) or not all(isinstance(s, str) for s in sensitive_raw):
        asm.problem("sensitive-variables", "expected a list of variable names", "")
        sensitive_raw = []
    for i, name in enumerate(sensitive_raw):
        if name not in raw:
            asm.problem(
                f"sensitive-variables[{i}]",
                f"variable {name!r} is not declared",
                'declare it under "variables"',
            )
    variables: dict[str, Variable] = {}
    pending: dict[str, str] = {}
    for name, default in raw.items():
        if default is not None and not isinstance(default, str):
            # Packer decodes each variable into a string without weak typing (hashicorp/packer v1.6.6
            # packer-plugin-sdk/template/parse.go, rawTemplate.Template: "variable a: '' expected type 'string'").
            asm.problem(
                f"variables.{name}",
                f"a variable's default must be a string (or null for a required one), got {default!r}",
                f'write it as a string, for example "{name}": "{as_text(default)}"'
                if not isinstance(default, dict | list)
                else "",
            )
            if isinstance(default, dict | list):
                continue
            default = as_text(default)  # read on, so that its uses are not reported as well
        variables[name] = Variable(name, default, default is None, name in sensitive_raw)
        if default is not None:
            pending[name] = default
    undeclared: dict[str, str] = {}
    for source, values in inputs.files:
        for key, value in values.items():
            if not source.endswith(".hcl") and value is not None and not isinstance(value, str):
                # Packer reads a -var-file of a JSON template into a map of strings (hashicorp/packer
                # v1.6.6 command/flag-kv/flag_json.go, FlagJSON.Set): any other value is an error.
                asm.problems.append(
                    Problem(
                        source,
                        key,
                        f"a variable file value must be a string, got {value!r}",
                        f'write it as a string: "{key}": "{as_text(value)}"',
                    )
                )
                continue
            pending[key] = as_text(value)
            if key not in variables:
                undeclared[key] = source
    for key, value in inputs.cli.items():
        pending[key] = value
        if key not in variables:
            undeclared[key] = "-var"
    for key, source in undeclared.items():
        # Packer 1.6.6 gives every -var and -var-file value to {{user}}, declared or not (command/meta.go,
        # Meta.Core: config.Variables = cla.Vars; packer/core.go copies them all into the user variables);
        # `_comment` keys in a variable file are just such values.
        if not key.startswith("_"):
            asm.warnings.append(
                Problem(
                    source,
                    key,
                    f"variable {key!r} is not declared in the template",
                    "{{user `" + key + '`}} still reads it, as in Packer; declare it under "variables"',
                )
            )
    for name, var in variables.items():
        if var.required and name not in pending:
            asm.problem(
                f"variables.{name}", f"required variable {name!r} is not set", f"pass -var '{name}=VALUE'"
            )
    values = _resolve(pending, asm, directory)
    # A sensitive variable, and any variable whose value is built on one ({{user `pw`}}), is never shown.
    tainted = {name for name, var in variables.items() if var.sensitive}
    for name in dependencies_first(pending, {k: _USER_REF.findall(v) for k, v in pending.items()}):
        if name in tainted or tainted.intersection(_USER_REF.findall(pending[name])):
            tainted.add(name)
            register_secret(values.get(name))
    return variables, values


# {{ user `name` }} or {{ user "name" }}: the variables a value refers to, to resolve them in order.
_USER_REF = re.compile(r"""\buser\s+[`"]([^`"]+)[`"]""")


def _resolve(pending: dict[str, str], asm: Assembler, directory: str) -> dict[str, Any]:
    """Render variable values that use {{env}} or {{user}}, in rounds, as later ones may use earlier ones."""
    done: dict[str, Any] = {k: v for k, v in pending.items() if "{{" not in v}
    todo = {k: v for k, v in pending.items() if k not in done}
    todo = dependencies_first(todo, {k: _USER_REF.findall(v) for k, v in todo.items()})
    while todo:
        progress = False
        for name, text in list(todo.items()):
            ctx = RenderContext(user=done, pending=frozenset(todo), allow_env=True, template_dir=directory)
            try:
                done[name] = render(text, ctx)
            except Pending:
                continue
            except TemplateSyntaxError as exc:
                asm.problem(f"variables.{name}", f"template error: {exc}", "")
                done[name] = text
            for undefined in ctx.undefined:
                asm.problem(f"variables.{name}", f"undefined variable {undefined!r}", "")
            del todo[name]
            progress = True
        if not progress:
            for name in todo:
                asm.problem(f"variables.{name}", "variables refer to each other in a loop", "break the cycle")
            break
    return {k: done[k] for k in pending if k in done}


def _block_body(raw: dict[str, Any], path: str, common: frozenset[str], rendered: Any) -> BlockBody:
    """A block's own keys for one build: its override for that build merged in, then rendered with the
    build's name and type, once (Packer merges the override before it interpolates)."""
    own = {k: v for k, v in raw.items() if k not in common and not k.startswith("_")}

    def body(target: Target, override: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = rendered({**own, **override}, path, build=(target.name, target.type))
        return result

    return body


def _common(common: dict[str, Any], path: str, rendered: Any) -> dict[str, Any]:
    """A block's common keys with its variables filled in, but for only/except: Packer matches those as
    written against the builders' names as written (packer-plugin-sdk template/parse.go decodes them raw)."""
    names = {k: v for k, v in common.items() if k in ("only", "except")}
    filled: dict[str, Any] = rendered({k: v for k, v in common.items() if k not in names}, path)
    return {**filled, **names}


def _builders(raw: Any, asm: Assembler, rendered: Any) -> None:
    if raw is None:
        asm.problem("builders", "a template needs at least one builder", 'add a "builders" list')
        return
    if not isinstance(raw, list) or not raw:
        asm.problem("builders", "expected a non-empty list of builder objects", "")
        return
    for i, block in enumerate(raw):
        path = f"builders[{i}]"
        if not isinstance(block, dict):
            asm.problem(path, "expected a builder object", "")
            continue
        kind = block.get("type")
        if not isinstance(kind, str) or not kind:
            asm.problem(path, 'a builder needs a "type"', 'for example "qemu"')
            continue
        raw_name = block.get("name", kind)
        if not isinstance(raw_name, str) or not raw_name:
            asm.problem(f"{path}.name", "expected a non-empty string", "")
            continue
        # Packer fills in the name with the user variables before -only/-except see it, and prints it
        # so; a provisioner's only/except and override still name the builder as written (hashicorp/packer
        # v1.6.6 packer/core.go, NewCore "interpolate all the build names" and Core.Build's rawName).
        name = rendered(raw_name, f"{path}.name")
        if not isinstance(name, str) or not name:
            asm.problem(f"{path}.name", "the name is empty once its variables are filled in", "")
            continue
        body = {k: v for k, v in block.items() if not k.startswith("_")}

        decode = functools.partial(rendered, body, path, build=(name, kind))
        asm.add_build(Target(name, kind, name, raw_name), path, decode)


def _provisioners(raw: Any, asm: Assembler, rendered: Any) -> None:
    if raw is None:
        return
    if not isinstance(raw, list):
        asm.problem("provisioners", "expected a list of provisioner objects", "")
        return
    for i, block in enumerate(raw):
        path = f"provisioners[{i}]"
        if not isinstance(block, dict):
            asm.problem(path, "expected a provisioner object", "")
            continue
        common = {k: v for k, v in block.items() if k in PROVISIONER_COMMON}
        found = asm.provisioner(
            _common(common, path, rendered), path, _block_body(block, path, PROVISIONER_COMMON, rendered)
        )
        if found is not None:
            asm.provisioners.append(found)


def _post_processors(raw: Any, asm: Assembler, rendered: Any) -> None:
    if raw is None:
        return
    if not isinstance(raw, list):
        asm.problem("post-processors", "expected a list of post-processors or chains", "")
        return
    for i, item in enumerate(raw):
        path = f"post-processors[{i}]"
        members = item if isinstance(item, list) else [item]
        chain: list[GatheredBlock] = []
        for j, member in enumerate(members):
            sub = f"{path}[{j}]" if isinstance(item, list) else path
            if isinstance(member, dict):
                common: Any = {k: v for k, v in member.items() if k in POST_PROCESSOR_COMMON}
                body = _block_body(member, sub, POST_PROCESSOR_COMMON, rendered)
                common = _common(common, sub, rendered)
            else:
                common, body = rendered(member, sub), _block_body({}, sub, POST_PROCESSOR_COMMON, rendered)
            found = asm.post_processor(common, sub, body)
            if found is not None:
                chain.append(found)
        if chain:
            asm.chains.append(chain)
