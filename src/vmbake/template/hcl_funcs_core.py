"""Packer's HCL2 functions on plain values: collection, conversion, numeric and string.

Values are Python's: str, int/float (HCL's number), bool, None (null), list (tuple/list/set), dict
(object/map). Each function raises ExprError with a message naming itself when its arguments are wrong.
Regular expressions follow Go's RE2 syntax where Python's `re` differs (see `go_regex`).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable
from typing import Any

from vmbake.template.hcl_errors import ExprError, Unavailable


def text(value: Any) -> str:
    """A primitive value as HCL converts it to a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if value is None:
        raise ExprError("null value where a string is needed")
    if isinstance(value, Unavailable):
        raise value.fail()
    if isinstance(value, list | dict):
        raise ExprError("a list or map cannot be used where a string is needed")
    return str(value)


def number(value: Any) -> int | float:
    if isinstance(value, bool) or value is None:
        raise ExprError(f"a number is required, got {value!r}")
    if isinstance(value, int | float):
        return value
    try:
        return int(str(value))
    except ValueError:
        try:
            return float(str(value))
        except ValueError:
            raise ExprError(f"cannot convert {value!r} to a number") from None


def integer(value: Any) -> int:
    n = number(value)
    if isinstance(n, float) and not n.is_integer():
        raise ExprError(f"a whole number is required, got {n}")
    return int(n)


def _list(value: Any, fn: str) -> list[Any]:
    if not isinstance(value, list):
        raise ExprError(f"{fn}: a list is required, got {type_name(value)}")
    return value


