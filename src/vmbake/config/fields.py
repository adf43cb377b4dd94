"""One table drives the keys: each dataclass field carries its default, description and checks.

`opt()` declares a key. `Decoder.decode()` turns a template's mapping into the dataclass, collecting every
problem (unknown key, wrong type, bad duration or size, value not in `choices`) with its key path, instead
of stopping at the first. `describe()` lists the keys for documentation.

A duration key (`kind="duration"`) holds float seconds and a size key (`kind="size"`) int bytes: the
template's text ("1m30s", "40G", a bare 5120 for MiB) is decoded once here, and nothing parses it again.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, Union

from vmbake.config.weak import is_deprecated, is_legacy_json, weak_duration, weak_list, weak_map, weak_scalar
from vmbake.errors import Problem
from vmbake.units import LONGEST_WAIT, parse_duration, parse_size

MAX_DURATION = LONGEST_WAIT

T = TypeVar("T")


@dataclass(frozen=True)
class FieldMeta:
    """What vmbake knows about one key besides its type and default."""

    doc: str
    kind: str | None = None  # "duration" (float seconds) or "size" (int bytes), decoded when loaded
    choices: tuple[str, ...] = ()
    supported: bool = True  # False: accepted, but vmbake does not act on it yet (a warning says so)
    vmbake: bool = False  # True: a vmbake key that Packer does not have
    sensitive: bool = False  # never printed
    minimum: int | None = None
    maximum: int | None = None
    runtime: bool = False  # holds run-time placeholders such as {{ .HTTPIP }}; rendered during the build
    written: str = ""  # a duration's or size's default as Packer writes it ("5m", "40960M"), for the docs
    zero_is_default: bool = False  # a duration or size of 0 means the default, as Packer reads this key


MEASURES = ("duration", "size")


def measure(kind: str, text: str, *, zero: bool = False) -> float | int:
    """The number in a duration (seconds) or size (bytes: a bare number is MiB, as Packer reads
    disk_size). Raises ValueError with the reason; the limits are vmbake's. A size of 0 is taken only
    with `zero` (a key where 0 means the default)."""
    if kind == "duration":
        seconds = parse_duration(text)
        if abs(seconds) > MAX_DURATION:
            raise ValueError(f"{text!r} is longer than a year")  # and too long for thread timeouts
        return seconds
    nbytes = parse_size(text)
    if nbytes < 0 or (nbytes == 0 and not zero):
        raise ValueError("must be greater than zero")
    return nbytes


def opt(
    default: Any = dataclasses.MISSING,
    doc: str = "",
    *,
    factory: Callable[[], Any] | None = None,
    kind: str | None = None,
    choices: tuple[str, ...] = (),
    supported: bool = True,
    vmbake: bool = False,
    sensitive: bool = False,
    minimum: int | None = None,
    maximum: int | None = None,
    runtime: bool = False,
    zero_is_default: bool = False,
) -> Any:
    """Declare a template key. Every key has a one-line description; the reference docs come from it.

    A duration's or size's default is given as Packer writes it ("5m", "40960M"): the field's default is
    its number, and "" leaves the field None (unset)."""
    written = ""
    if kind in MEASURES and isinstance(default, str):
        written = default
        default = measure(kind, default) if default else None
    meta = FieldMeta(
        doc, kind, choices, supported, vmbake, sensitive, minimum, maximum, runtime, written, zero_is_default
    )
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"vmbake": meta})
    return dataclasses.field(default=default, metadata={"vmbake": meta})


def meta_of(field: dataclasses.Field[Any]) -> FieldMeta:
    meta = field.metadata.get("vmbake")
    return meta if isinstance(meta, FieldMeta) else FieldMeta(doc="")


def keys_of(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def describe(cls: type) -> list[tuple[str, str, Any, FieldMeta]]:
    """(key, type name, default, meta) for each key, in declaration order: the reference table."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        meta = meta_of(f)
        if meta.kind in MEASURES:
            default = meta.written  # as the template writes it, not the number
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        type_name = _type_name(hints[f.name])
        if meta.kind in MEASURES:
            type_name = f"list of {meta.kind}" if type_name.startswith("list") else meta.kind
        rows.append((f.name, type_name, default, meta))
    return rows


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _type_name(args[0]) if len(args) == 1 else " or ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "map"
    if dataclasses.is_dataclass(tp):
        return "object"
    return getattr(tp, "__name__", str(tp))


def suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    return f"did you mean {close[0]!r}?" if close else ""


