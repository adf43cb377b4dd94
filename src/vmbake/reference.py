"""The key reference, made from the descriptions beside each config field (docs/reference.md)."""

from __future__ import annotations

import dataclasses
import inspect
import json
from typing import Any

from vmbake import registry
from vmbake.config.fields import describe

_HEADER = """# Template key reference

Made by `vmbake help keys` from the descriptions beside each field in the source; do not edit by hand
(`python -m vmbake.commands.docs` writes it, and the man page `vmbake.1` from the same source). Keys marked **vmbake** are vmbake's own; Packer does not
know them. Keys marked *not yet supported* are accepted so that existing templates load, and `vmbake validate`
says that they have no effect.
"""


def _default(value: Any) -> str:
    if value in ("", [], {}, None):
        return ""
    if hasattr(value, "__dataclass_fields__"):
        return ""
    return f"`{json.dumps(value)}`"


def _groups(cls: type) -> list[tuple[str, type, set[str]]]:
    """The key groups of a config class: one per mixin, in the order the class lists them."""
    groups = []
    for base in cls.__mro__:
        own = set(inspect.get_annotations(base))
        if own and dataclasses.is_dataclass(base):
            groups.append((base.__name__, base, own))
    if len(groups) > 1:
        order = [b for b in cls.__mro__ if b in {g[1] for g in groups}]
        groups.sort(key=lambda g: order.index(g[1]))
    return groups


def _table(cls: type, keys: set[str]) -> list[str]:
    lines = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for key, type_name, default, meta in describe(cls):
        if key not in keys:
            continue
        notes = []
        if meta.vmbake:
            notes.append("**vmbake**")
        if not meta.supported:
            notes.append("*not yet supported*")
        if meta.choices:
            notes.append("one of " + ", ".join(f"`{c}`" for c in meta.choices if c))
        doc = meta.doc.replace("|", "\\|")
        if notes:
            doc += " (" + "; ".join(notes) + ")"
        lines.append(f"| `{key}` | {type_name} | {_default(default)} | {doc} |")
    return lines


def key_tables() -> list[tuple[str, list[tuple[str, str, list[tuple[str, str, Any, Any]]]]]]:
    """The same reference as data, for the man page: (section, [(type, description, rows)]); each row
    is (key, type name, default, FieldMeta)."""
    out = []
    for title, table in (
        ("Builders", {name: registry.builder_class(name) for name in registry.builder_types()}),
        ("Provisioners", dict(registry.PROVISIONERS)),
        ("Post-processors", dict(registry.POST_PROCESSORS)),
    ):
        types = []
        for name, cls in table.items():
            if cls is not None:
                types.append((name, " ".join((cls.__doc__ or "").split()), list(describe(cls))))
        out.append((title, types))
    return out


def render() -> str:
    """The whole reference as Markdown."""
    parts = [_HEADER]
    for title, table in (
        ("Builders", {name: registry.builder_class(name) for name in registry.builder_types()}),
        ("Provisioners", dict(registry.PROVISIONERS)),
        ("Post-processors", dict(registry.POST_PROCESSORS)),
    ):
        parts.append(f"## {title}\n")
        for name, cls in table.items():
            if cls is None:
                continue
            parts.append(f"### `{name}`\n")
            if cls.__doc__:
                parts.append(" ".join(cls.__doc__.split()) + "\n")
            groups = _groups(cls)
            for group_name, base, keys in groups:
                if len(groups) > 1:
                    doc = " ".join((base.__doc__ or "").split())
                    parts.append(
                        f"#### {group_name}\n"
                        + (f"\n{doc}\n" if doc and not doc.startswith(group_name) else "")
                    )
                parts.append("\n".join(_table(cls, keys)) + "\n")
    return "\n".join(parts)
