"""`vmbake inspect`: a template's variables, builds, provisioners and post-processors, laid out as Packer does."""

from __future__ import annotations

from typing import Any

from vmbake.template.model import Template, Variable
from vmbake.ui import SENSITIVE


def _shown(var: Variable, value: Any) -> str:
    if var.sensitive:
        return SENSITIVE
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def inspect_lines(template: Template) -> list[str]:
    return _hcl(template) if template.format == "hcl2" else _json(template)


def _json(template: Template) -> list[str]:
    lines: list[str] = []
    if template.description:
        lines += ["Description:", "", template.description, ""]
    required = sorted(n for n, v in template.variables.items() if v.required)
    optional = sorted(n for n, v in template.variables.items() if not v.required)
    if required:
        lines += ["Required variables:", ""]
        lines += [f"  {name}" for name in required]
        lines.append("")
    if optional:
        width = max(len(n) for n in optional)
        lines += ["Optional variables and their defaults:", ""]
        for name in optional:
            var = template.variables[name]
            lines.append(f"  {name}{' ' * (width - len(name))} = {_shown(var, var.default)}")
        lines.append("")
    if not required and not optional:
        lines += ["Variables:", "", "  <No variables>", ""]
    lines += ["Builders:", ""]
    for build in template.builds:
        lines.append(f"  {build.name}" if build.name == build.type else f"  {build.type:<20} ({build.name})")
    if not template.builds:
        lines.append("  <No builders>")
    lines += ["", "Provisioners:", ""]
    lines += [f"  {kind}" for kind in template.provisioner_types] or ["  <No provisioners>"]
    if template.post_processor_types:
        lines += ["", "Post-processors:", ""]
        for i, chain in enumerate(template.post_processor_types):
            lines.append(f"  {i}: " + " -> ".join(chain))
    lines += [
        "",
        "Note: If your build names contain user variables or template",
        "functions such as 'timestamp', these are processed at build time,",
        "and therefore only show in their raw form here.",
    ]
    return lines


def _hcl(template: Template) -> list[str]:
    lines = ["Packer Inspect: HCL2 mode", "", "> input-variables:", ""]
    for name in sorted(template.variables):
        var = template.variables[name]
        if var.required and name not in template.values:
            lines.append(f"var.{name}: <unknown> (required)")
        else:
            value = template.values.get(name, var.default)
            lines.append(f"var.{name}: " + (SENSITIVE if var.sensitive else _hcl_value(value)))
    lines += ["", "> builds:", ""]
    for build in template.builds:
        lines += [f"  > {build.name}:", "", "    sources:", "", f"      {build.type}.{build.source_name}", ""]
        lines += ["    provisioners:", ""]
        lines += [f"      {p.type}" for p in build.provisioners] or ["      <none>"]
        lines.append("")
        chains = build.post_processors
        lines += ["    post-processors:", ""]
        if not chains:
            lines.append("      <none>")
        for i, chain in enumerate(chains):
            lines.append(f"      {i}:")
            lines += [f"        {p.type}" for p in chain]
        lines.append("")
    return lines


def _hcl_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(_hcl_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_hcl_value(v)}" for k, v in value.items()) + "}"
    return str(value)
