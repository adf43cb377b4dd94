"""The `vmbake` command line: Packer's commands and flags, in single-dash and GNU double-dash form.

Only this module turns errors into exit statuses: a VmbakeError prints "Error: ..." and a hint and exits 1;
a traceback appears only with -debug. Ctrl-C exits 130 once cleanups have run.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from vmbake import __version__, build, run_image, verify
from vmbake.cancel import cancel_on_signals
from vmbake.errors import BuildCancelled, Problem, TemplateError, UsageError, VmbakeError
from vmbake.state import Options
from vmbake.template import load_template
from vmbake.template.inspect import inspect_lines
from vmbake.template.model import Template
from vmbake.template.variables import parse_var_flag
from vmbake.ui import BuildUi, MaskingFilter, Ui, mask_logged_secrets

ON_ERROR = ("cleanup", "abort", "ask", "run-cleanup-provisioner")


@dataclass(frozen=True)
class Flag:
    name: str
    kind: str  # "bool", "str", "list" (repeatable), "int"
    help: str


COMMON_TEMPLATE = [
    Flag("only", "str", "Build only the named builds (comma list, globs)"),
    Flag("except", "str", "Build all builds and post-processors but the named ones (comma list, globs)"),
    Flag("var", "list", "Set a variable: -var 'name=value' (repeatable)"),
    Flag("var-file", "list", "Read variables from a JSON or .pkrvars.hcl file (repeatable)"),
    Flag("machine-readable", "bool", "Print machine-readable output"),
    Flag("debug", "bool", "Debug mode: pause after each step; show tracebacks"),
]

COMMANDS: dict[str, tuple[str, list[Flag]]] = {
    "build": (
        "Build images from a template",
        [
            *COMMON_TEMPLATE,
            Flag("force", "bool", "Remove existing output directories before building"),
            Flag("on-error", "str", "What a failure does: cleanup (default), abort or ask"),
            Flag("timestamp-ui", "bool", "Prefix each output line with a UTC timestamp"),
            Flag("color", "bool", "Colour the output (-color=false turns it off)"),
            Flag("report", "bool", "Write the image report (-report=false turns it off)"),
            Flag("parallel-builds", "int", "How many builds run at once: 0 (default) no limit, 1 one by one"),
            Flag("parallel", "bool", "-parallel=false runs the builds one by one (old Packer flag)"),
        ],
    ),
    "validate": (
        "Check that a template is valid",
        [
            *COMMON_TEMPLATE,
            Flag("syntax-only", "bool", "Only check the syntax, not the configuration"),
        ],
    ),
    "inspect": (
        "Show the variables, builds and provisioners of a template",
        [
            Flag("machine-readable", "bool", "Print machine-readable output"),
            Flag("var", "list", "Set a variable: -var 'name=value' (repeatable)"),
            Flag("var-file", "list", "Read variables from a JSON or .pkrvars.hcl file (repeatable)"),
            Flag("debug", "bool", "Show tracebacks"),
        ],
    ),
    "matrix": (
        "Print the selected builds of templates as JSON for a CI job matrix",
        [f for f in COMMON_TEMPLATE if f.name in ("only", "except", "var", "var-file", "debug")],
    ),
    "fix": (
        "Rewrite the deprecated keys of a JSON template and print it",
        [
            Flag(
                "validate", "bool", "Validate the fixed template (default true; -validate=false turns it off)"
            )
        ],
    ),
    "verify": ("Boot a finished image and check it reaches SSH", []),
    "hcl2_upgrade": (
        "Transform a JSON template into an HCL2 template",
        [
            Flag("output-file", "str", "Write here (default: TEMPLATE with .pkr.hcl appended)"),
            Flag("with-annotations", "bool", "Add comments that explain the HCL2 blocks"),
        ],
    ),
    "fmt": (
        "Rewrite HCL2 files to the canonical format",
        [
            Flag("check", "bool", "Write nothing; exit 3 when a file is not formatted"),
            Flag("diff", "bool", "Print a unified diff of the changes"),
            Flag("write", "bool", "Write the formatted files (-write=false only lists them)"),
            Flag("recursive", "bool", "Also format the files in subdirectories"),
        ],
    ),
    "console": (
        "Evaluate expressions against a template's variables",
        [
            Flag("var", "list", "Set a variable: -var 'name=value' (repeatable)"),
            Flag("var-file", "list", "Read variables from a JSON or .pkrvars.hcl file (repeatable)"),
        ],
    ),
    "init": (
        "Say which plugins Packer would install (vmbake needs none)",
        [Flag("upgrade", "bool", "Accepted for Packer compatibility; nothing is installed")],
    ),
    "completion": ("Print a shell completion script: vmbake completion bash", []),
    "run": (
        "Boot an image on its serial console (or an SSH shell); the image is not changed",
        [
            Flag("persist", "bool", "Boot the image itself, so that the guest's writes are kept"),
            Flag("ssh-key", "str", "Wait for SSH and open a shell with this private key (not the console)"),
            Flag("user", "str", "The user the printed ssh line and -ssh-key log in as (default root)"),
            Flag("firmware", "str", "bios or uefi (default: read from the image's partition table)"),
            Flag("memory", "int", "Memory in MiB (default 1024)"),
            Flag("cpus", "int", "Virtual CPUs (default: as builds, the host's CPUs, at most 4)"),
            Flag("debug", "bool", "Show tracebacks"),
        ],
    ),
    "version": ("Print the vmbake version", []),
    "help": ("Show help for a command", []),
}


_COMMAND_ARGS = {
    "hcl2_upgrade": " TEMPLATE.json",
    "fmt": " PATH",
    "console": " [TEMPLATE]",
    "init": " [TEMPLATE]",
    "completion": " bash",
    "matrix": " TEMPLATE...",
}


@dataclass
class Parsed:
    values: dict[str, Any] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)


def _bool(text: str, name: str) -> bool:
    low = text.lower()
    if low in ("1", "t", "true", "yes", "on"):
        return True
    if low in ("0", "f", "false", "no", "off"):
        return False
    raise UsageError(f"invalid value {text!r} for flag -{name}", hint="use true or false")


def parse_flags(command: str, argv: Sequence[str]) -> Parsed:
    """Flags of `command` in Packer's (-flag, -flag=v, -flag v) or GNU (--flag) form, then positionals."""
    flags = {f.name: f for f in COMMANDS[command][1]}
    out = Parsed()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.args += argv[i + 1 :]
            break
        if not arg.startswith("-") or arg == "-":
            out.args.append(arg)
            i += 1
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        if name in ("h", "help"):
            raise _HelpRequested(command)
        flag = flags.get(name)
        if flag is None:
            known = " ".join("-" + f for f in flags) or "none"
            raise UsageError(
                f"flag provided but not defined: {arg.split('=')[0]}",
                hint=f"flags of 'vmbake {command}': {known}",
            )
        if flag.kind == "bool":
            out.values[name] = _bool(value, name) if eq else True
            i += 1
            continue
        if not eq:
            if i + 1 >= len(argv):
                raise UsageError(f"flag needs an argument: -{name}", hint=flag.help)
            value = argv[i + 1]
            i += 1
        i += 1
        if flag.kind == "list":
            out.values.setdefault(name, []).append(value)
        elif flag.kind == "int":
            try:
                out.values[name] = int(value)
            except ValueError:
                raise UsageError(
                    f"invalid value {value!r} for flag -{name}", hint="use a whole number"
                ) from None
        else:
            out.values[name] = value
    return out


