"""The evaluator for the HCL2 expressions of Packer templates.

python-hcl2 hands back expressions as text ("${var.x}") and strings with their quotes ('"a ${var.x}"').
This module evaluates them: references (var, local, path, source, build, data), literals, lists, objects,
indexing, splats (`[*]`, `.*`), arithmetic, comparisons, the conditional operator, `for` expressions,
string templates with directives (hcl_strings) and Packer's function library (hcl_funcs_core,
hcl_funcs_string, hcl_funcs_io, hcl_funcs_fsnet).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vmbake.config.fields import suggest
from vmbake.errors import VmbakeError
from vmbake.files import read_regular_text
from vmbake.template.hcl_errors import ExprError, Unavailable, has_unavailable
from vmbake.template.hcl_funcs_core import CORE, convert
from vmbake.template.hcl_funcs_core import text as _text
from vmbake.template.hcl_funcs_fsnet import FSNET
from vmbake.template.hcl_funcs_io import IO
from vmbake.template.hcl_funcs_string import STRING
from vmbake.template.hcl_strings import matching_brace, parse_template, render

__all__ = ["FUNCTIONS", "Evaluator", "ExprError"]

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<heredoc><<-?[A-Za-z_][\w-]*\n)
    | (?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<str>")
    | (?P<ident>[A-Za-z_][A-Za-z0-9_-]*)
    | (?P<op>=>|==|!=|<=|>=|&&|\|\||\.\.\.|[-+*/%<>!?:.,()\[\]{}=])
    )""",
    re.VERBOSE,
)
Token = tuple[str, Any]
_QUOTED_HEREDOC = re.compile(r"(?P<heredoc><<-?[A-Za-z_][\w-]*\n)")
_OPEN = {"(": ")", "[": "]", "{": "}"}
_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": operator.mod,
}
_LAZY = ("try", "can", "convert", "templatefile")


def _templatefile(path: Any, variables: Any) -> Any:
    """templatefile(path, vars): the file read as a heredoc-style template with only `vars` in scope."""
    if not isinstance(variables, dict):
        raise ExprError("templatefile: the second argument must be a map of variables")
    try:  # a regular file only: a FIFO would block, /dev/zero fill memory
        body = read_regular_text(Path(_text(path)).expanduser(), "templatefile:")
    except VmbakeError as exc:
        raise ExprError(exc.message) from None
    return Evaluator(variables).template(body, escapes=False)


FUNCTIONS: dict[str, Callable[..., Any]] = {**CORE, **STRING, **IO, **FSNET, "templatefile": _templatefile}


