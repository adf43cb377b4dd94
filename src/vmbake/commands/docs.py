"""Writes the generated docs: docs/reference.md (the key reference) and docs/vmbake.1 (the man page).

Run `python -m vmbake.commands.docs [DOCS_DIR]` after changing a key description, a command or a flag;
tests/unit/test_commands_docs.py fails while the committed files are not current.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vmbake import reference
from vmbake.commands import manpage


def generated() -> dict[str, str]:
    """File name -> the text it must hold."""
    return {"reference.md": reference.render(), "vmbake.1": manpage.render()}


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else Path(__file__).resolve().parents[3] / "docs"
    for name, text in generated().items():
        (target / name).write_text(text, encoding="utf-8")
        print(f"wrote {target / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
