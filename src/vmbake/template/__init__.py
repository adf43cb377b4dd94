"""Loading Packer templates (JSON and HCL2) into vmbake's typed model; see `load_template`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from vmbake import registry
from vmbake.errors import Problem, TemplateError, VmbakeError
from vmbake.template.model import BuildSpec, PostProcessorSpec, ProvisionerSpec, Template, Variable
from vmbake.template.variables import collect_inputs

__all__ = [
    "BuildSpec",
    "PostProcessorSpec",
    "ProvisionerSpec",
    "Template",
    "Variable",
    "load_template",
    "resolve_template_path",
]


def resolve_template_path(path_or_name: str | Path) -> Path:
    """The file or directory a TEMPLATE argument names: a path, or the name of a shipped template."""
    path = Path(path_or_name)
    if path.exists():
        return path
    shipped = registry.find_shipped(str(path_or_name))
    if shipped is not None:
        return shipped
    names = registry.shipped_templates()
    raise VmbakeError(
        f"template {str(path_or_name)!r} not found",
        "give a .json, .pkr.hcl or .pkr.json file, a directory of .pkr.hcl files"
        + (", or a shipped template: " + ", ".join(names) if names else ""),
    )


def _pick_in_directory(directory: Path) -> Path:
    """A directory holds either HCL2 files (loaded together) or one packer.json."""
    if any(directory.glob("*.pkr.hcl")) or any(directory.glob("*.pkr.json")):
        return directory
    jsons = sorted(directory.glob("*.json"))
    preferred = [p for p in jsons if p.name == "packer.json"]
    if preferred or len(jsons) == 1:
        return (preferred or jsons)[0]
    raise VmbakeError(
        f"no template in directory {str(directory)!r}",
        "the directory needs *.pkr.hcl files or a packer.json",
    )


def load_template(
    path_or_name: str | Path,
    vars: Mapping[str, str] | None = None,
    var_files: Sequence[Path | str] = (),
    only: Sequence[str] = (),
    except_: Sequence[str] = (),
    *,
    check: bool = True,
) -> Template:
    """Load, fill in and check a template: -only/-except first, then each selected build once.

    Raises TemplateError carrying every problem found. With check False (for `inspect`) the template
    only has to parse: no builder, provisioner or post-processor is decoded."""
    path = resolve_template_path(path_or_name)
    if path.is_dir():
        path = _pick_in_directory(path)
    inputs = collect_inputs(dict(vars or {}), [Path(f) for f in var_files])
    if path.is_dir() or path.name.endswith((".hcl", ".pkr.json")):
        from vmbake.template.hcl_loader import load_hcl

        return load_hcl(path, inputs, list(only), list(except_), check=check)
    if path.suffix != ".json":
        raise TemplateError(
            [Problem(str(path), "", "unknown template format", "use a .json, .pkr.hcl or .pkr.json file")]
        )
    from vmbake.template.json_loader import load_json

    return load_json(path, inputs, list(only), list(except_), check=check)