class _HelpRequested(Exception):
    def __init__(self, command: str) -> None:
        super().__init__(command)
        self.command = command


def _csv(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _usage() -> str:
    lines = ["Usage: vmbake [--version] [--help] <command> [args]", "", "Available commands are:"]
    lines += [f"    {name:<12} {desc}" for name, (desc, _) in COMMANDS.items()]
    lines += [
        "",
        "'vmbake help CMD' shows a command's flags, 'vmbake help keys [TYPE]' the template keys,",
        "'vmbake help template' the template language.",
    ]
    return "\n".join(lines)


def command_help(command: str) -> str:
    desc, flags = COMMANDS[command]
    target = _COMMAND_ARGS.get(command) or (
        " TEMPLATE"
        if command in ("build", "validate", "inspect", "fix")
        else " IMAGE"
        if command in ("verify", "run")
        else ""
    )
    lines = [f"Usage: vmbake {command} [options]{target}", "", f"  {desc}."]
    if command in ("build", "validate", "inspect"):
        lines += [
            "",
            "  TEMPLATE is a .json or .pkr.hcl file, a directory of .pkr.hcl files, or the name",
            "  of a shipped template (for example bookworm).",
        ]
    if command == "verify":
        # verify parses its own flags; its module docstring is their reference.
        doc = verify.__doc__ or ""
        if "Usage: " in doc:
            lines += ["", "  " + doc.split("Usage: ", 1)[1].strip().replace("\n", "\n  ")]
    if command == "run":
        lines += ["", "  Ctrl-] ends the VM (Ctrl-C goes to the guest); so does a poweroff in the guest."]
    if flags:
        lines += ["", "Options:", ""]
        for f in flags:
            arg = {"bool": "", "str": "=VALUE", "list": "=VALUE", "int": "=N"}[f.kind]
            lines.append(f"  -{f.name + arg:<22} {f.help}")
        lines += ["", "  Flags may be written -flag or --flag; values as -flag=value or -flag value."]
    return "\n".join(lines)


def key_reference(name: str = "") -> str:
    """`vmbake help keys [TYPE]`: the key reference, whole or for one builder, provisioner or post-processor."""
    from vmbake import reference, registry

    text = reference.render()
    if not name:
        return text
    classes = {n: registry.builder_class(n) for n in registry.builder_types()}
    classes.update(registry.PROVISIONERS)
    classes.update(registry.POST_PROCESSORS)
    by_class = {cls.__name__: n for n, cls in classes.items() if cls is not None}
    type_name = by_class.get(name, name)
    start = text.find(f"### `{type_name}`")
    if start < 0:
        raise UsageError(f"no keys for {name!r}", hint="types: " + ", ".join(classes))
    ends = [i for i in (text.find("\n### `", start + 1), text.find("\n## ", start + 1)) if i > 0]
    return text[start : min(ends)] + "\n" if ends else text[start:]


def _variables(parsed: Parsed) -> dict[str, str]:
    variables: dict[str, str] = {}
    for text in parsed.values.get("var", []):
        try:
            key, value = parse_var_flag(text)
        except ValueError as exc:
            raise UsageError(str(exc), hint="write -var 'name=value'") from None
        variables[key] = value
    return variables


def _template_from(parsed: Parsed, command: str, *, check: bool = True) -> Template:
    if len(parsed.args) != 1:
        raise UsageError(
            f"'vmbake {command}' takes exactly one TEMPLATE argument, got {len(parsed.args)}",
            hint=f"run 'vmbake help {command}'",
        )
    variables = _variables(parsed)
    return load_template(
        parsed.args[0],
        vars=variables,
        var_files=[Path(p) for p in parsed.values.get("var-file", [])],
        only=_csv(parsed.values.get("only")),
        except_=_csv(parsed.values.get("except")),
        check=check,
    )


def _warn(ui: Ui, warnings: list[Problem]) -> None:
    for w in warnings:
        ui.error(f"Warning: {w.render()}")


def _make_ui(parsed: Parsed) -> Ui:
    return Ui(
        machine_readable=bool(parsed.values.get("machine-readable")),
        timestamps=bool(parsed.values.get("timestamp-ui")),
        color=False if parsed.values.get("color") is False else None,
        debug=bool(parsed.values.get("debug")),
    )


def cmd_validate(parsed: Parsed) -> int:
    ui = _make_ui(parsed)
    if parsed.values.get("syntax-only"):
        _syntax_only(parsed)
        ui.say("Syntax-only check passed. Everything looks okay.")
        return 0
    template = _template_from(parsed, "validate")
    _warn(ui, template.warnings)
    if template.skipped:
        names = ", ".join(f"{b.name} ({b.type})" for b in template.skipped)
        ui.say(f"Not checked, as vmbake does not run their builder types: {names}")
    ui.machine("", "ui", "say", "Template validated successfully.")
    if not ui.machine_readable:
        ui.say(
            "The configuration is valid." if template.format == "hcl2" else "Template validated successfully."
        )
    return 0


def _syntax_only(parsed: Parsed) -> None:
    """Parse the file only; a syntax error is a TemplateError as usual."""
    try:
        _template_from(parsed, "validate")
    except TemplateError as exc:
        syntax = [p for p in exc.problems if p.message.startswith(("invalid JSON", "invalid HCL"))]
        if syntax:
            raise TemplateError(syntax) from None


def cmd_inspect(parsed: Parsed) -> int:
    ui = _make_ui(parsed)
    try:
        template = _template_from(parsed, "inspect", check=False)
    except TemplateError as exc:
        # Packer inspects a template whose required variables are unset: list them as required.
        missing = [p.key.split(".", 1)[1] for p in exc.problems if p.message.startswith("required variable")]
        if len(missing) != len(exc.problems):
            raise
        parsed.values["var"] = [*parsed.values.get("var", []), *(f"{name}=" for name in missing)]
        template = _template_from(parsed, "inspect", check=False)
        template = template.replace(values={k: v for k, v in template.values.items() if k not in missing})
    if ui.machine_readable:
        for name, var in template.variables.items():
            shown = "<sensitive>" if var.sensitive else str(template.values.get(name, "") or "")
            ui.machine("", "template-variable", name, shown, "1" if var.required else "0")
        for build in template.builds:
            ui.machine("", "template-builder", build.name, build.type)
        for kind in template.provisioner_types:
            ui.machine("", "template-provisioner", kind)
        return 0
    for secret in template.sensitive_values:
        ui.add_secret(secret)
    for line in inspect_lines(template):
        ui.message(line)
    return 0


def cmd_matrix(parsed: Parsed) -> int:
    from vmbake.commands.matrix import build_matrix, render

    if not parsed.args:
        raise UsageError(
            "'vmbake matrix' takes one or more TEMPLATE arguments", hint="run 'vmbake help matrix'"
        )
    variables = _variables(parsed)
    matrix = build_matrix(
        parsed.args,
        vars=variables,
        var_files=[Path(p) for p in parsed.values.get("var-file", [])],
        only=_csv(parsed.values.get("only")),
        except_=_csv(parsed.values.get("except")),
    )
    print(render(matrix))
    return 0


def cmd_build(parsed: Parsed) -> int:
    on_error = parsed.values.get("on-error", "cleanup")
    if on_error not in ON_ERROR:
        raise UsageError(f"invalid -on-error={on_error!r}", hint="use cleanup, abort or ask")
    if on_error == "run-cleanup-provisioner":
        on_error = "cleanup"
    ui = _make_ui(parsed)
    template = _template_from(parsed, "build")
    for secret in template.sensitive_values:
        ui.add_secret(secret)
    _warn(ui, template.warnings)
    options = Options(
        debug=bool(parsed.values.get("debug")),
        force=bool(parsed.values.get("force")),
        on_error=on_error,
        report=parsed.values.get("report", True) is not False,
        parallel_builds=1
        if parsed.values.get("parallel") is False
        else parsed.values.get("parallel-builds", 0),
    )
    return build.run_builds(template, options, ui)


def cmd_fix(parsed: Parsed) -> int:
    """Print the fixed template on stdout (as `packer fix`), then validate it unless -validate=false."""
    from vmbake.template.fix import fix_file, validate_fixed

    if len(parsed.args) != 1:
        raise UsageError("'vmbake fix' takes exactly one TEMPLATE argument", hint="run 'vmbake help fix'")
    path = Path(parsed.args[0])
    fixed = fix_file(path)
    sys.stdout.write(fixed + "\n")
    sys.stdout.flush()
    if parsed.values.get("validate", True) is False:
        return 0
    try:
        validate_fixed(path, fixed)
    except TemplateError as exc:
        raise VmbakeError(
            "the fixed template failed to validate:\n" + "\n".join(p.render() for p in exc.problems),
            hint="line numbers are those of the fixed template printed above; fix the input template",
        ) from None
    return 0


def cmd_verify(args: Sequence[str]) -> int:
    return verify.main(list(args))


def cmd_run(parsed: Parsed) -> int:
    options = run_image.options_from(parsed.values, parsed.args)
    return run_image.run(options, BuildUi(_make_ui(parsed), "run").say)


def _setup_logging() -> None:
    """PACKER_LOG=1 (or VMBAKE_LOG=1) sends debug logs to stderr, or to PACKER_LOG_PATH."""
    flag = os.environ.get("VMBAKE_LOG") or os.environ.get("PACKER_LOG") or ""
    if flag in ("", "0", "false"):
        return
    path = os.environ.get("PACKER_LOG_PATH") or os.environ.get("VMBAKE_LOG_PATH")
    try:
        handler: logging.Handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    except OSError as exc:
        raise VmbakeError(
            f"cannot write the log file PACKER_LOG_PATH={path}: {exc.strerror}",
            hint="set PACKER_LOG_PATH to a file in an existing, writable directory, or unset it to log to stderr",
        ) from None
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())  # sensitive values never reach the log either
    root = logging.getLogger("vmbake")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)


