"""`vmbake fmt`: rewrite HCL2 files (.pkr.hcl, .pkrvars.hcl) in the canonical layout, as `packer fmt`.

Each file that changes is named on stdout. `-check` writes nothing and exits 3 when a file would change
(Packer's and Terraform's code); `-diff` prints a unified diff; `-write=false` only reports; `-recursive`
descends into subdirectories. `-` formats stdin to stdout.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from vmbake.commands.hclformat import format_hcl
from vmbake.errors import VmbakeError
from vmbake.template.hcl_values import parse_hcl

SUFFIXES = (".pkr.hcl", ".pkrvars.hcl")
CHECK_FAILED = 3


@dataclass(frozen=True)
class FmtOptions:
    check: bool = False
    diff: bool = False
    write: bool = True
    recursive: bool = False


def _ignored(name: str) -> bool:
    """Hidden files and editor leftovers, as Packer skips them."""
    return name.startswith(".") or name.endswith("~") or (name.startswith("#") and name.endswith("#"))


def hcl_files(path: Path, recursive: bool) -> list[Path]:
    """The files `fmt PATH` formats: PATH itself, or the HCL2 files of a directory (and below)."""
    if not path.is_dir():
        if not path.exists():
            raise VmbakeError(
                f"{path}: no such file or directory", hint="give a .pkr.hcl file or a directory"
            )
        if not path.name.endswith(SUFFIXES):
            raise VmbakeError(
                f"file {path} is not a HCL file",
                hint="fmt formats .pkr.hcl and .pkrvars.hcl files; JSON is not",
            )
        return [path]
    found: list[Path] = []
    for entry in sorted(path.iterdir()):
        if _ignored(entry.name):
            continue
        if entry.is_dir():
            if recursive:
                found += hcl_files(entry, recursive)
        elif entry.name.endswith(SUFFIXES):
            found.append(entry)
    return found


def format_text(text: str, name: str) -> str:
    """`text` formatted; a file that does not parse as HCL2 is an error, as in Packer."""
    _, problems = parse_hcl(text, name)
    if problems:
        raise VmbakeError(
            f"encountered an error while formatting {name}: {problems[0].render()}",
            hint="fix the syntax first",
        )
    return format_hcl(text, name)


def unified_diff(old: str, new: str, name: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"old/{name}", f"new/{name}"
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def run_fmt(target: str, options: FmtOptions, out: IO[str] | None = None) -> int:
    """Format `target`; the exit status: 0, or 3 when -check finds a file that would change."""
    out = out or sys.stdout
    if target == "-":
        text = sys.stdin.read()
        out.write(format_text(text, "<stdin>"))
        return 0
    write = options.write and not options.check
    changed = 0
    for path in hcl_files(Path(target), options.recursive):
        try:
            old = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise VmbakeError(f"failed to read {path}: {exc}", hint="check the file") from None
        new = format_text(old, str(path))
        if new == old:
            continue
        changed += 1
        out.write(f"{path}\n")
        if write:
            path.write_text(new, encoding="utf-8")
        if options.diff:
            out.write(unified_diff(old, new, str(path)))
    return CHECK_FAILED if options.check and changed else 0
