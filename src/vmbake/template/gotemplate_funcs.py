"""Go text/template's built-in functions and Go's way of printing values, for Packer's JSON templates.

Values are Python's: None (Go's nil), bool, int, float (float64), str, list and dict. The rules are those
of Go 1.19's text/template/funcs.go (the Go of Debian's Packer 1.6.6): `eq` and the order functions refuse
to compare values of different kinds ("incompatible types for comparison"), `len` and `index` count a
string in bytes, and `printf` follows package fmt's verbs.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from vmbake.template.gotemplate_parse import TemplateSyntaxError


def truth(value: Any) -> bool:
    """Go's template truth: false, 0, nil and empty strings, lists and maps are false."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str | list | tuple | dict | Mapping):
        return len(value) > 0
    return True


def go_float(value: float) -> str:
    """A float64 as Go's %v and %g print it: strconv.FormatFloat(f, 'g', -1, 64), the shortest digits,
    in %e form when the exponent is below -4 or at least 6 (1e+06, 1.234567e+06, 123456.5)."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digit_tuple, exp = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exp)  # where the decimal point falls in `digits`
    minus = "-" if sign else ""
    x = point - 1
    if x < -4 or x >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{minus}{mantissa}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if point <= 0:
        return minus + "0." + "0" * -point + digits
    if point >= len(digits):
        return minus + digits + "0" * (point - len(digits))
    return minus + digits[:point] + "." + digits[point:]


def to_text(value: Any) -> str:
    """`value` as an action prints it (fmt's %v)."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(_inner_text(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_inner_text(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _inner_text(value: Any) -> str:
    return "<nil>" if value is None else to_text(value)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "other"


def _eq(args: list[Any]) -> bool:
    if len(args) < 2:
        raise TemplateSyntaxError("error calling eq: missing argument for comparison")
    first = args[0]
    for other in args[1:]:
        if first is None or other is None:
            if first is None and other is None:
                return True
            raise TemplateSyntaxError("error calling eq: invalid type for comparison")
        if _kind(first) != _kind(other):
            raise TemplateSyntaxError("error calling eq: incompatible types for comparison")
        if _kind(first) == "other":
            raise TemplateSyntaxError("error calling eq: invalid type for comparison")
        if first == other:
            return True
    return False


def _ne(args: list[Any]) -> bool:
    if len(args) != 2:
        raise TemplateSyntaxError(f"wrong number of args for ne: want 2 got {len(args)}")
    return not _eq(args)


def _less(name: str, args: list[Any]) -> bool:
    if len(args) != 2:
        raise TemplateSyntaxError(f"wrong number of args for {name}: want 2 got {len(args)}")
    a, b = args
    kind = _kind(a)
    if kind in ("bool", "other") or _kind(b) in ("bool", "other"):
        raise TemplateSyntaxError(f"error calling {name}: invalid type for comparison")
    if kind != _kind(b):
        raise TemplateSyntaxError(f"error calling {name}: incompatible types for comparison")
    result: bool = {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[name]
    return result


def _not(args: list[Any]) -> bool:
    if len(args) != 1:
        raise TemplateSyntaxError(f"wrong number of args for not: want 1 got {len(args)}")
    return not truth(args[0])


def _len(args: list[Any]) -> int:
    if len(args) != 1:
        raise TemplateSyntaxError(f"wrong number of args for len: want 1 got {len(args)}")
    value = args[0]
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, list | tuple | Mapping):
        return len(value)
    raise TemplateSyntaxError(f"error calling len: len of type {_kind(value)}")


def _index(args: list[Any]) -> Any:
    if not args:
        raise TemplateSyntaxError("wrong number of args for index: want at least 1 got 0")
    value = args[0]
    for key in args[1:]:
        if isinstance(value, Mapping):
            value = value.get(str(key))
            continue
        if isinstance(value, str):
            value = value.encode()
        if not isinstance(value, list | tuple | bytes):
            raise TemplateSyntaxError(f"error calling index: can't index item of type {_kind(value)}")
        if not isinstance(key, int) or isinstance(key, bool):
            raise TemplateSyntaxError("error calling index: cannot index slice/array with non-integer")
        if not 0 <= key < len(value):
            raise TemplateSyntaxError(f"error calling index: index out of range: {key}")
        value = value[key]
    return value


def _slice(args: list[Any]) -> Any:
    if not args:
        raise TemplateSyntaxError("wrong number of args for slice: want at least 1 got 0")
    value, bounds = args[0], args[1:]
    if not isinstance(value, str | list) or len(bounds) > (2 if isinstance(value, str) else 3):
        raise TemplateSyntaxError(f"error calling slice: can't slice item of type {_kind(value)}")
    if not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
        raise TemplateSyntaxError("error calling slice: cannot index slice/array with non-integer")
    raw = value.encode() if isinstance(value, str) else value
    start = bounds[0] if bounds else 0
    stop = bounds[1] if len(bounds) > 1 else len(raw)
    if not 0 <= start <= stop <= len(raw):
        raise TemplateSyntaxError(f"error calling slice: index out of range: {stop}")
    part = raw[start:stop]
    return part.decode(errors="replace") if isinstance(part, bytes) else part


def sprint(args: list[Any]) -> str:
    """fmt.Sprint: a space between two operands only when neither is a string."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(_inner_text(arg))
    return "".join(out)


def _println(args: list[Any]) -> str:
    return " ".join(_inner_text(a) for a in args) + "\n"


_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d*))?([a-zA-Z%])")


def sprintf(fmt: str, args: list[Any]) -> str:
    """fmt.Sprintf for the verbs templates use: %v %s %q %d %x %X %o %b %c %e %f %g %t %T and %%."""
    out: list[str] = []
    pos = 0
    used = 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos : m.start()])
        pos = m.end()
        flags, width, precision, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        if used >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[used]
        used += 1
        out.append(_format_one(arg, flags, width, precision, verb))
    out.append(fmt[pos:])
    if used < len(args):
        extra = ", ".join(f"{_go_type(a)}={_inner_text(a)}" for a in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _go_type(value: Any) -> str:
    return {"bool": "bool", "int": "int", "float": "float64", "string": "string"}.get(
        _kind(value), "<nil>" if value is None else type(value).__name__
    )


def _rune(code: int) -> str:
    return chr(code) if 0 <= code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"


def _format_one(arg: Any, flags: str, width: str | None, precision: str | None, verb: str) -> str:
    if len(width or "") > 6 or len(precision or "") > 6:
        return "%!(BADWIDTH)" if len(width or "") > 6 else "%!(BADPREC)"  # fmt's tooLarge: above 1e6
    if isinstance(arg, int) and not isinstance(arg, bool) and not -(2**63) <= arg < 2**63:
        arg = float(arg)  # only a float64 holds it in Go
    align = "<" if "-" in flags else ""
    sign = "+" if "+" in flags else " " if " " in flags else ""
    zero = "0" if "0" in flags and not align else ""
    prec = "." + (precision or "0") if precision is not None else ""
    pad = (align or ">") + (width or "")
    kind = _kind(arg)
    if verb == "T":
        return format(_go_type(arg), pad)
    if verb in "dxXob" and kind == "int":
        alt = "#" if "#" in flags and verb != "d" else ""
        return format(arg, align + sign + alt + zero + (width or "") + ("d" if verb == "d" else verb))
    if verb in "gG" and kind in ("float", "int") and precision is None:
        text = go_float(float(arg))
        return format(text.upper() if verb == "G" else text, pad)
    if verb in "eEfFgG" and kind in ("float", "int"):
        return format(float(arg), align + sign + zero + (width or "") + (prec or ".6") + verb)
    if verb == "v" and kind == "float" and precision is not None:
        return format(format(arg, prec + "g"), pad)
    if verb == "v" or (verb == "s" and kind == "string") or (verb == "t" and kind == "bool"):
        text = _inner_text(arg)
        if verb == "s" and precision is not None:
            text = text[: int(precision or 0)]
        return format(text, pad)
    if verb == "q" and kind == "string":
        return format(json.dumps(arg, ensure_ascii=False), pad)
    if verb == "q" and kind == "int":
        return format("'" + _rune(arg) + "'", pad)
    if verb in "xX" and kind == "string":
        return format(arg.encode().hex().upper() if verb == "X" else arg.encode().hex(), pad)
    if verb == "c" and kind == "int":
        return format(_rune(arg), pad)
    return f"%!{verb}({_go_type(arg)}={_inner_text(arg)})"


def _printf(args: list[Any]) -> str:
    if not args or not isinstance(args[0], str):
        raise TemplateSyntaxError("error calling printf: the first argument must be the format string")
    return sprintf(args[0], args[1:])


def _js(args: list[Any]) -> str:
    text = sprint(args)
    out = []
    for c in text:
        if c in "\\'\"<>&=":
            out.append(f"\\u{ord(c):04X}" if c in "<>&=" else "\\" + c)
        elif ord(c) < 0x20:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


_HTML = {'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\0": "\ufffd"}  # HTMLEscape

BUILTINS: dict[str, Callable[[list[Any]], Any]] = {
    "eq": _eq,
    "ne": _ne,
    "lt": lambda a: _less("lt", a),
    "le": lambda a: _less("le", a),
    "gt": lambda a: _less("gt", a),
    "ge": lambda a: _less("ge", a),
    "not": _not,
    "len": _len,
    "index": _index,
    "slice": _slice,
    "print": sprint,
    "printf": _printf,
    "println": _println,
    "html": lambda a: "".join(_HTML.get(c, c) for c in sprint(a)),
    "urlquery": lambda a: urllib.parse.quote_plus(sprint(a)),
    "js": _js,
}
SHORT_CIRCUIT = frozenset({"and", "or"})  # evaluated by the caller: they stop at the deciding argument