class Evaluator:
    """Evaluates one expression against a scope of top-level names (var, local, path, source, build, data)."""

    def __init__(self, scope: Mapping[str, Any]) -> None:
        self.scope = scope
        self.text = ""
        self.tokens: list[Token] = []
        self.pos = 0

    def template(self, body: str, escapes: bool = True) -> Any:
        """A string template body (without quotes); a lone interpolation keeps its value's type."""
        parts = parse_template(body, escapes)
        if len(parts) == 1 and isinstance(parts[0], tuple) and parts[0][0] == "expr":
            return self.expression(parts[0][1])
        return render(parts, lambda text, local: self._child(local).expression(text), _text)

    def expression(self, text: str) -> Any:
        self.text = text
        return self._run(self._lex(text))

    def _child(self, extra: Mapping[str, Any]) -> Evaluator:
        child = Evaluator({**self.scope, **extra} if extra else self.scope)
        child.text = self.text
        return child

    def _run(self, tokens: list[Token]) -> Any:
        self.tokens = tokens
        self.pos = 0
        if not tokens:
            raise ExprError(f"empty expression in {self.text!r}")
        value = self._conditional()
        if self.pos != len(self.tokens):
            raise ExprError(f"unexpected {self.tokens[self.pos][1]!r} in expression {self.text!r}")
        return value

    def _sub(self, tokens: list[Token], extra: Mapping[str, Any] | None = None) -> Any:
        return self._child(extra or {})._run(tokens)

    def _lex(self, text: str) -> list[Token]:
        out: list[Token] = []
        i = 0
        while i < len(text):
            if not text[i:].strip():
                break
            m = _TOKEN.match(text, i)
            if not m:
                raise ExprError(f"cannot read {text[i:].strip()[:20]!r} in expression {text!r}")
            kind = m.lastgroup or ""
            quoted_heredoc = _QUOTED_HEREDOC.match(text, m.end()) if kind == "str" else None
            if quoted_heredoc:
                # python-hcl2 writes a heredoc inside an expression as "<<EOT\n...\nEOT", quotes unescaped.
                i = self._heredoc(text, quoted_heredoc, out, quoted=True)
                continue
            if kind == "str":
                start = m.end()
                j = start
                while j < len(text) and text[j] != '"':
                    if text[j] == "\\":
                        j += 1
                    elif text.startswith("${", j) or text.startswith("%{", j):
                        j = matching_brace(text, j + 2)
                    j += 1
                if j >= len(text):
                    raise ExprError(f"unterminated string in expression {text!r}")
                out.append(("str", text[start:j]))
                i = j + 1
                continue
            if kind == "heredoc":
                i = self._heredoc(text, m, out)
                continue
            out.append((kind, m.group(kind)))
            i = m.end()
        return out

    def _heredoc(self, text: str, m: re.Match[str], out: list[Token], quoted: bool = False) -> int:
        head = m.group("heredoc")
        strip = head.startswith("<<-")
        marker = head.lstrip("<-").strip()
        tail = '"' if quoted else "$"
        end = re.compile(rf"^[ \t]*{re.escape(marker)}[ \t]*{tail}", re.M).search(text, m.end())
        if end is None:
            raise ExprError(f"heredoc <<{marker} has no closing {marker} line")
        lines = text[m.end() : end.start()].splitlines(keepends=True)
        if strip:
            cut = min((len(ln) - len(ln.lstrip(" \t")) for ln in lines if ln.strip()), default=0)
            lines = [ln[cut:] if ln.strip() else ln.lstrip(" \t") for ln in lines]
        out.append(("heredoc", "".join(lines)))
        return end.end()

    # -- token spans, for the parts that are evaluated later, many times, or not at all -------------------
    def _span(self, stops: tuple[str, ...]) -> list[Token]:
        """The tokens of one sub-expression from here up to a depth-0 token in `stops` (ops or keywords)."""
        start = self.pos
        depth = 0
        pending = 0  # '?' still waiting for their ':'
        while self.pos < len(self.tokens):
            kind, tok = self.tokens[self.pos]
            if depth == 0 and tok in stops and kind in ("op", "ident") and not (tok == ":" and pending):
                break
            if kind == "op" and tok in _OPEN:
                depth += 1
            elif kind == "op" and tok in _OPEN.values():
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and kind == "op" and tok == "?":
                pending += 1
            elif depth == 0 and kind == "op" and tok == ":" and pending:
                pending -= 1
            self.pos += 1
        if self.pos == start:
            got = self.tokens[self.pos][1] if self.pos < len(self.tokens) else "the end"
            raise ExprError(f"expected an expression before {got!r} in {self.text!r}")
        return self.tokens[start : self.pos]

    def _peek(self, value: str | None = None) -> bool:
        return self.pos < len(self.tokens) and (value is None or self.tokens[self.pos] == ("op", value))

    def _keyword(self, word: str) -> bool:
        return self.pos < len(self.tokens) and self.tokens[self.pos] == ("ident", word)

    def _take(self, value: str) -> None:
        if not self._peek(value):
            got = self.tokens[self.pos][1] if self.pos < len(self.tokens) else "the end"
            raise ExprError(f"expected {value!r}, got {got!r} in expression {self.text!r}")
        self.pos += 1

    def _conditional(self) -> Any:
        cond = self._binary(0)
        if self._peek("?"):
            self.pos += 1
            if isinstance(cond, Unavailable):
                raise cond.fail()
            if cond in ("true", "false"):
                cond = cond == "true"
            if not isinstance(cond, bool):
                raise ExprError(f"the condition before '?' must be a bool, got {cond!r} in {self.text!r}")
            yes_tokens = self._span((":",))
            self._take(":")
            no_tokens = self._span((",", ":", "if", "=>", "..."))
            return self._sub(yes_tokens if cond else no_tokens)
        return cond

    _LEVELS = (("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="), ("+", "-"), ("*", "/", "%"))

    def _binary(self, level: int) -> Any:
        if level == len(self._LEVELS):
            return self._unary()
        left = self._binary(level + 1)
        while (
            self.pos < len(self.tokens)
            and self.tokens[self.pos][0] == "op"
            and self.tokens[self.pos][1] in self._LEVELS[level]
        ):
            op = self.tokens[self.pos][1]
            self.pos += 1
            right = self._binary(level + 1)
            left = self._apply(op, left, right)
        return left

    def _apply(self, op: str, a: Any, b: Any) -> Any:
        for operand in (a, b):
            if isinstance(operand, Unavailable):
                raise operand.fail()
        if op in ("||", "&&"):
            a, b = (x == "true" if x in ("true", "false") else x for x in (a, b))
            if not isinstance(a, bool) or not isinstance(b, bool):
                raise ExprError(f"{op!r} wants two bools, got {a!r} and {b!r} in {self.text!r}")
            return (a or b) if op == "||" else (a and b)
        if op in ("==", "!="):
            return (a == b) == (op == "==")
        try:
            x = a if isinstance(a, int | float) and not isinstance(a, bool) else float(_text(a))
            y = b if isinstance(b, int | float) and not isinstance(b, bool) else float(_text(b))
            result: Any = _ARITH[op](x, y)
        except (TypeError, ValueError, ExprError, ZeroDivisionError) as exc:
            raise ExprError(f"cannot apply {op!r} to {a!r} and {b!r}: {exc}") from None
        if isinstance(result, float) and result.is_integer() and op != "/":
            return int(result)
        return result

    def _unary(self) -> Any:
        if self._peek("-"):
            self.pos += 1
            value = self._unary()
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ExprError(f"cannot negate {value!r} in {self.text!r}")
            return -value
        if self._peek("!"):
            self.pos += 1
            value = self._unary()
            if not isinstance(value, bool):
                raise ExprError(f"'!' wants a bool, got {value!r} in {self.text!r}")
            return not value
        return self._postfix(self._primary())

    def _index(self, value: Any, index: Any) -> Any:
        try:
            if isinstance(value, dict):
                return value[_text(index)]
            if isinstance(value, list):
                return value[int(_text(index))]
        except (KeyError, IndexError, ValueError, ExprError):
            pass
        raise ExprError(f"no element [{index!r}] in {self.text!r}")

    def _postfix(self, value: Any) -> Any:
        while True:
            if isinstance(value, Unavailable) and (self._peek(".") or self._peek("[")):
                raise value.fail()
            if self._peek("[") and self.tokens[self.pos + 1 : self.pos + 3] == [("op", "*"), ("op", "]")]:
                self.pos += 3
                value = self._splat(value, full=True)
            elif self._peek(".") and self.tokens[self.pos + 1 : self.pos + 2] == [("op", "*")]:
                self.pos += 2
                value = self._splat(value, full=False)
            elif self._peek("["):
                self.pos += 1
                index = self._conditional()
                self._take("]")
                value = self._index(value, index)
            elif (
                self._peek(".") and self.pos + 1 < len(self.tokens) and self.tokens[self.pos + 1][0] == "num"
            ):
                self.pos += 2
                value = self._index(value, self.tokens[self.pos - 1][1])
            elif (
                self._peek(".")
                and self.pos + 1 < len(self.tokens)
                and self.tokens[self.pos + 1][0] == "ident"
            ):
                name = self.tokens[self.pos + 1][1]
                self.pos += 2
                if not isinstance(value, dict) or name not in value:
                    raise ExprError(f"no attribute {name!r} in {self.text!r}")
                value = value[name]
            else:
                return value

    def _splat(self, value: Any, full: bool) -> list[Any]:
        """`list[*].a[0]` applies the traversal after the splat to each element; `.*` only takes attributes."""
        start = self.pos
        while self.pos < len(self.tokens):
            if (
                self._peek(".")
                and self.pos + 1 < len(self.tokens)
                and self.tokens[self.pos + 1][0] in ("ident", "num")
            ):
                self.pos += 2
            elif full and self._peek("["):
                self.pos += 1
                self._span(("]",))
                self._take("]")
            else:
                break
        steps = self.tokens[start : self.pos]
        items = [] if value is None else value if isinstance(value, list) else [value]
        if not steps:
            return list(items)
        out = []
        for item in items:
            child = self._child({})
            child.tokens, child.pos = steps, 0
            out.append(child._postfix(item))
        return out

    def _for(self, closer: str) -> Any:
        """`[for v in coll : body if cond]` and `{for k, v in coll : key => value... if cond}` after the opener."""
        self.pos += 1
        names = [self._ident()]
        if self._peek(","):
            self.pos += 1
            names.append(self._ident())
        if not self._keyword("in"):
            raise ExprError(f"expected 'in' in the for expression {self.text!r}")
        self.pos += 1
        coll = self._sub(self._span((":",)))
        self._take(":")
        key_tokens = self._span(("=>",)) if closer == "}" else []
        if closer == "}":
            self._take("=>")
        body = self._span(("if", closer, "..."))
        group = self._peek("...")
        if group:
            self.pos += 1
        cond = None
        if self._keyword("if"):
            self.pos += 1
            cond = self._span((closer,))
        self._take(closer)
        if isinstance(coll, Unavailable):
            raise coll.fail()
        if isinstance(coll, dict):
            pairs = list(coll.items())
        elif isinstance(coll, list):
            pairs = list(enumerate(coll))
        else:
            raise ExprError(f"a for expression needs a list or map to go over, got {coll!r} in {self.text!r}")
        items: list[Any] = []
        obj: dict[str, Any] = {}
        for k, v in pairs:
            local = {names[0]: v} if len(names) == 1 else {names[0]: k, names[1]: v}
            if cond is not None:
                keep = self._sub(cond, local)
                if not isinstance(keep, bool):
                    raise ExprError(f"the 'if' of a for expression must be a bool, got {keep!r}")
                if not keep:
                    continue
            value = self._sub(body, local)
            if closer == "]":
                items.append(value)
                continue
            key = _text(self._sub(key_tokens, local))
            if group:
                obj.setdefault(key, []).append(value)
            elif key in obj:
                raise ExprError(f"duplicate key {key!r} in a for expression; add '...' to group the values")
            else:
                obj[key] = value
        return items if closer == "]" else obj

    def _ident(self) -> str:
        if self.pos >= len(self.tokens) or self.tokens[self.pos][0] != "ident":
            raise ExprError(f"expected a name in {self.text!r}")
        self.pos += 1
        return str(self.tokens[self.pos - 1][1])

    def _primary(self) -> Any:
        if self.pos >= len(self.tokens):
            raise ExprError(f"expression {self.text!r} ends too early")
        kind, tok = self.tokens[self.pos]
        self.pos += 1
        if kind == "num":
            return float(tok) if any(c in tok for c in ".eE") else int(tok)
        if kind == "str":
            return self._child({}).template(tok)
        if kind == "heredoc":
            return self._child({}).template(tok, escapes=False)
        if kind == "op" and tok == "(":
            value = self._conditional()
            self._take(")")
            return value
        if kind == "op" and tok == "[":
            if self._keyword("for"):
                return self._for("]")
            items = []
            while not self._peek("]"):
                items.append(self._conditional())
                if not self._peek("]"):
                    self._take(",")
            self._take("]")
            return items
        if kind == "op" and tok == "{":
            if self._keyword("for"):
                return self._for("}")
            return self._object()
        if kind == "ident":
            if tok in ("true", "false"):
                return tok == "true"
            if tok == "null":
                return None
            if self._peek("("):
                return self._call(tok)
            if tok not in self.scope:
                raise ExprError(
                    f"unknown name {tok!r} in {self.text!r} (known: {', '.join(sorted(self.scope))})"
                )
            root = self.scope[tok]
            if isinstance(root, dict) and self._peek(".") and self.pos + 1 < len(self.tokens):
                attr = self.tokens[self.pos + 1][1]
                if self.tokens[self.pos + 1][0] == "ident" and attr not in root:
                    known = ", ".join(sorted(root)) or "none"
                    raise ExprError(f"{tok}.{attr} is not defined (defined {tok} names: {known})")
            return root
        raise ExprError(f"unexpected {tok!r} in expression {self.text!r}")

    def _object(self) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        while not self._peek("}"):
            if self.pos >= len(self.tokens):
                raise ExprError(f"unclosed '{{' in expression {self.text!r}")
            key_kind, key_tok = self.tokens[self.pos]
            ahead = self.tokens[self.pos + 1] if self.pos + 1 < len(self.tokens) else ("", "")
            if key_kind == "ident" and ahead in (("op", "="), ("op", ":")):
                key = key_tok
                self.pos += 1
            else:
                key = _text(self._binary(0))
            if self._peek("="):
                self.pos += 1
            else:
                self._take(":")
            obj[key] = self._conditional()
            if self._peek(","):
                self.pos += 1
        self._take("}")
        return obj

    def _call(self, name: str) -> Any:
        self._take("(")
        if name in _LAZY:
            spans: list[list[Token]] = []
            while not self._peek(")"):
                spans.append(self._span((",", ")")))
                if not self._peek(")"):
                    self._take(",")
            self._take(")")
            return self._lazy_call(name, spans)
        args = []
        while not self._peek(")"):
            args.append(self._conditional())
            if self._peek("..."):
                self.pos += 1
                spread = args.pop()
                if not isinstance(spread, list):
                    raise ExprError(f"'...' after an argument of {name}() wants a list, got {spread!r}")
                args.extend(spread)
            if not self._peek(")"):
                self._take(",")
        self._take(")")
        for arg in args:
            if isinstance(arg, Unavailable):
                raise arg.fail()
        fn = FUNCTIONS.get(name)
        if fn is None:
            hint = suggest(name, sorted(FUNCTIONS))
            raise ExprError(
                f"function {name!r} is not one of Packer's HCL2 functions" + (f" ({hint})" if hint else "")
            )
        try:
            return fn(*args)
        except ExprError as exc:
            message = str(exc)
            raise ExprError(message if message.startswith(name) else f"{name}(): {message}") from None
        except (TypeError, ValueError, ArithmeticError, OverflowError, KeyError, IndexError) as exc:
            raise ExprError(f"{name}(): {exc}") from None

    def _lazy_call(self, name: str, spans: list[list[Token]]) -> Any:
        """try() and can() catch their arguments' errors; convert() reads a type; templatefile() a file."""
        if name == "try":
            errors = []
            for span in spans:
                try:
                    value = self._sub(span)
                except ExprError as exc:
                    errors.append(str(exc))
                    continue
                if not has_unavailable(value):
                    return value
                errors.append("the value comes from a data source vmbake does not run")
            raise ExprError("try(): no argument could be evaluated: " + "; ".join(errors))
        if name == "can":
            if len(spans) != 1:
                raise ExprError("can() takes one expression")
            try:
                return not has_unavailable(self._sub(spans[0]))
            except ExprError:
                return False
        if name == "convert":
            if len(spans) != 2:
                raise ExprError("convert() takes a value and a type")
            return convert(self._sub(spans[0]), "".join(str(t[1]) for t in spans[1]))
        return _templatefile(*[self._sub(span) for span in spans])
