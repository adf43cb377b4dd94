"""Packer's JSON template language: Go text/template actions such as {{ user `x` }} and {{ .HTTPIP }}.

Templates are rendered twice. At load time (`render`) user variables and functions are filled in, while
actions that read a run-time field (`{{ .HTTPIP }}`, `{{ .Path }}`) or the `build` function are kept for
the build (an `if`, `with` or `range` whose condition reads one is kept whole), with what is known at load
time filled in. During the build, `render_runtime` fills the rest in from the values the steps found.

The text is parsed into a tree (gotemplate_parse) and evaluated here with Go's rules: `if`/`else if`/`else`,
`with`, `range` with `break`/`continue`, variables (`$x := ...`, `$x = ...`), pipelines, parenthesised
pipelines, Go's built-in functions (gotemplate_funcs) and Packer's own (packer_funcs).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from vmbake.errors import VmbakeError
from vmbake.template.gotemplate_funcs import BUILTINS, SHORT_CIRCUIT, to_text, truth
from vmbake.template.gotemplate_parse import (
    Action,
    Branch,
    Command,
    Field,
    Ident,
    Jump,
    Literal,
    Node,
    Pipe,
    TemplateSyntaxError,
    Text,
    Var,
    parse,
)
from vmbake.template.packer_funcs import FUNCTIONS, Defer, Pending, RenderContext

__all__ = ["FUNCTIONS", "Pending", "RenderContext", "TemplateSyntaxError", "render", "render_runtime"]


class _Jump(Exception):
    """{{break}} or {{continue}}, carrying the text the loop body wrote before it."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind
        self.text = ""


_RUNTIME = object()  # the dot (or a variable) whose value only the build knows


def render(text: str, ctx: RenderContext) -> str:
    """`text` with every action evaluated, except those that must wait for the build (kept verbatim)."""
    if "{{" not in text:
        return text
    dot: Any = _RUNTIME if ctx.fields is None else ctx.fields
    return _Evaluator(ctx, dot).run(parse(text), dot)


