"""The command-line handlers of hcl2_upgrade, fmt, console, init and completion (cli.py dispatches here)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from vmbake.errors import VmbakeError
from vmbake.template.variables import parse_var_flag

if TYPE_CHECKING:
    from vmbake.cli import Parsed


def _one_arg(parsed: Parsed, command: str, what: str, optional: bool = False) -> str:
    if len(parsed.args) > 1 or (not parsed.args and not optional):
        raise VmbakeError(
            f"'vmbake {command}' takes {'at most ' if optional else 'exactly '}one {what} argument, "
            f"got {len(parsed.args)}",
            hint=f"run 'vmbake help {command}'",
        )
    return parsed.args[0] if parsed.args else ""


def cmd_hcl2_upgrade(parsed: Parsed) -> int:
    from vmbake.commands.upgrade import upgrade_file

    source = Path(_one_arg(parsed, "hcl2_upgrade", "TEMPLATE.json"))
    output = parsed.values.get("output-file")
    target, status = upgrade_file(
        source, Path(output) if output else None, bool(parsed.values.get("with-annotations"))
    )
    print(f"Successfully created {target}. Exit {status}")
    return status


def cmd_fmt(parsed: Parsed) -> int:
    from vmbake.commands.fmt import FmtOptions, run_fmt

    target = _one_arg(parsed, "fmt", "PATH")
    options = FmtOptions(
        check=bool(parsed.values.get("check")),
        diff=bool(parsed.values.get("diff")),
        write=parsed.values.get("write", True) is not False,
        recursive=bool(parsed.values.get("recursive")),
    )
    return run_fmt(target, options)


def cmd_console(parsed: Parsed) -> int:
    from vmbake.commands.console import Console, run_console

    template = _one_arg(parsed, "console", "TEMPLATE", optional=True)
    variables: dict[str, str] = {}
    for text in parsed.values.get("var", []):
        try:
            key, value = parse_var_flag(text)
        except ValueError as exc:
            raise VmbakeError(str(exc), hint="write -var 'name=value'") from None
        variables[key] = value
    files = [Path(p) for p in parsed.values.get("var-file", [])]
    console = Console(template or None, variables, files)
    return run_console(console, None if sys.stdin.isatty() else sys.stdin, sys.stdout, sys.stderr)


def cmd_init(parsed: Parsed) -> int:
    from vmbake.commands.init import init_lines

    template = _one_arg(parsed, "init", "TEMPLATE", optional=True) or "."
    for line in init_lines(template):
        print(line)
    return 0


def cmd_completion(parsed: Parsed) -> int:
    from vmbake.commands.completion import bash_script

    shell = _one_arg(parsed, "completion", "SHELL")
    if shell != "bash":
        raise VmbakeError(f"no completion for shell {shell!r}", hint="vmbake completion bash")
    sys.stdout.write(bash_script())
    return 0


HANDLERS: dict[str, Callable[[Parsed], int]] = {
    "hcl2_upgrade": cmd_hcl2_upgrade,
    "fmt": cmd_fmt,
    "console": cmd_console,
    "init": cmd_init,
    "completion": cmd_completion,
}