def _print_error(exc: VmbakeError, err: IO[str], debug: bool) -> None:
    if debug:
        err.write(mask_logged_secrets(traceback.format_exc()))
    err.write(mask_logged_secrets(f"Error: {exc.message}\n"))
    if exc.hint:
        err.write(mask_logged_secrets(f"  {exc.hint}\n"))
    err.flush()


def _stop_children() -> None:
    try:
        from vmbake import procs

        procs.stop_all()
    except Exception:  # the exit path must not fail
        logging.getLogger("vmbake").debug("stop_all failed", exc_info=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    out, err = sys.stdout, sys.stderr
    debug = any(
        a.startswith("-") and a.lstrip("-").split("=")[0] == "debug" and not a.endswith("=false")
        for a in args
    )
    try:
        _setup_logging()
    except VmbakeError as exc:
        _print_error(exc, err, debug)
        return 1
    leading: list[str] = []  # Packer accepts -machine-readable before the command too
    while args and args[0].startswith("-") and args[0].lstrip("-") == "machine-readable":
        leading.append(args.pop(0))
    if not args or args[0] in ("-h", "--help", "-help"):
        out.write(_usage() + "\n")
        return 0 if args else 1
    if args[0] in ("--version", "-version", "-v", "version"):
        from vmbake.template.hcl_packer import PACKER_VERSION

        out.write(
            f"vmbake {__version__} (Packer 1.6.6 JSON templates, Packer {PACKER_VERSION} HCL2 language)\n"
        )
        return 0
    command, rest = args[0], args[1:] + leading
    # SIGTERM and SIGHUP cancel the command at every moment, template loading included, as Ctrl-C does.
    with cancel_on_signals(lambda _name: None):
        return _run_command(command, rest, out, err, debug)


def _run_command(command: str, rest: list[str], out: IO[str], err: IO[str], debug: bool) -> int:
    try:
        if command == "help" and rest[:1] == ["template"]:
            from vmbake.template.helptext import TEMPLATE_HELP

            out.write(TEMPLATE_HELP)
            return 0
        if command == "help" and rest[:1] == ["keys"]:
            out.write(key_reference(rest[1] if len(rest) > 1 else ""))
            return 0
        if command == "help":
            target = rest[0] if rest else ""
            if target and target not in COMMANDS:
                raise UsageError(f"unknown command {target!r}", hint="commands: " + ", ".join(COMMANDS))
            out.write((command_help(target) if target else _usage()) + "\n")
            return 0
        if command not in COMMANDS:
            raise UsageError(f"unknown command {command!r}", hint="commands: " + ", ".join(COMMANDS))
        if command == "verify":
            return cmd_verify(rest)
        try:
            parsed = parse_flags(command, rest)
        except _HelpRequested as exc:
            out.write(command_help(exc.command) + "\n")
            return 0
        from vmbake.commands import handlers

        handler = {
            "build": cmd_build,
            "validate": cmd_validate,
            "inspect": cmd_inspect,
            "fix": cmd_fix,
            "run": cmd_run,
            "matrix": cmd_matrix,
            **handlers.HANDLERS,
        }[command]
        return handler(parsed)
    except VmbakeError as exc:
        _print_error(exc, err, debug)
        return 1
    except KeyboardInterrupt:
        _stop_children()
        err.write("Error: interrupted\n")
        return 130
    except BuildCancelled as exc:
        _stop_children()
        err.write(f"Error: {exc}\n")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug: one clear line, the traceback only under -debug
        _stop_children()
        _print_error(
            VmbakeError(
                f"internal error: {exc!r}", hint="run again with -debug for a traceback, and report it"
            ),
            err,
            debug,
        )
        return 1
