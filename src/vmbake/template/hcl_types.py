"""HCL2 variable type constraints (`type = list(string)`), and the conversion of a value to one.

Packer reads the constraint with HCL's typeexpr and converts every value given to the variable (its
default, a var file, -var, PKR_VAR_x) with cty's convert package (hashicorp/packer
hcl2template/types.variables.go): a number becomes a string, "2048" a number, "true" a bool, a tuple a
list, an object a map; an object type drops the attributes it does not name and needs the others
(unless `optional(...)`). A value that does not fit is an error naming what was required.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from vmbake.template.hcl_errors import ExprError
from vmbake.template.hcl_expr import Evaluator


class TypeMismatch(ValueError):
    """A type expression that is not one, or a value that does not fit a type (the message says why)."""


@dataclass(frozen=True)
class HclType:
    """One type: `kind` is string, number, bool, any, list, set, map, tuple or object."""

    kind: str
    element: HclType | None = None  # list, set, map
    items: tuple[HclType, ...] = ()  # tuple
    attrs: dict[str, HclType] = field(default_factory=dict)  # object
    optional: frozenset[str] = frozenset()  # object attributes that may be left out
    defaults: dict[str, Any] = field(default_factory=dict)  # optional(T, default): the value left out

    def __str__(self) -> str:
        if self.element is not None:
            return f"{self.kind}({self.element})"
        if self.kind == "tuple":
            return "tuple([" + ", ".join(map(str, self.items)) + "])"
        if self.kind == "object":
            parts = (
                f"{k}=optional({t})" if k in self.optional else f"{k}={t}" for k, t in self.attrs.items()
            )
            return "object({" + ", ".join(parts) + "})"
        return self.kind


ANY = HclType("any")
_PRIMITIVES = ("string", "number", "bool", "any")
_COLLECTIONS = ("list", "set", "map")
_TOKEN = re.compile(r"\s*(?:([A-Za-z_][\w-]*)|(.))", re.DOTALL)


def parse_type(text: str) -> HclType:
    """The type a constraint's text names. Raises TypeMismatch for anything else."""
    found_tokens = [m for m in _TOKEN.finditer(text) if m.group(1) or m.group(2)]
    tokens = [m.group(1) or m.group(2) for m in found_tokens]
    parser = _Parser(tokens, text)
    parser.spans = [(m.start(1) if m.group(1) else m.start(2), m.end()) for m in found_tokens]
    parser.source = text
    found = parser.type()
    if parser.pos != len(tokens):
        raise TypeMismatch(f"unexpected {tokens[parser.pos]!r} in the type {text.strip()!r}")
    return found


class _Parser:
    def __init__(self, tokens: list[str], text: str) -> None:
        self.tokens = tokens
        self.text = text.strip()
        self.pos = 0
        self.spans: list[tuple[int, int]] = []  # where each token is in `source`
        self.source = text

    def _default(self) -> Any:
        """The default expression of optional(T, default): the text up to the closing parenthesis."""
        start = self.spans[self.pos][0] if self.pos < len(self.spans) else len(self.source)
        depth, quoted = 0, False
        while self.pos < len(self.tokens):
            token = self.tokens[self.pos]
            if token == '"':
                quoted = not quoted
            elif not quoted and token in "([{":
                depth += 1
            elif not quoted and token in ")]}":
                if depth == 0:
                    break
                depth -= 1
            self.pos += 1
        end = self.spans[self.pos - 1][1] if self.pos > 0 else start
        try:
            return Evaluator({}).expression(self.source[start:end])
        except ExprError as exc:
            raise TypeMismatch(f"the default of optional() in {self.text!r} is not a value: {exc}") from None

    def _next(self) -> str:
        if self.pos >= len(self.tokens):
            raise TypeMismatch(f"the type {self.text!r} ends too early")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def _expect(self, token: str) -> None:
        got = self._next()
        if got != token:
            raise TypeMismatch(f"expected {token!r} in the type {self.text!r}, found {got!r}")

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def type(self, in_object: bool = False) -> HclType:
        name = self._next()
        if name in _PRIMITIVES:
            return HclType(name)
        if name in _COLLECTIONS:
            if self._peek() != "(":  # a bare `list` or `map` means list(any)/map(any), as in HCL
                return HclType(name, element=ANY)
            self._expect("(")
            element = self.type()
            self._expect(")")
            return HclType(name, element=element)
        if name == "tuple":
            self._expect("(")
            self._expect("[")
            items: list[HclType] = []
            while self._peek() != "]":
                items.append(self.type())
                if self._peek() == ",":
                    self._next()
            self._expect("]")
            self._expect(")")
            return HclType("tuple", items=tuple(items))
        if name == "object":
            self._expect("(")
            self._expect("{")
            attrs: dict[str, HclType] = {}
            optional: set[str] = set()
            defaults: dict[str, Any] = {}
            while self._peek() != "}":
                key = self._next()
                if key == '"':  # a quoted attribute name
                    key = self._next()
                    self._expect('"')
                self._expect("=")
                if self._peek() == "optional":
                    self._next()
                    self._expect("(")
                    attrs[key] = self.type()
                    if self._peek() == ",":
                        self._next()
                        defaults[key] = convert(self._default(), attrs[key], key)
                    self._expect(")")
                    optional.add(key)
                else:
                    attrs[key] = self.type()
                if self._peek() == ",":
                    self._next()
            self._expect("}")
            self._expect(")")
            return HclType("object", attrs=attrs, optional=frozenset(optional), defaults=defaults)
        raise TypeMismatch(f"{name!r} is not a type")


