"""Packer's HCL2 functions on plain values: collection, conversion and numeric (strings: hcl_funcs_string).

Values are Python's: str, int/float (HCL's number), bool, None (null), list (tuple/list/set), dict
(object/map). Each function raises ExprError with a message naming itself when its arguments are wrong.
"""

from __future__ import annotations

import itertools
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


def want_list(value: Any, fn: str) -> list[Any]:
    if not isinstance(value, list):
        raise ExprError(f"{fn}: a list is required, got {type_name(value)}")
    return value


def want_map(value: Any, fn: str) -> dict[str, Any]:
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
    seq = want_list(items, "chunklist")
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
        if want_list(arg, "coalescelist"):
            return arg
    raise ExprError("coalescelist: no non-empty list argument")


def _element(items: Any, index: Any) -> Any:
    seq = want_list(items, "element")
    if not seq:
        raise ExprError("element: cannot use element() on an empty list")
    i = integer(index)
    if i < 0:
        raise ExprError("element: the index must not be negative")
    return seq[i % len(seq)]


def _flatten(items: Any) -> list[Any]:
    out: list[Any] = []
    for item in want_list(items, "flatten"):
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _index(items: Any, value: Any) -> int:
    seq = want_list(items, "index")
    if value not in seq:
        raise ExprError(f"index: {value!r} is not in the list")
    return seq.index(value)


def _lookup(mapping: Any, key: Any, *default: Any) -> Any:
    table = want_map(mapping, "lookup")
    if len(default) > 1:
        raise ExprError("lookup: takes a map, a key and at most one default")
    k = text(key)
    if k in table:
        return table[k]
    if default:
        return default[0]
    raise ExprError(f"lookup: no key {k!r} in the map and no default given")


def _matchkeys(values: Any, keys: Any, search: Any) -> list[Any]:
    vals, ks = want_list(values, "matchkeys"), want_list(keys, "matchkeys")
    if len(vals) != len(ks):
        raise ExprError("matchkeys: the values and keys lists must have the same length")
    wanted = want_list(search, "matchkeys")
    return [v for v, k in zip(vals, ks, strict=True) if k in wanted]


def _merge(*maps: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in maps:
        if m is not None:
            out.update(want_map(m, "merge"))
    return out


def _one(items: Any) -> Any:
    seq = want_list(items, "one")
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
    return [list(combo) for combo in itertools.product(*[want_list(s, "setproduct") for s in sets])]


def _slice(items: Any, start: Any, end: Any) -> list[Any]:
    seq = want_list(items, "slice")
    a, b = integer(start), integer(end)
    if a < 0 or b > len(seq) or a > b:
        raise ExprError(f"slice: indexes {a}..{b} are out of range for a list of {len(seq)}")
    return seq[a:b]


def _sort(items: Any) -> list[str]:
    return sorted(text(x) for x in want_list(items, "sort"))


def _sum(items: Any) -> int | float:
    seq = want_list(items, "sum")
    if not seq:
        raise ExprError("sum: cannot sum an empty list")
    return sum(number(x) for x in seq)


def _transpose(mapping: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, values in want_map(mapping, "transpose").items():
        for v in want_list(values, "transpose"):
            out.setdefault(text(v), []).append(key)
    return {k: sorted(v) for k, v in sorted(out.items())}


def _zipmap(keys: Any, values: Any) -> dict[str, Any]:
    ks, vs = want_list(keys, "zipmap"), want_list(values, "zipmap")
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
    return list(value.values()) if isinstance(value, dict) else want_list(value, "tolist")


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
        return {k: convert(v, inner) for k, v in want_map(value, "convert").items()}
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


CORE: dict[str, Callable[..., Any]] = {
    # collection
    "alltrue": lambda xs: all(_tobool(x) for x in want_list(xs, "alltrue")),
    "anytrue": lambda xs: any(_tobool(x) for x in want_list(xs, "anytrue")),
    "chunklist": _chunklist,
    "coalesce": _coalesce,
    "coalescelist": _coalescelist,
    "compact": lambda xs: [x for x in want_list(xs, "compact") if x not in (None, "")],
    "concat": lambda *lists: [x for part in lists for x in want_list(part, "concat")],
    "contains": lambda xs, v: v in want_list(xs, "contains"),
    "distinct": lambda xs: _distinct(want_list(xs, "distinct")),
    "element": _element,
    "flatten": _flatten,
    "index": _index,
    "keys": lambda m: sorted(want_map(m, "keys")),
    "length": _length,
    "lookup": _lookup,
    "matchkeys": _matchkeys,
    "merge": _merge,
    "one": _one,
    "range": _range,
    "reverse": lambda xs: list(reversed(want_list(xs, "reverse"))),
    "setintersection": lambda first, *rest: _sort_set(
        [
            x
            for x in want_list(first, "setintersection")
            if all(x in want_list(r, "setintersection") for r in rest)
        ]
    ),
    "setproduct": _setproduct,
    "setsubtract": lambda a, b: _sort_set(
        [x for x in want_list(a, "setsubtract") if x not in want_list(b, "setsubtract")]
    ),
    "setunion": lambda *sets: _sort_set([x for s in sets for x in want_list(s, "setunion")]),
    "slice": _slice,
    "sort": _sort,
    "sum": _sum,
    "transpose": _transpose,
    "values": lambda m: [v for _k, v in sorted(want_map(m, "values").items())],
    "zipmap": _zipmap,
    # conversion
    "tobool": _tobool,
    "tolist": _tolist,
    "tomap": lambda m: dict(want_map(m, "tomap")),
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
}
