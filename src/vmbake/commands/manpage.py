"""The man page vmbake(1), in roff, made from the commands, their flags and the template key reference.

`python -m vmbake.commands.docs` writes it to docs/vmbake.1 beside docs/reference.md; a unit test fails when
either file is not current.
"""

from __future__ import annotations

import json
from typing import Any

from vmbake import __version__, reference


def roff(text: str) -> str:
    """Text safe in a roff line: backslashes, dashes, and characters outside ASCII escaped."""
    out = text.replace("\\", "\\e").replace("-", "\\-").replace("`", "")
    out = "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in out)
    if out.startswith((".", "'")):
        out = "\\&" + out
    return out


EXAMPLES = (
    (
        "Bake the shipped bookworm image without the Debian installer:",
        "vmbake build -only=bootstrap bookworm",
    ),
    (
        "Check a Packer template and list what it builds:",
        "vmbake validate packer.json\nvmbake inspect packer.json",
    ),
    (
        "Turn a JSON template into HCL2, then lay the result out:",
        "vmbake hcl2_upgrade packer.json\nvmbake fmt .",
    ),
    ("Evaluate an expression against a template:", "echo 'local.vm_name' | vmbake console bookworm"),
    ("Complete commands, flags and build names in bash:", "source <(vmbake completion bash)"),
)


def _default(value: Any) -> str:
    if value in ("", [], {}, None) or hasattr(value, "__dataclass_fields__"):
        return ""
    return json.dumps(value)


def render() -> str:
    from vmbake.cli import _COMMAND_ARGS, COMMANDS

    lines = [
        f'.TH VMBAKE 1 "" "vmbake {__version__}" "User Commands"',
        ".nh",
        ".SH NAME",
        "vmbake \\- bake minimal Debian VM images from Packer QEMU templates",
        ".SH SYNOPSIS",
        ".B vmbake",
        ".I command",
        "[\\fIflags\\fR] [\\fITEMPLATE\\fR]",
        ".SH DESCRIPTION",
        roff(
            "vmbake runs HashiCorp Packer QEMU templates, JSON and HCL2, as they are, with no Packer binary: "
            "the same keys, the same boot command language and the same step messages. A TEMPLATE is a .json "
            "or .pkr.hcl file, a directory of .pkr.hcl files, or the name of a shipped template (for example "
            "bookworm)."
        ),
        ".PP",
        roff("Flags are Packer's, written -flag or --flag; values as -flag=value or -flag value."),
        ".SH COMMANDS",
    ]
    for name, (desc, flags) in COMMANDS.items():
        args = _COMMAND_ARGS.get(name) or (" TEMPLATE" if name in ("build", "validate", "inspect") else "")
        lines += [".TP", f"\\fBvmbake {roff(name)}\\fR{roff(args)}", roff(desc) + "."]
        for flag in flags:
            arg = {"bool": "", "str": "=\\fIvalue\\fR", "list": "=\\fIvalue\\fR", "int": "=\\fIn\\fR"}[
                flag.kind
            ]
            lines += [".RS", ".TP", f"\\fB\\-{roff(flag.name)}\\fR{arg}", roff(flag.help) + ".", ".RE"]
    lines += [
        ".SH TEMPLATE KEYS",
        roff(
            "The keys of each builder, provisioner and post-processor, from the descriptions beside each field "
            "in the source (the same text as 'vmbake help keys' and docs/reference.md). Keys marked (vmbake) "
            "are vmbake's own."
        ),
    ]
    for title, types in reference.key_tables():
        lines.append(f".SS {roff(title)}")
        for type_name, doc, rows in types:
            lines += [".PP", f"\\fB{roff(type_name)}\\fR" + (f" \\- {roff(doc)}" if doc else "")]
            for key, type_text, default, meta in rows:
                notes = []
                if meta.vmbake:
                    notes.append("vmbake")
                if not meta.supported:
                    notes.append("not yet supported")
                if meta.choices:
                    notes.append("one of " + ", ".join(c for c in meta.choices if c))
                shown = _default(default)
                head = f"\\fB{roff(key)}\\fR ({roff(type_text)}" + (
                    f", default {roff(shown)}" if shown else ""
                )
                body = roff(meta.doc) + (f" ({roff('; '.join(notes))})" if notes else "")
                lines += [".TP", head + ")", body or "\\&"]
    lines += [".SH EXAMPLES"]
    for text, command in EXAMPLES:
        lines += [".PP", roff(text), ".RS", ".nf", roff(command), ".fi", ".RE"]
    lines += [
        ".SH ENVIRONMENT",
        ".TP",
        "\\fBPKR_VAR_\\fIname\\fR",
        roff("Sets the HCL2 variable name, as in Packer."),
        ".TP",
        "\\fBPACKER_LOG\\fR, \\fBPACKER_LOG_PATH\\fR",
        roff("PACKER_LOG=1 writes debug logs to stderr, or to the file PACKER_LOG_PATH names."),
        ".SH EXIT STATUS",
        roff(
            "0 on success; 1 on an error (the message says what went wrong and what to do); 3 when "
            "'vmbake fmt -check' finds a file that is not formatted; 130 when interrupted."
        ),
        ".SH SEE ALSO",
        ".BR packer (1),",
        ".BR qemu-system-x86_64 (1),",
        ".BR mmdebstrap (1)",
    ]
    return "\n".join(lines) + "\n"
