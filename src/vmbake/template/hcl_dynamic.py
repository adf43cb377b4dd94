"""`dynamic` blocks inside a build block: `dynamic "provisioner" { for_each, labels, iterator, content }`.

Packer expands dynamic blocks in every body of a template (hashicorp/packer hcl2template/parser.go,
parseConfig: dynblock.Expand on the file body), so a build block may make its provisioners and
post-processors from a collection. Each made block is the `content` block, typed by its `labels`, and sees
the iterator (`provisioner.key`, `provisioner.value`, or the name `iterator` gives) beside the build's
own scope (source.name, build.*), which is why the content is not evaluated here but by the loader, per
build, with the scope returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vmbake.template.hcl_values import Expr, evaluate

# The block types a build's dynamic block may make in vmbake.
MADE = ("provisioner", "post-processor", "error-cleanup-provisioner")
_KEYS = ("for_each", "iterator", "labels", "content")


@dataclass(frozen=True)
class Made:
    """One block a dynamic block made: its type, the index of its dynamic block in the build, the block
    as python-hcl2 would give it ({type label: body}) and the scope its body is evaluated in."""

    block: str  # "provisioner", ...
    index: int
    item: dict[str, Any]
    scope: dict[str, Any]


def expand(items: Any, scope: dict[str, Any], where: str, report: Any) -> list[Made]:
    """The blocks the dynamic blocks `items` of build `where` make, in order; problems go to `report`."""
    made: list[Made] = []
    for index, item in enumerate(items if isinstance(items, list) else []):
        for name, spec in item.items() if isinstance(item, dict) else []:
            path = f"{where}.dynamic[{index}]"
            if name not in MADE:
                report(
                    path,
                    f"a dynamic {name!r} block in a build block is not supported by vmbake",
                    "dynamic blocks in a build may make: " + ", ".join(MADE),
                )
                continue
            made += _one(name, index, spec, scope, path, report)
    return made


def _one(name: str, index: int, spec: Any, scope: dict[str, Any], path: str, report: Any) -> list[Made]:
    if not isinstance(spec, dict) or "for_each" not in spec or not spec.get("content"):
        report(
            path, f"dynamic block {name!r} needs for_each and a content block", "see Packer's dynamic blocks"
        )
        return []
    for key in spec:
        if key not in _KEYS:
            report(f"{path}.{key}", f"unknown key {key!r} in a dynamic block", "valid: " + ", ".join(_KEYS))
    collection = evaluate(spec["for_each"], scope, f"{path}.for_each", report)
    if isinstance(collection, dict):
        pairs = list(collection.items())
    elif isinstance(collection, list):
        pairs = list(enumerate(collection))
    else:
        if collection is not None:
            report(f"{path}.for_each", f"for_each wants a list or map, got {collection!r}")
        return []
    iterator = spec.get("iterator")
    var = iterator.text.strip() if isinstance(iterator, Expr) else name
    content = spec["content"][0] if isinstance(spec["content"], list) else spec["content"]
    made: list[Made] = []
    for key, value in pairs:
        local = {**scope, var: {"key": key, "value": value}}
        labels = evaluate(spec.get("labels"), local, f"{path}.labels", report)
        if not (isinstance(labels, list) and len(labels) == 1 and isinstance(labels[0], str)):
            report(
                f"{path}.labels",
                f"a dynamic {name!r} block needs labels with its type",
                'for example labels = ["shell"]',
            )
            return made
        made.append(Made(name, index, {labels[0]: content if isinstance(content, dict) else {}}, local))
    return made
