"""The `packer { required_version, required_plugins }` block, checked as Packer checks it.

`required_version` uses hashicorp/go-version's constraint syntax (`>= 1.7.0, < 2`, `~> 1.9`) and is
checked against PACKER_VERSION, the Packer release whose HCL2 language vmbake follows.
"""

from __future__ import annotations

import re
from typing import Any

from vmbake.template.assemble import Assembler
from vmbake.template.hcl_values import evaluate, reporter

PACKER_VERSION = "1.11.2"
PACKER_KEYS = ("required_version", "required_plugins")

_VERSION = re.compile(r"v?(\d+(?:\.\d+)*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?")
_CONSTRAINT = re.compile(r"\s*(=|!=|>=|<=|>|<|~>)?\s*(\S+)\s*")


def _parse(text: str) -> tuple[tuple[int, ...], str]:
    m = _VERSION.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a version (like 1.9.4)")
    return tuple(int(p) for p in m.group(1).split(".")), m.group(2) or ""


def _pad(parts: tuple[int, ...]) -> tuple[int, ...]:
    return (*parts, 0, 0, 0)[: max(3, len(parts))]


def satisfies(version: str, constraints: str) -> bool:
    """Whether `version` meets every comma-separated constraint. Raises ValueError on bad syntax."""
    have, _ = _parse(version)
    for item in constraints.split(","):
        m = _CONSTRAINT.fullmatch(item)
        if not m:
            raise ValueError(f"{item.strip()!r} is not a version constraint (like '>= 1.7.0')")
        op, text = m.group(1) or "=", m.group(2)
        want, pre = _parse(text)
        a, b = _pad(have), _pad(want)
        if op == "~>":
            # ~> 1.2.3 is >= 1.2.3 and < 1.3; ~> 1.2 is >= 1.2 and < 2.
            fixed = want[: max(1, len(want) - 1)]
            ok = a >= b and a[: len(fixed)] == _pad(fixed)[: len(fixed)]
        else:
            ok = {"=": a == b, "!=": a != b, ">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[op]
            if pre and op == "=":
                ok = False  # a released version is never equal to a pre-release
        if not ok:
            return False
    return True


def check_packer_block(block: Any, file: str, asm: Assembler) -> None:
    """Problems of one `packer { ... }` block: unknown keys, a version vmbake's Packer level does not meet."""
    report = reporter(asm, file)
    if not isinstance(block, dict):
        report("packer", "'packer' must be a block", 'packer { required_version = ">= 1.7.0" }')
        return
    for key in block:
        if key not in PACKER_KEYS:
            report(
                f"packer.{key}",
                f"unknown key {key!r} in the packer block",
                "valid: " + ", ".join(PACKER_KEYS),
            )
    if "required_version" in block:
        wanted = evaluate(block["required_version"], {}, "packer.required_version", report)
        if isinstance(wanted, str):
            try:
                ok = satisfies(PACKER_VERSION, wanted)
            except ValueError as exc:
                report("packer.required_version", str(exc), "use go-version syntax, like '>= 1.7.0, < 2'")
            else:
                if not ok:
                    report(
                        "packer.required_version",
                        f"this template wants Packer {wanted}; vmbake reads templates as Packer {PACKER_VERSION}",
                        "relax required_version if the template does not need a newer Packer",
                    )
        elif wanted is not None:
            report("packer.required_version", "required_version must be a string", 'like ">= 1.7.0"')
    plugins = block.get("required_plugins", [])
    for group in plugins if isinstance(plugins, list) else [plugins]:
        if not isinstance(group, dict):
            report(
                "packer.required_plugins",
                "required_plugins must be a block",
                "required_plugins { qemu = {...} }",
            )
            continue
        for name, spec in evaluate(group, {}, "packer.required_plugins", report).items():
            where = f"packer.required_plugins.{name}"
            if not isinstance(spec, dict) or not isinstance(spec.get("source", ""), str):
                report(
                    where,
                    f"plugin {name!r} needs an object with a source",
                    '{ version = ">= 1.0.0", source = "github.com/hashicorp/qemu" }',
                )
                continue
            version = spec.get("version")
            if isinstance(version, str):
                try:
                    for item in version.split(","):
                        m = _CONSTRAINT.fullmatch(item)
                        if not m:
                            raise ValueError(f"{item.strip()!r} is not a version constraint")
                        _parse(m.group(2))
                except ValueError as exc:
                    report(f"{where}.version", str(exc), "use go-version syntax, like '>= 1.0.0'")