def _map(value: Any, fn: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ExprError(f"{fn}: a map or object is required, got {type_name(value)}")
    return value


def type_name(value: Any) -> str:
    return {bool: "bool", str: "string", int: "number", float: "number", list: "list", dict: "map"}.get(
        type(value), "null"
    )


def _distinct(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _sort_set(items: list[Any]) -> list[Any]:
    """Sets of strings come back in lexical order, as cty's sets do; other sets keep first-seen order."""
    items = _distinct(items)
    return sorted(items) if all(isinstance(i, str) for i in items) else items


# -- collection --------------------------------------------------------------------------------------------
def _chunklist(items: Any, size: Any) -> list[Any]:
    n = integer(size)
    seq = _list(items, "chunklist")
    if n < 0:
        raise ExprError("chunklist: the chunk size must not be negative")
    if n == 0:
        return [seq]
    return [seq[i : i + n] for i in range(0, len(seq), n)]


def _coalesce(*args: Any) -> Any:
    for arg in args:
        if arg is not None and arg != "":
            return arg
    raise ExprError("coalesce: no non-null, non-empty argument")


def _coalescelist(*args: Any) -> Any:
    for arg in args:
        if _list(arg, "coalescelist"):
            return arg
    raise ExprError("coalescelist: no non-empty list argument")


def _element(items: Any, index: Any) -> Any:
    seq = _list(items, "element")
    if not seq:
        raise ExprError("element: cannot use element() on an empty list")
    i = integer(index)
    if i < 0:
        raise ExprError("element: the index must not be negative")
    return seq[i % len(seq)]


def _flatten(items: Any) -> list[Any]:
    out: list[Any] = []
    for item in _list(items, "flatten"):
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _index(items: Any, value: Any) -> int:
    seq = _list(items, "index")
    if value not in seq:
        raise ExprError(f"index: {value!r} is not in the list")
    return seq.index(value)


def _lookup(mapping: Any, key: Any, *default: Any) -> Any:
    table = _map(mapping, "lookup")
    if len(default) > 1:
        raise ExprError("lookup: takes a map, a key and at most one default")
    k = text(key)
    if k in table:
        return table[k]
    if default:
        return default[0]
    raise ExprError(f"lookup: no key {k!r} in the map and no default given")


def _matchkeys(values: Any, keys: Any, search: Any) -> list[Any]:
    vals, ks = _list(values, "matchkeys"), _list(keys, "matchkeys")
    if len(vals) != len(ks):
        raise ExprError("matchkeys: the values and keys lists must have the same length")
    wanted = _list(search, "matchkeys")
    return [v for v, k in zip(vals, ks, strict=True) if k in wanted]


def _merge(*maps: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in maps:
        if m is not None:
            out.update(_map(m, "merge"))
    return out


def _one(items: Any) -> Any:
    seq = _list(items, "one")
    if len(seq) > 1:
        raise ExprError(f"one: the list has {len(seq)} elements; it must have 0 or 1")
    return seq[0] if seq else None


def _range(*args: Any) -> list[Any]:
    if not 1 <= len(args) <= 3:
        raise ExprError("range: takes 1 to 3 numbers (start, limit, step)")
    nums = [number(a) for a in args]
    start, limit, step = (0, nums[0], 1) if len(nums) == 1 else (*nums[:2], nums[2] if len(nums) == 3 else 1)
    if len(nums) < 3 and limit < start:
        step = -1
    if step == 0:
        raise ExprError("range: the step must not be zero")
    if (step > 0 and limit < start) or (step < 0 and limit > start):
        raise ExprError("range: the step goes away from the limit")
    out: list[Any] = []
    value = start
    while (value < limit) if step > 0 else (value > limit):
        if len(out) >= 1024:
            raise ExprError("range: more than 1024 elements")
        out.append(value)
        value += step
    return out


def _setproduct(*sets: Any) -> list[Any]:
    if len(sets) < 2:
        raise ExprError("setproduct: takes at least two sets")
    return [list(combo) for combo in itertools.product(*[_list(s, "setproduct") for s in sets])]


def _slice(items: Any, start: Any, end: Any) -> list[Any]:
    seq = _list(items, "slice")
    a, b = integer(start), integer(end)
    if a < 0 or b > len(seq) or a > b:
        raise ExprError(f"slice: indexes {a}..{b} are out of range for a list of {len(seq)}")
    return seq[a:b]


def _sort(items: Any) -> list[str]:
    return sorted(text(x) for x in _list(items, "sort"))


def _sum(items: Any) -> int | float:
    seq = _list(items, "sum")
    if not seq:
        raise ExprError("sum: cannot sum an empty list")
    return sum(number(x) for x in seq)


def _transpose(mapping: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, values in _map(mapping, "transpose").items():
        for v in _list(values, "transpose"):
            out.setdefault(text(v), []).append(key)
    return {k: sorted(v) for k, v in sorted(out.items())}


def _zipmap(keys: Any, values: Any) -> dict[str, Any]:
    ks, vs = _list(keys, "zipmap"), _list(values, "zipmap")
    if len(ks) != len(vs):
        raise ExprError("zipmap: the keys and values lists must have the same length")
    return {text(k): v for k, v in zip(ks, vs, strict=True)}


def _length(value: Any) -> int:
    if isinstance(value, str | list | dict):
        return len(value)
    raise ExprError(f"length: wants a string, list or map, got {type_name(value)}")


# -- conversion --------------------------------------------------------------------------------------------
def _tobool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return bool(value)
    if value in ("true", "false"):
        return str(value) == "true"
    raise ExprError(f"tobool: cannot convert {value!r} to bool")


def _tonumber(value: Any) -> int | float | None:
    return None if value is None else number(value)


def _tostring(value: Any) -> str | None:
    return None if value is None else text(value)


def _tolist(value: Any) -> list[Any]:
    return list(value.values()) if isinstance(value, dict) else _list(value, "tolist")


_TYPE_CONVERT: dict[str, Callable[[Any], Any]] = {
    "string": _tostring,
    "number": _tonumber,
    "bool": _tobool,
    "any": lambda v: v,
}


def convert(value: Any, type_text: str) -> Any:
    """`convert(value, type)`, where the type is given as its text (string, list(string), map(number))."""
    kind = type_text.replace(" ", "")
    if kind in _TYPE_CONVERT:
        return _TYPE_CONVERT[kind](value)
    m = re.fullmatch(r"(list|set|tuple|map|object)\((.*)\)", kind)
    if not m:
        raise ExprError(f"convert: unknown type {type_text!r}")
    outer, inner = m.groups()
    if outer in ("list", "set"):
        items = [convert(v, inner) for v in _tolist(value)]
        return _distinct(items) if outer == "set" else items
    if outer == "map":
        return {k: convert(v, inner) for k, v in _map(value, "convert").items()}
    return value  # tuple([...]) and object({...}) keep the value's own shape


# -- numeric -----------------------------------------------------------------------------------------------
def _log(value: Any, base: Any) -> float:
    return math.log(number(value), number(base))


def _parseint(value: Any, base: Any) -> int:
    b = integer(base)
    if not 2 <= b <= 62:
        raise ExprError("parseint: the base must be between 2 and 62")
    digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    s = text(value)
    sign = -1 if s.startswith("-") else 1
    body = s.lstrip("+-")
    if not body:
        raise ExprError(f"parseint: cannot parse {s!r} as a base {b} integer")
    total = 0
    for ch in body:
        d = digits.find(ch) if b > 36 else digits.find(ch.lower())
        if d < 0 or d >= b:
            raise ExprError(f"parseint: cannot parse {s!r} as a base {b} integer")
        total = total * b + d
    return sign * total


def _minmax(pick: Callable[..., Any], name: str) -> Callable[..., Any]:
    def fn(*args: Any) -> Any:
        if not args:
            raise ExprError(f"{name}: needs at least one number")
        return pick(number(a) for a in args)

    return fn


def _signum(value: Any) -> int:
    n = number(value)
    return (n > 0) - (n < 0)


# -- string ------------------------------------------------------------------------------------------------
_POSIX = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7F",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1F\\x7F",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}


def go_regex(pattern: str) -> re.Pattern[str]:
    """A Go RE2 pattern compiled by Python's re.

    Differences handled: `\\z` (end of text) is Python's `\\Z`; POSIX classes `[[:alpha:]]` are expanded.
    Not handled (an error or a different meaning): `\\pL` Unicode classes and `\\C`. Python also accepts
    back-references and look-arounds, which RE2 refuses; a template using them works here and not in Packer.
    """
    translated = pattern.replace("\\z", "\\Z")
    translated = re.sub(r"\[:(\^?)(\w+):\]", lambda m: _posix(m.group(1), m.group(2)), translated)
    try:
        return re.compile(translated)
    except re.error as exc:
        raise ExprError(f"invalid regular expression {pattern!r}: {exc}") from None


def _posix(negate: str, name: str) -> str:
    if name not in _POSIX:
        raise ExprError(f"unknown POSIX class [:{name}:]")
    if negate:
        raise ExprError("negated POSIX classes ([:^name:]) are not supported by vmbake")
    return _POSIX[name]


def _captures(m: re.Match[str]) -> Any:
    rx = m.re
    if rx.groups == 0:
        return m.group(0)
    if rx.groupindex:
        if len(rx.groupindex) != rx.groups:
            raise ExprError("regex: a pattern cannot mix named and unnamed groups")
        return {name: m.group(name) or "" for name in rx.groupindex}
    return [g or "" for g in m.groups()]


def _regex(pattern: Any, string: Any) -> Any:
    m = go_regex(text(pattern)).search(text(string))
    if m is None:
        raise ExprError(f"regex: pattern {pattern!r} does not match {string!r}")
    return _captures(m)


def _regexall(pattern: Any, string: Any) -> list[Any]:
    return [_captures(m) for m in go_regex(text(pattern)).finditer(text(string))]


def go_replacement(template: str) -> str:
    """Go's `$1`, `${1}`, `${name}` and `$$` in a replacement, as Python's `\\g<...>`."""
    out = re.sub(r"\\", r"\\\\", template)
    out = re.sub(
        r"\$(\$|\{(\w+)\}|(\w+))",
        lambda m: "$" if m.group(1) == "$" else f"\\g<{m.group(2) or m.group(3)}>",
        out,
    )
    return out


def _regex_replace(string: Any, pattern: Any, replacement: Any) -> str:
    return go_regex(text(pattern)).sub(go_replacement(text(replacement)), text(string))


def _replace(string: Any, substr: Any, replacement: Any) -> str:
    whole, part = text(string), text(substr)
    if len(part) > 2 and part.startswith("/") and part.endswith("/"):
        return _regex_replace(whole, part[1:-1], replacement)
    return whole.replace(part, text(replacement))


def _substr(string: Any, offset: Any, length: Any) -> str:
    s = text(string)
    start, size = integer(offset), integer(length)
    if start < 0:
        start = max(len(s) + start, 0)
    if start > len(s):
        raise ExprError("substr: the offset is beyond the end of the string")
    return s[start:] if size == -1 else s[start : start + size]


def _trim(string: Any, cutset: Any) -> str:
    return text(string).strip(text(cutset))


def _indent(spaces: Any, string: Any) -> str:
    # Every line but the first, including an empty last one after a final newline (as Terraform's indent).
    return text(string).replace("\n", "\n" + " " * integer(spaces))


def _chomp(string: Any) -> str:
    return re.sub(r"(?:\r\n|\n|\r)+\Z", "", text(string))


def _title(string: Any) -> str:
    return re.sub(r"(?<![\w'])(\w)", lambda m: m.group(1).upper(), text(string))


def _split(sep: Any, string: Any) -> list[str]:
    s, d = text(string), text(sep)
    return s.split(d) if d else list(s)


def _join(sep: Any, *lists: Any) -> str:
    if not lists:
        raise ExprError("join: needs a separator and at least one list")
    return text(sep).join(text(x) for items in lists for x in _list(items, "join"))


_VERB = re.compile(r"%(?:\[(\d+)\])?([-+# 0]*)(\d+|\*)?(?:\.(\d+))?([a-zA-Z%])")


def go_format(fmt: str, *args: Any) -> str:
    """cty's format(): Go's fmt verbs %v %s %q %d %f %e %g %t %x %X %o %b %%, with flags, width, precision."""
    used = 0
    next_arg = 0

    def arg(explicit: str | None) -> Any:
        nonlocal next_arg, used
        index = int(explicit) - 1 if explicit else next_arg
        if not 0 <= index < len(args):
            raise ExprError(f"format: not enough arguments for {fmt!r}")
        next_arg = index + 1
        used = max(used, next_arg)
        return args[index]

    def verb(m: re.Match[str]) -> str:
        explicit, flags, width, precision, kind = m.groups()
        if kind == "%":
            return "%"
        value = arg(explicit)
        body: Any
        if kind == "v":
            body = json.dumps(value, separators=(",", ":")) if isinstance(value, list | dict) else text(value)
            spec = "s"
        elif kind == "s":
            body, spec = text(value), "s"
        elif kind == "q":
            body, spec = json.dumps(text(value)), "s"
        elif kind == "t":
            if not isinstance(value, bool):
                raise ExprError(f"format: %t wants a bool, got {value!r}")
            body, spec = text(value), "s"
        elif kind in "dxXob":
            body, spec = integer(value), kind
        elif kind in "feEgG":
            body, spec = float(number(value)), kind
        else:
            raise ExprError(f"format: unsupported verb %{kind}")
        numeric = kind not in "sqvt"
        if not numeric and precision:
            body = str(body)[: int(precision)]
        # Go pads on the left unless '-'; '0' pads numbers with zeros after the sign.
        align = "<" if "-" in flags else "=" if numeric and "0" in flags else ">"
        sign = ("+" if "+" in flags else " " if " " in flags else "") if numeric else ""
        alt = "#" if numeric and "#" in flags else ""
        zero = "0" if align == "=" else ""
        prec = f".{precision}" if numeric and precision and kind not in "dxXob" else ""
        py = "{:" + align + sign + alt + zero + (width or "") + prec + spec + "}"
        return py.format(body)

    return _VERB.sub(verb, fmt)


def _formatlist(fmt: Any, *args: Any) -> list[str]:
    lengths = {len(a) for a in args if isinstance(a, list)}
    if len(lengths) > 1:
        raise ExprError("formatlist: all list arguments must have the same length")
    count = lengths.pop() if lengths else 1
    return [go_format(text(fmt), *[a[i] if isinstance(a, list) else a for a in args]) for i in range(count)]


def _strcontains(string: Any, substr: Any) -> bool:
    return text(substr) in text(string)


CORE: dict[str, Callable[..., Any]] = {
    # collection
    "alltrue": lambda xs: all(_tobool(x) for x in _list(xs, "alltrue")),
    "anytrue": lambda xs: any(_tobool(x) for x in _list(xs, "anytrue")),
    "chunklist": _chunklist,
    "coalesce": _coalesce,
    "coalescelist": _coalescelist,
    "compact": lambda xs: [x for x in _list(xs, "compact") if x not in (None, "")],
    "concat": lambda *lists: [x for part in lists for x in _list(part, "concat")],
    "contains": lambda xs, v: v in _list(xs, "contains"),
    "distinct": lambda xs: _distinct(_list(xs, "distinct")),
    "element": _element,
    "flatten": _flatten,
    "index": _index,
    "keys": lambda m: sorted(_map(m, "keys")),
    "length": _length,
    "lookup": _lookup,
    "matchkeys": _matchkeys,
    "merge": _merge,
    "one": _one,
    "range": _range,
    "reverse": lambda xs: list(reversed(_list(xs, "reverse"))),
    "setintersection": lambda first, *rest: _sort_set(
        [x for x in _list(first, "setintersection") if all(x in _list(r, "setintersection") for r in rest)]
    ),
    "setproduct": _setproduct,
    "setsubtract": lambda a, b: _sort_set(
        [x for x in _list(a, "setsubtract") if x not in _list(b, "setsubtract")]
    ),
    "setunion": lambda *sets: _sort_set([x for s in sets for x in _list(s, "setunion")]),
    "slice": _slice,
    "sort": _sort,
    "sum": _sum,
    "transpose": _transpose,
    "values": lambda m: [v for _k, v in sorted(_map(m, "values").items())],
    "zipmap": _zipmap,
    # conversion
    "tobool": _tobool,
    "tolist": _tolist,
    "tomap": lambda m: dict(_map(m, "tomap")),
    "tonumber": _tonumber,
    "toset": lambda xs: _sort_set(_tolist(xs)),
    "tostring": _tostring,
    # numeric
    "abs": lambda n: abs(number(n)),
    "ceil": lambda n: math.ceil(number(n)),
    "floor": lambda n: math.floor(number(n)),
    "log": _log,
    "max": _minmax(max, "max"),
    "min": _minmax(min, "min"),
    "parseint": _parseint,
    "pow": lambda a, b: number(a) ** number(b),
    "signum": _signum,
    # string
    "chomp": _chomp,
    "endswith": lambda s, suffix: text(s).endswith(text(suffix)),
    "format": lambda fmt, *args: go_format(text(fmt), *args),
    "formatlist": _formatlist,
    "indent": _indent,
    "join": _join,
    "lower": lambda s: text(s).lower(),
    "regex": _regex,
    "regex_replace": _regex_replace,
    "regexall": _regexall,
    "replace": _replace,
    "split": _split,
    "startswith": lambda s, prefix: text(s).startswith(text(prefix)),
    "strcontains": _strcontains,
    "strrev": lambda s: text(s)[::-1],
    "substr": _substr,
    "title": _title,
    "trim": _trim,
    "trimprefix": lambda s, p: text(s).removeprefix(text(p)),
    "trimspace": lambda s: text(s).strip(),
    "trimsuffix": lambda s, p: text(s).removesuffix(text(p)),
    "upper": lambda s: text(s).upper(),
}
