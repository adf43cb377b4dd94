"""Packer's HCL2 string functions, with Go's fmt verbs (format) and Go's RE2 regular expressions.

Regular expressions follow Go's RE2 syntax where Python's `re` differs (see `go_regex`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from vmbake.template.hcl_errors import ExprError
from vmbake.template.hcl_funcs_core import integer, number, text, want_list

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
    return text(sep).join(text(x) for items in lists for x in want_list(items, "join"))


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


STRING: dict[str, Callable[..., Any]] = {
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