class _Evaluator:
    def __init__(self, ctx: RenderContext, top: Any) -> None:
        self.ctx = ctx
        self.vars: list[tuple[str, Any]] = [("$", top)]

    def run(self, nodes: tuple[Node, ...] | list[Node], dot: Any) -> str:
        out: list[str] = []
        for node in nodes:
            try:
                if isinstance(node, Text):
                    out.append(node.text)
                elif isinstance(node, Action):
                    out.append(self._action(node, dot))
                elif isinstance(node, Branch):
                    out.append(self._branch(node, dot))
                elif isinstance(node, Jump):
                    raise _Jump(node.kind)
            except _Jump as jump:
                jump.text = "".join(out) + jump.text
                raise
        return "".join(out)

    def _action(self, node: Action, dot: Any) -> str:
        return self._action_kept(node, dot)[0]

    def _action_kept(self, node: Action, dot: Any) -> tuple[str, bool]:
        """The action's output, and whether it is the action itself, kept for the build."""
        try:
            value = self._pipe(node.pipe, dot, node.source)
        except Defer:
            written = self._written_back(node, dot)
            for name in node.pipe.decl:
                self._set(name, _RUNTIME, declare=not node.pipe.assign, source=node.source)
            return written, True
        if node.pipe.decl:
            self._set(node.pipe.decl[0], value, declare=not node.pipe.assign, source=node.source)
            return "", False
        return to_text(value), False

    def _branch(self, node: Branch, dot: Any) -> str:
        mark = len(self.vars)
        try:
            try:
                value = self._pipe(node.pipe, dot, node.source)
            except Defer:
                return self._partial(node, dot) + node.end_source
            if node.kind == "range":
                return self._range(node, value, dot, mark)
            if node.pipe.decl:
                self._set(node.pipe.decl[0], value, declare=not node.pipe.assign, source=node.source)
            if truth(value):
                return self.run(node.body, value if node.kind == "with" else dot)
            return self.run(node.orelse, dot)
        finally:
            del self.vars[mark:]

    def _written_back(self, node: Action, dot: Any) -> str:
        """An action that waits for the build, with its arguments that can be evaluated now replaced
        by their values (`{{ printf "%s:%s" .HTTPIP (user "port") }}` keeps .HTTPIP, not the user)."""
        cmds = [self._fold(cmd, dot, node.source) for cmd in node.pipe.cmds]
        if cmds == [_print_cmd(c) for c in node.pipe.cmds]:
            return node.source
        decl = ""
        if node.pipe.decl:
            decl = ", ".join(node.pipe.decl) + (" = " if node.pipe.assign else " := ")
        return "{{ " + decl + " | ".join(cmds) + " }}"

    def _fold(self, cmd: Command, dot: Any, source: str) -> str:
        parts = []
        for i, arg in enumerate(cmd.args):
            literal = None
            if i or not isinstance(arg, Ident):  # a function name in front stays a name
                try:
                    literal = _go_literal(self._arg(arg, dot, source))
                except Defer:
                    literal = None
            if literal is not None and not isinstance(arg, Literal):
                parts.append(literal)
            elif isinstance(arg, Pipe):
                parts.append("(" + " | ".join(self._fold(c, dot, source) for c in arg.cmds) + ")")
            else:
                parts.append(_print_arg(arg))
        return " ".join(parts)

    def _partial(self, node: Branch, dot: Any) -> str:
        """A block whose condition waits for the build, written back (without its {{end}}) with what
        can be evaluated now evaluated: {{user}} values are only known at load time."""
        mark = len(self.vars)
        for name in node.pipe.decl:
            self.vars.append((name, _RUNTIME))
        try:
            inner_dot = _RUNTIME if node.kind in ("with", "range") else dot
            text = node.opener + self._partial_list(node.body, inner_dot)
        finally:
            del self.vars[mark:]
        if node.chained:
            return text + self._partial(node.orelse[0], dot)
        if node.else_source:
            return text + node.else_source + self._partial_list(node.orelse, dot)
        return text

    def _partial_list(self, nodes: tuple[Node, ...], dot: Any) -> str:
        out: list[str] = []
        for node in nodes:
            if isinstance(node, Text | Jump):
                out.append(node.text if isinstance(node, Text) else node.source)
            elif isinstance(node, Action) and node.pipe.decl:
                out.append(self._partial_declaration(node, dot))
            elif isinstance(node, Action):
                text, kept = self._action_kept(node, dot)
                out.append(text if kept else _literal_action(text))
            else:
                mark = len(self.vars)
                try:
                    out.append(self._branch(node, dot))
                except _Jump as jump:  # the {{break}} of a loop that only the build runs: keep it
                    del self.vars[mark:]
                    out.append(jump.text + "{{" + jump.kind + "}}")
        return "".join(out)

    def _partial_declaration(self, node: Action, dot: Any) -> str:
        """`{{ $x := user "a" }}` written back as `{{ $x := "value" }}`, so that the build still has $x."""
        try:
            value = self._pipe(node.pipe, dot, node.source)
        except Defer:
            value = _RUNTIME
        literal = _go_literal(value)
        for name in node.pipe.decl:
            self._set(name, _RUNTIME, declare=not node.pipe.assign, source=node.source)
        if literal is None:
            return node.source
        return "{{ " + node.pipe.decl[0] + (" = " if node.pipe.assign else " := ") + literal + " }}"

    def _range(self, node: Branch, value: Any, dot: Any, mark: int) -> str:
        if isinstance(value, Mapping):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, list | tuple):
            items = list(enumerate(value))
        elif value is None:
            items = []
        else:
            raise TemplateSyntaxError(f"range can't iterate over {to_text(value)} in {node.source}")
        if not items:
            return self.run(node.orelse, dot)
        out: list[str] = []
        for key, item in items:
            del self.vars[mark:]
            names = node.pipe.decl
            if len(names) == 1:
                self._set(names[0], item, declare=not node.pipe.assign, source=node.source)
            elif len(names) == 2:
                self._set(names[0], key, declare=not node.pipe.assign, source=node.source)
                self._set(names[1], item, declare=not node.pipe.assign, source=node.source)
            try:
                out.append(self.run(node.body, item))
            except _Jump as jump:
                out.append(jump.text)
                if jump.kind == "break":
                    break
        return "".join(out)

    def _set(self, name: str, value: Any, *, declare: bool, source: str) -> None:
        if declare:
            self.vars.append((name, value))
            return
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise TemplateSyntaxError(f"undefined variable: {name} in {source}")

    def _var(self, name: str, source: str) -> Any:
        for var, value in reversed(self.vars):
            if var == name:
                if value is _RUNTIME:
                    raise Defer()
                return value
        raise TemplateSyntaxError(f"undefined variable: {name} in {source}")

    def _pipe(self, pipe: Pipe, dot: Any, source: str) -> Any:
        value: Any = _NOTHING
        for cmd in pipe.cmds:
            value = self._command(cmd, dot, source, value)
        return value

    def _command(self, cmd: Command, dot: Any, source: str, piped: Any) -> Any:
        head = cmd.args[0]
        if isinstance(head, Ident):
            return self._call(head.name, cmd.args[1:], dot, source, piped)
        if len(cmd.args) > 1 or piped is not _NOTHING:
            raise TemplateSyntaxError(f"can't give argument to non-function {_shown(head)} in {source}")
        return self._arg(head, dot, source)

    def _arg(self, arg: Any, dot: Any, source: str) -> Any:
        if isinstance(arg, Literal):
            return arg.value
        if isinstance(arg, Field):
            return _field(dot, arg.names, source, self.ctx)
        if isinstance(arg, Var):
            return _field(self._var(arg.name, source), arg.names, source, self.ctx)
        if isinstance(arg, Ident):
            return self._call(arg.name, (), dot, source, _NOTHING)
        if isinstance(arg, Pipe):
            return self._pipe(arg, dot, source)
        raise TemplateSyntaxError(f"unexpected {arg!r} in {source}")

    def _call(self, name: str, raw_args: tuple[Any, ...], dot: Any, source: str, piped: Any) -> Any:
        if name in SHORT_CIRCUIT:
            return self._and_or(name, raw_args, dot, source, piped)
        builtin = BUILTINS.get(name)
        packer = FUNCTIONS.get(name)
        if builtin is None and packer is None:
            known = ", ".join(sorted({*FUNCTIONS, *BUILTINS, *SHORT_CIRCUIT} - {"source_name"}))
            raise TemplateSyntaxError(f"function {name!r} is not defined in {source} (known: {known})")
        args = [self._arg(a, dot, source) for a in raw_args]
        if piped is not _NOTHING:
            args.append(piped)
        try:
            return builtin(args) if builtin is not None else packer(self.ctx, args)  # type: ignore[misc]
        except TemplateSyntaxError as exc:
            raise TemplateSyntaxError(
                f"{exc} in {source}" if " in {{" not in str(exc) else str(exc)
            ) from None

    def _and_or(self, name: str, raw_args: tuple[Any, ...], dot: Any, source: str, piped: Any) -> Any:
        count = len(raw_args) + (piped is not _NOTHING)
        if count < 2:
            raise TemplateSyntaxError(f"wrong number of args for {name}: want at least 1 got 0 in {source}")
        value: Any = None
        for i in range(count):
            value = self._arg(raw_args[i], dot, source) if i < len(raw_args) else piped
            if truth(value) != (name == "and"):
                return value
        return value