def _number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "tuple"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def convert(value: Any, want: HclType, path: str = "") -> Any:
    """`value` converted to `want`, as cty converts. Raises TypeMismatch saying what does not fit where."""
    where = f"{path}: " if path else ""
    if value is None or want.kind == "any":
        return value
    kind = want.kind
    if kind == "string":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return _number_text(value)
        if isinstance(value, str):
            return value
        raise TypeMismatch(f"{where}string required, got {_describe(value)}")
    if kind == "number":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise TypeMismatch(f"{where}a number is required, got {value!r}") from None
            return int(number) if re.fullmatch(r"[+-]?\d+", value.strip()) else number
        raise TypeMismatch(f"{where}a number is required, got {_describe(value)}")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise TypeMismatch(f"{where}a bool is required (true or false), got {value!r}")
    if kind in ("list", "set"):
        if not isinstance(value, list):
            raise TypeMismatch(f"{where}a {kind} is required, got {_describe(value)}")
        assert want.element is not None
        items = [convert(v, want.element, f"{path}[{i}]") for i, v in enumerate(value)]
        if kind == "set":
            unique: list[Any] = []
            for item in items:
                if item not in unique:
                    unique.append(item)
            return unique
        return items
    if kind == "map":
        if not isinstance(value, dict):
            raise TypeMismatch(f"{where}a map is required, got {_describe(value)}")
        assert want.element is not None
        return {k: convert(v, want.element, f"{path}[{k!r}]") for k, v in value.items()}
    if kind == "tuple":
        if not isinstance(value, list):
            raise TypeMismatch(f"{where}a tuple is required, got {_describe(value)}")
        if len(value) != len(want.items):
            raise TypeMismatch(f"{where}a tuple of {len(want.items)} elements is required, got {len(value)}")
        return [convert(v, t, f"{path}[{i}]") for i, (v, t) in enumerate(zip(value, want.items, strict=True))]
    # object
    if not isinstance(value, dict):
        raise TypeMismatch(f"{where}an object is required, got {_describe(value)}")
    out: dict[str, Any] = {}
    for name, attr_type in want.attrs.items():
        sub = f"{path}.{name}" if path else name
        if value.get(name) is None and name in want.defaults:
            out[name] = want.defaults[name]  # typeexpr's defaults fill a missing or null attribute
            continue
        if name not in value:
            if name in want.optional:
                out[name] = None
                continue
            raise TypeMismatch(f"{where}attribute {name!r} is required")
        out[name] = convert(value[name], attr_type, sub)
    return out


def type_of(value: Any) -> HclType:
    """The type of a value, as cty infers it from a literal: a list is a tuple, an object an object."""
    if isinstance(value, bool):
        return HclType("bool")
    if isinstance(value, int | float):
        return HclType("number")
    if isinstance(value, str):
        return HclType("string")
    if isinstance(value, list):
        return HclType("tuple", items=tuple(type_of(v) for v in value))
    if isinstance(value, dict):
        return HclType("object", attrs={k: type_of(v) for k, v in value.items()})
    return ANY
