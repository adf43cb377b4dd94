"""`vmbake init [TEMPLATE]`: what `packer init` would install, and that vmbake needs none of it.

Packer installs the plugins a template's `packer { required_plugins { ... } }` block names. vmbake has its
builders, provisioners and post-processors built in, so `init` only reports, for each plugin, what Packer
would fetch and whether vmbake runs that plugin's components itself. It installs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmbake import registry
from vmbake.errors import VmbakeError
from vmbake.template import resolve_template_path
from vmbake.template.hcl_json import parse_hcl_json
from vmbake.template.hcl_lines import HclLines
from vmbake.template.hcl_values import Expr, Tpl, evaluate, parse_hcl

# The components of each plugin source that vmbake implements itself.
BUILT_IN = {
    "github.com/hashicorp/qemu": ("qemu builder",),
    "github.com/hashicorp/ansible": ("ansible provisioner", "ansible-local provisioner"),
}


@dataclass(frozen=True)
class Plugin:
    name: str
    source: str
    version: str


def required_plugins(path: Path) -> list[Plugin]:
    """The entries of every required_plugins block in the template's .pkr.hcl files."""
    files = sorted([*path.glob("*.pkr.hcl"), *path.glob("*.pkr.json")]) if path.is_dir() else [path]
    found: list[Plugin] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise VmbakeError(f"cannot read {file}: {exc}", hint="check the file") from None
        if file.name.endswith(".json"):
            data, problems = parse_hcl_json(text, str(file), HclLines())
        else:
            data, problems = parse_hcl(text, str(file))
        if problems:
            raise VmbakeError(problems[0].render(), hint="fix the syntax, then run init again")
        for packer in _blocks(data.get("packer")):
            for block in _blocks(packer.get("required_plugins")):
                for name, spec in block.items():
                    value = evaluate(spec, {}, f"packer.required_plugins.{name}", lambda *_a: None)
                    if isinstance(value, dict):
                        found.append(
                            Plugin(name, str(value.get("source", "")), str(value.get("version", "")))
                        )
    return found


def _blocks(value: Any) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value] if value is not None else []
    return [v for v in items if isinstance(v, dict) and not isinstance(v, Tpl | Expr)]


def init_lines(template: str) -> list[str]:
    path = resolve_template_path(template)
    if path.is_file() and path.suffix == ".json" and not path.name.endswith(".pkr.json"):
        return [
            f"{path} is a JSON template: Packer's init reads only HCL2 templates (their packer block).",
            "vmbake needs no plugins for the builds it runs.",
        ]
    plugins = required_plugins(path)
    if not plugins:
        return [
            f"No required_plugins block in {path}: Packer would install nothing.",
            "vmbake needs no plugins for the builds it runs.",
        ]
    lines: list[str] = []
    missing = []
    for plugin in plugins:
        what = f"{plugin.source}" + (f" (version {plugin.version})" if plugin.version else "")
        built_in = BUILT_IN.get(plugin.source.lower().removeprefix("https://"))
        if built_in:
            lines.append(
                f"{plugin.name}: Packer would install {what}; vmbake has its {', '.join(built_in)} built in."
            )
        else:
            missing.append(plugin.name)
            lines.append(
                f"{plugin.name}: Packer would install {what}; vmbake does not implement this plugin."
            )
    lines.append("vmbake needs no plugins for the builds it runs.")
    if missing:
        lines.append(
            "Builds or provisioners of " + ", ".join(missing) + " cannot run in vmbake; "
            f"vmbake runs the builders {', '.join(registry.builder_types())} and the provisioners "
            f"{', '.join(registry.PROVISIONERS)}."
        )
    return lines
