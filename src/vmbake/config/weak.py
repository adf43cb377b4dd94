"""Packer's weakly typed decoding of legacy JSON templates.

Packer 1.6.6 decodes every builder, provisioner and post-processor block of a JSON template with
mapstructure, `WeaklyTypedInput: true` and a hook that splits a string on commas where a list is wanted
(hashicorp/packer v1.6.6 `helper/config/decode.go`, func Decode: `mapstructure.DecoderConfig{...
WeaklyTypedInput: true, DecodeHook: ...StringToSliceHookFunc(",")}`). Each rule below names the
mapstructure function (github.com/mitchellh/mapstructure `mapstructure.go`) that decides it; each was
checked against `packer validate` of Debian's Packer 1.6.6 (the corpus under tests/data/corpus shows them).
JSON numbers reach mapstructure as float64 (Packer reads the template with encoding/json).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

# strconv.ParseBool's words (Go's strconv/atob.go), which mapstructure's decodeBool uses for a string.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})

# strconv.ParseInt(s, 0, 64): an optional sign, then 0x/0o/0b or a leading 0 (octal); with base 0,
# underscores may stand between digits or after a base prefix (Go's strconv/atoi.go, underscoreOK).
_GO_INT = re.compile(
    r"[+-]?(?:0[xX](?:_?[0-9a-fA-F])+|0[bB](?:_?[01])+|0[oO](?:_?[0-7])+|0(?:_?[0-7])*|[1-9](?:_?[0-9])*)"
)
_GO_FLOAT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[iI]nf(?:inity)?|NaN)")


def is_legacy_json(file: str) -> bool:
    """A legacy JSON template (weakly decoded); `.pkr.json` is HCL2 in JSON syntax and is not."""
    return file.endswith(".json") and not file.endswith(".pkr.json")


def go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64), or None where Go refuses it (no spaces, no exponent)."""
    if len(text) > 100 or not _GO_INT.fullmatch(text):
        return None  # longer than any int64 in any base (and than Python's 4300-digit limit allows)
    body = text.replace("_", "")
    sign = -1 if body.startswith("-") else 1
    digits = body.lstrip("+-")
    value = sign * int(digits, 8 if len(digits) > 1 and digits[0] == "0" and digits[1] in "01234567" else 0)
    return value if -(2**63) <= value < 2**63 else None  # ParseInt's "value out of range"


def format_float(value: float) -> str:
    """strconv.FormatFloat(f, 'f', -1, 64): the shortest digits, never an exponent (decodeString)."""
    if value == int(value):
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def weak_scalar(tp: Any, raw: Any) -> tuple[bool, Any, str | None]:
    """(done, value, expected) for a bool, int, float or str target.

    done False: `tp` is not a scalar, or `raw` is already of its type; the strict rules carry on.
    expected not None: the value cannot be converted; it names what was wanted."""
    if tp is bool:
        if isinstance(raw, bool):
            return False, raw, None
        # decodeBool: a number is true when it is not zero; a string through strconv.ParseBool,
        # "" being false ("" is the zero value: `if str == "" { val.SetBool(false) }`).
        if isinstance(raw, int | float):
            return True, raw != 0, None
        if isinstance(raw, str) and (raw in _TRUE or raw in _FALSE or raw == ""):
            return True, raw in _TRUE, None
        return True, None, 'a boolean (true, false, "1", "0", "t", "f" or "")'
    if tp is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return False, raw, None
        # decodeInt: a float is truncated (int64(f)), a bool is 1 or 0, a string goes through
        # strconv.ParseInt(s, 0, 64) and "" is 0.
        if isinstance(raw, bool):
            return True, int(raw), None
        if isinstance(raw, float):
            return True, int(raw), None
        if isinstance(raw, str):
            value = 0 if raw == "" else go_int(raw)
            if value is not None:
                return True, value, None
        return True, None, "a whole number"
    if tp is float:
        if isinstance(raw, float):
            return False, raw, None
        # decodeFloat: an int or a bool (1 or 0) is widened, a string goes through strconv.ParseFloat
        # and "" is 0.
        if isinstance(raw, bool | int) and abs(raw) < 2**1023:
            return True, float(raw), None
        if isinstance(raw, str) and (raw == "" or _GO_FLOAT.fullmatch(raw)):
            return True, float(raw or "0"), None
        return True, None, "a number"
    if tp is str:
        if isinstance(raw, str):
            return False, raw, None
        # decodeString: a bool is "1" or "0", an int is formatted in base 10, a float64 with
        # strconv.FormatFloat(f, 'f', -1, 64); lists and maps are refused.
        if isinstance(raw, bool):
            return True, "1" if raw else "0", None
        if isinstance(raw, int):
            return True, str(raw), None
        if isinstance(raw, float):
            return True, format_float(raw), None
        return True, None, "a string"
    return False, raw, None


def weak_list(raw: Any) -> Any:
    """What mapstructure makes of `raw` where a list is wanted.

    StringToSliceHookFunc(","), which runs first: a string is split on commas ("" is the empty list).
    decodeSlice with WeaklyTypedInput: an empty map is the empty list, and any other single value is
    "lifted" into a list of one."""
    if isinstance(raw, list):
        return raw
    if isinstance(raw, str):
        return [] if raw == "" else raw.split(",")
    if isinstance(raw, dict) and not raw:
        return []
    return [raw]


def weak_map(raw: Any) -> Any:
    """decodeMapFromSlice (WeaklyTypedInput): a list of maps is merged in order into one map."""
    if isinstance(raw, list) and all(isinstance(x, dict) for x in raw):
        merged: dict[str, Any] = {}
        for item in raw:
            merged.update(item)
        return merged
    return raw


def weak_duration(raw: Any) -> Any:
    """A time.Duration is an int64 of nanoseconds: a JSON number (or a bool, 1 or 0) is decoded into it
    by decodeInt, so `"boot_wait": 5` is 5 ns, not 5 s (the string form goes through time.ParseDuration)."""
    if isinstance(raw, bool | int | float):
        return f"{int(raw)}ns"
    return raw


# Keys that Packer's fixers rewrite: where such a key is not (or no longer) a key of the block, Packer
# 1.6.6 refuses it with "Deprecated configuration key: ... Please call `packer fix`" instead of
# "unknown configuration key" (hashicorp/packer v1.6.6 packer-plugin-sdk/template/config/decode.go, the
# md.Unused loop, and deprecated_options.go, generated from each fixer's DeprecatedOptions). The "*"
# list holds for every plugin; the others for one plugin (here: the vmbake config class it maps to).
DEPRECATED_KEYS = frozenset(
    {
        "iso_md5",
        "ssh_key_path",
        "ssh_disable_agent",
        "ssh_host_port_min",
        "ssh_host_port_max",
        "ssh_skip_nat_mapping",
        "ssh_wait_timeout",
        "iso_checksum_url",
        "iso_checksum_type",
    }
)
DEPRECATED_BY_CLASS = {
    "ManifestConfig": frozenset({"filename"}),  # "packer.post-processor.manifest"
    "QemuConfig": frozenset({"ssh_host_port_max", "ssh_host_port_min"}),  # "transcend.qemu"
}


def is_deprecated(class_name: str, key: str) -> bool:
    """True when Packer's `fix` rewrites `key` of a block decoded into `class_name`."""
    return key in DEPRECATED_KEYS or key in DEPRECATED_BY_CLASS.get(class_name, frozenset())