class Decoder:
    """Decode mappings into config dataclasses, collecting problems instead of raising.

    `weak` selects Packer's JSON decoding (see weak.py): a legacy JSON template's keys go through
    mapstructure with WeaklyTypedInput, so "" is a false boolean and "2048" a number. HCL2 templates are
    decoded by cty's conversions instead, which are stricter. By default a `.json` file (not `.pkr.json`,
    which is HCL2's JSON syntax) is decoded weakly.
    """

    def __init__(
        self, file: str, locate: Callable[[str], int | None] | None = None, *, weak: bool | None = None
    ) -> None:
        self.file = file
        self.locate = locate or (lambda _path: None)
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.weak = is_legacy_json(file) if weak is None else weak

    def problem(self, path: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.file, path, message, hint, self.locate(path)))

    def warning(self, path: str, message: str, hint: str = "") -> None:
        self.warnings.append(Problem(self.file, path, message, hint, self.locate(path)))

    def decode(
        self, cls: type[T], data: Mapping[str, Any], path: str, *, ignore: frozenset[str] = frozenset()
    ) -> T:
        """`cls` built from `data`; fields with problems keep their defaults so checking can go on."""
        fields = keys_of(cls)
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for key, raw in data.items():
            key_path = f"{path}.{key}" if path else key
            if key in ignore:
                continue
            if self.weak and key in fields and (raw is None or (raw == "" and hints[key] in (int, float))):
                # mapstructure leaves a field alone when its input is nil (Decoder.decode), and makes ""
                # the zero number (decodeInt, decodeFloat), which Packer's Prepare methods replace by the
                # default (qemu's host_port_min, ssh_port, cpus...): both keep vmbake's default.
                continue
            if key not in fields and self.weak and is_deprecated(cls.__name__, key):
                self.problem(
                    key_path,
                    f"deprecated key {key!r}: Packer refuses it too (Deprecated configuration key)",
                    "run 'vmbake fix TEMPLATE' to rewrite the template, as 'packer fix' does",
                )
                continue
            if key not in fields:
                hint = (
                    suggest(key, list(fields)) or f"see 'vmbake help keys {cls.__name__}' for the valid keys"
                )
                self.problem(key_path, f"unknown key {key!r}", hint)
                continue
            field = fields[key]
            meta = meta_of(field)
            ok, value = self._value(hints[key], raw, key_path, meta)
            if not ok:
                continue
            if self.weak and is_deprecated(cls.__name__, key):
                # still a key (qemu's ssh_host_port_min/max, ssh_wait_timeout): Packer 1.6.6 reads it and
                # warns about the host ports (qemu Config.Prepare); its fix rewrites all three
                self.warning(key_path, f"{key!r} is deprecated", "'vmbake fix TEMPLATE' rewrites it")
            if not meta.supported:
                self.warning(
                    key_path, f"{key!r} is accepted but not yet supported by vmbake; it has no effect"
                )
            values[key] = value
        for name, field in fields.items():
            if (
                name not in values
                and field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                key_path = f"{path}.{name}" if path else name
                self.problem(key_path, f"required key {name!r} is missing", meta_of(field).doc)
                values[name] = _zero(hints[name])
        return cls(**values)

    def _value(self, tp: Any, raw: Any, path: str, meta: FieldMeta) -> tuple[bool, Any]:
        if meta.kind in MEASURES:
            return self._measures(tp, raw, path, meta)
        ok, value = self._convert(tp, raw, path)
        if not ok:
            return False, None
        if meta.choices and isinstance(value, str) and value not in meta.choices and "{{" not in value:
            self.problem(
                path, f"{value!r} is not valid", "valid values: " + ", ".join(repr(c) for c in meta.choices)
            )
            return False, None
        if isinstance(value, int) and not isinstance(value, bool):
            if meta.minimum is not None and value < meta.minimum:
                self.problem(path, f"{value} is below the minimum of {meta.minimum}", meta.doc)
                return False, None
            if meta.maximum is not None and value > meta.maximum:
                self.problem(path, f"{value} is above the maximum of {meta.maximum}", meta.doc)
                return False, None
        return True, value

    def _measures(self, tp: Any, raw: Any, path: str, meta: FieldMeta) -> tuple[bool, Any]:
        """A duration or size key (or a list of them) decoded to its number; (False, None) keeps the
        default, also for "" (which means the default, as it did when these keys were strings)."""
        kind = meta.kind or ""
        if typing.get_origin(tp) is list:
            if self.weak:
                raw = weak_list(raw)
            if isinstance(raw, str):
                raw = [raw]  # Packer accepts a single string where a list is expected
            if not isinstance(raw, list):
                return self._type_problem(path, "a list", raw)
            items = [self._measure(kind, item, f"{path}[{i}]", meta) for i, item in enumerate(raw)]
            if any(item is None for item in items):
                return False, None
            return True, items
        if raw is None and type(None) in typing.get_args(tp):
            return True, None  # HCL2's null: unset
        if isinstance(raw, str) and not raw.strip():
            return False, None
        value = self._measure(kind, raw, path, meta)
        if value == 0 and meta.zero_is_default:
            return False, None  # Packer sets these keys to their default when they are zero
        return value is not None, value

    def _measure(self, kind: str, raw: Any, path: str, meta: FieldMeta) -> float | int | None:
        """One duration or size as a number, or None after reporting the problem."""
        if self.weak and kind == "duration":
            raw = weak_duration(raw)
        ok, text = self._convert(str, raw, path)
        if not ok:
            return None
        if "{{" in text:
            self.problem(
                path,
                f"{text!r} is filled in only during the build, but a {kind} is needed when the template loads",
                f"give the {kind} itself, or a user variable holding it",
            )
            return None
        try:
            return measure(kind, text, zero=meta.zero_is_default)
        except ValueError as exc:
            self.problem(path, str(exc), meta.doc)
            return None

    def _convert(self, tp: Any, raw: Any, path: str) -> tuple[bool, Any]:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (Union, types.UnionType):
            if raw is None and type(None) in args:
                return True, None
            inner = [a for a in args if a is not type(None)]
            for candidate in inner:
                scratch = Decoder(self.file, self.locate, weak=self.weak)
                ok, value = scratch._convert(candidate, raw, path)
                if ok and not scratch.problems:
                    return True, value
            return self._convert(inner[0], raw, path)
        if tp is Any:
            return True, raw
        if self.weak:
            done, value, expected = weak_scalar(tp, raw)
            if done:
                return (True, value) if expected is None else self._type_problem(path, expected, raw)
            if origin is list:
                raw = weak_list(raw)
            elif origin is dict:
                raw = weak_map(raw)
        if tp is bool:
            if isinstance(raw, bool):
                return True, raw
            # Packer decodes JSON weakly: "true"/"false" and 0/1 are booleans too.
            if isinstance(raw, str) and raw.lower() in ("true", "false", "1", "0"):
                return True, raw.lower() in ("true", "1")
            if isinstance(raw, int) and raw in (0, 1):
                return True, bool(raw)
            return self._type_problem(path, "a boolean (true or false)", raw)
        if tp is int:
            number: int | None = None
            if isinstance(raw, int) and not isinstance(raw, bool):
                number = raw
            elif isinstance(raw, float) and raw.is_integer():
                number = int(raw)
            elif isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
                digits = raw.strip()
                if len(digits) > 20:  # longer than any int64, and refused before Python's 4300-digit limit
                    self.problem(path, "number out of range", "give a whole number below 2^63")
                    return False, None
                number = int(digits)
            if number is None:
                return self._type_problem(path, "a whole number", raw)
            return True, number
        if tp is float:
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                return True, float(raw)
            return self._type_problem(path, "a number", raw)
        if tp is str:
            if isinstance(raw, str):
                return True, raw
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                return True, str(raw)
            if isinstance(raw, bool):
                return True, "true" if raw else "false"
            return self._type_problem(path, "a string", raw)
        if origin is list:
            (item_tp,) = args
            if isinstance(raw, str) and item_tp is str:
                return True, [raw]  # Packer accepts a single string where a list is expected
            if not isinstance(raw, list):
                return self._type_problem(path, "a list", raw)
            items = []
            good = True
            for i, item in enumerate(raw):
                ok, value = self._convert(item_tp, item, f"{path}[{i}]")
                good = good and ok
                items.append(value)
            return good, items
        if origin is dict:
            _key_tp, val_tp = args
            if isinstance(raw, list) and all(isinstance(x, dict) for x in raw):
                merged: dict[str, Any] = {}
                for x in raw:
                    merged.update(x)
                raw = merged
            if not isinstance(raw, dict):
                return self._type_problem(path, "a map of keys to values", raw)
            out = {}
            good = True
            for k, v in raw.items():
                ok, value = self._convert(val_tp, v, f"{path}.{k}")
                good = good and ok
                out[str(k)] = value
            return good, out
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            if not isinstance(raw, dict):
                return self._type_problem(path, "an object", raw)
            before = len(self.problems)
            value = self.decode(tp, raw, path)
            return len(self.problems) == before, value
        return self._type_problem(path, f"a {_type_name(tp)}", raw)

    def _type_problem(self, path: str, expected: str, raw: Any) -> tuple[bool, Any]:
        shown = repr(raw)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        self.problem(path, f"expected {expected}, got {_json_type(raw)} {shown}")
        return False, None


def _json_type(raw: Any) -> str:
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return "boolean"
    if isinstance(raw, int | float):
        return "number"
    if isinstance(raw, str):
        return "string"
    if isinstance(raw, list):
        return "list"
    if isinstance(raw, dict):
        return "object"
    return type(raw).__name__


def _zero(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if tp is str:
        return ""
    if tp is int:
        return 0
    if tp is bool:
        return False
    if origin is list:
        return []
    if origin is dict:
        return {}
    return None