_NOTHING = object()


def _go_literal(value: Any) -> str | None:
    """`value` as a Go template constant, or None when it has no literal form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes are all valid in a Go interpreted string
    return None


def _print_arg(arg: Any) -> str:
    """An operand as template source."""
    if isinstance(arg, Literal):
        return _go_literal(arg.value) or "nil"
    if isinstance(arg, Field):
        return "." + ".".join(arg.names)
    if isinstance(arg, Var):
        return ".".join((arg.name, *arg.names))
    if isinstance(arg, Ident):
        return arg.name
    return "(" + " | ".join(_print_cmd(c) for c in arg.cmds) + ")"


def _print_cmd(cmd: Command) -> str:
    return " ".join(_print_arg(a) for a in cmd.args)


def _literal_action(text: str) -> str:
    """Evaluated text that goes back into a template: quoted when it would read as an action."""
    return "{{ " + json.dumps(text) + " }}" if "{{" in text else text


def _shown(arg: Any) -> str:
    if isinstance(arg, Literal):
        return repr(arg.value)
    if isinstance(arg, Var):
        return ".".join((arg.name, *arg.names))
    if isinstance(arg, Field):
        return "." + ".".join(arg.names)
    return "(pipeline)"


def _field(value: Any, names: tuple[str, ...], source: str, ctx: RenderContext) -> Any:
    for name in names:
        if value is _RUNTIME:
            raise Defer()
        if isinstance(value, Mapping):
            if name not in value:
                if value is ctx.fields:
                    known = ", ".join("." + k for k in sorted(value)) or "none"
                    raise TemplateSyntaxError(f"{{{{ .{name} }}}} is not available here (available: {known})")
                return None
            value = value[name]
            continue
        raise TemplateSyntaxError(f"can't evaluate field {name} in type {type(value).__name__} in {source}")
    if value is _RUNTIME:
        raise Defer()
    return value


def has_runtime(text: str) -> bool:
    """True when `text` still holds actions for the build to fill in."""
    return "{{" in text


def render_runtime(
    text: str,
    values: Mapping[str, str],
    *,
    build_name: str | None = None,
    build_type: str | None = None,
    source_name: str | None = None,
    build_data: Mapping[str, str] | None = None,
) -> str:
    """Fill the run-time placeholders ({{ .HTTPIP }}, {{ .Path }}, {{ build `X` }} ...) of a loaded value.

    `values` maps field names without the dot (HTTPIP, HTTPPort, Name, SSHPublicKey, ...) to their text;
    `build_data` is what {{ build `X` }} reads (`values` when None). {{ build_name }}, {{ build_type }} and
    {{ source_name }} read the keywords (kept for later when None). vmbake.placeholders says which values
    each place gives. Raises VmbakeError naming the placeholder when a value is missing."""
    ctx = RenderContext(
        fields=values,
        build_name=build_name,
        build_type=build_type,
        source_name=source_name,
        build_data=build_data,
    )
    try:
        return render(text, ctx)
    except TemplateSyntaxError as exc:
        raise VmbakeError(f"cannot fill in {text!r}: {exc}", hint="check the template placeholders") from None


T = TypeVar("T")

# An action that calls `build` ({{ build `Host` }}, {{ build "ID" | upper }}): only such strings are rendered
# again at run time, so that a value holding braces of its own is left alone.
_BUILD_ACTION = re.compile(r"\{\{[^}]*\bbuild\s+[`\"]")


def fill_build_data(config: T, values: Mapping[str, str]) -> T:
    """`config` (a provisioner's or post-processor's frozen dataclass) with every {{ build `X` }} filled in
    from `values`, as Packer fills them when the provisioner runs; other placeholders ({{ .Path }}) are
    kept for the provisioner itself. Raises VmbakeError naming a key the build does not give."""

    def fill(value: Any) -> Any:
        if isinstance(value, str) and _BUILD_ACTION.search(value):
            try:
                return render(value, RenderContext(build_data=values))
            except TemplateSyntaxError as exc:
                raise VmbakeError(
                    f"cannot fill in {value!r}: {exc}", hint="check the template placeholders"
                ) from None
        if isinstance(value, list | tuple):
            items = [fill(v) for v in value]
            same = all(a is b for a, b in zip(items, value, strict=True))
            return value if same else type(value)(items)
        if isinstance(value, dict):
            pairs = {k: fill(v) for k, v in value.items()}
            return value if all(pairs[k] is v for k, v in value.items()) else pairs
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes = {f.name: fill(getattr(value, f.name)) for f in dataclasses.fields(value)}
            changed = {k: v for k, v in changes.items() if v is not getattr(value, k)}
            return dataclasses.replace(value, **changed) if changed else value
        return value

    filled: T = fill(config)
    return filled
