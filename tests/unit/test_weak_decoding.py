"""Packer's weak typing of JSON templates (config/weak.py): one case per mapstructure rule.

Each expectation was checked with `packer validate` of Debian's Packer 1.6.6 on the same value in a qemu
builder (the corpus under tests/data/corpus holds the templates)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vmbake.config.fields import Decoder, opt
from vmbake.config.weak import format_float, go_int, is_legacy_json
from vmbake.template import load_template
from vmbake.template.jsonpos import JsonSyntaxError, parse


@dataclass(frozen=True)
class Sample:
    flag: bool = opt(False, "a bool")
    count: int = opt(0, "an int")
    ratio: float = opt(0.0, "a float")
    name: str = opt("", "a string")
    names: list[str] = opt(factory=list, doc="a list")
    nested: list[list[str]] = opt(factory=list, doc="a list of lists")
    labels: dict[str, str] = opt(factory=dict, doc="a map")
    wait: float | None = opt("", "a duration", kind="duration")


def decode(weak: bool = True, **raw: Any) -> tuple[Sample, list[str]]:
    decoder = Decoder("t.json", weak=weak)
    value = decoder.decode(Sample, raw, "b")
    return value, [f"{p.key}: {p.message}" for p in decoder.problems]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", False),  # decodeBool: "" is the zero value
        ("1", True),
        ("t", True),
        ("T", True),
        ("TRUE", True),
        ("True", True),
        ("0", False),
        ("f", False),
        ("False", False),
        (2, True),  # a number is true when not zero
        (1.5, True),
        (0, False),
    ],
)
def test_bool_from_string_and_number(raw: Any, expected: bool) -> None:
    assert decode(flag=raw) == (Sample(flag=expected), [])


@pytest.mark.parametrize("raw", ["yes", "on", " true", []])
def test_bool_refused(raw: Any) -> None:
    _, problems = decode(flag=raw)
    assert len(problems) == 1 and problems[0].startswith("b.flag: expected a boolean")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2048", 2048),
        ("", 0),
        ("0x400", 1024),  # strconv.ParseInt(s, 0, 64)
        ("010", 8),  # a leading zero is octal
        ("0b11", 3),
        ("1_000", 1000),
        ("-1", -1),
        (1.9, 1),  # a float is truncated
        (True, 1),
        (2048.0, 2048),
    ],
)
def test_int_rules(raw: Any, expected: int) -> None:
    assert decode(count=raw) == (Sample(count=expected), [])


@pytest.mark.parametrize("raw", ["1e3", " 12", "12 ", "abc", "0x", [1]])
def test_int_refused(raw: Any) -> None:
    _, problems = decode(count=raw)
    assert len(problems) == 1 and "expected a whole number" in problems[0]


@pytest.mark.parametrize(
    ("raw", "expected"), [("1.5", 1.5), ("", 0.0), (2, 2.0), (True, 1.0), ("1e3", 1000.0)]
)
def test_float_rules(raw: Any, expected: float) -> None:
    assert decode(ratio=raw) == (Sample(ratio=expected), [])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (True, "1"),
        (False, "0"),
        (12, "12"),
        (12.5, "12.5"),
        (2048.0, "2048"),
        (1e21, "1000000000000000000000"),
    ],
)
def test_string_rules(raw: Any, expected: str) -> None:
    assert decode(name=raw) == (Sample(name=expected), [])


def test_string_refuses_lists_and_maps() -> None:
    assert decode(name=["a"])[1] == ["b.name: expected a string, got list ['a']"]
    assert decode(name={"a": 1})[1] == ["b.name: expected a string, got object {'a': 1}"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a,b", ["a", "b"]),  # StringToSliceHookFunc(",")
        ("a", ["a"]),
        ("", []),
        ({}, []),  # an empty map is an empty list
        (5, ["5"]),  # any other single value is lifted into a list of one, then decoded weakly
        (["x", 2, True], ["x", "2", "1"]),
    ],
)
def test_list_rules(raw: Any, expected: list[str]) -> None:
    assert decode(names=raw) == (Sample(names=expected), [])


def test_list_of_lists_lifts_twice() -> None:
    assert decode(nested="-m")[0].nested == [["-m"]]
    assert decode(nested=["-m", ["-smp", "2"]])[0].nested == [["-m"], ["-smp", "2"]]


def test_map_from_a_list_of_maps_and_empty_list() -> None:
    assert decode(labels=[{"a": "1"}, {"b": 2, "a": "3"}])[0].labels == {"a": "3", "b": "2"}
    assert decode(labels=[])[0].labels == {}


def test_null_leaves_the_default() -> None:
    assert decode(flag=None, count=None, name=None) == (Sample(), [])


def test_duration_number_is_nanoseconds() -> None:
    assert decode(wait=5)[0].wait == pytest.approx(5e-9)
    assert decode(wait="5s")[0].wait == 5.0


def test_strict_mode_is_unchanged_for_hcl2() -> None:
    # HCL2 goes through cty's conversions: "" is not a boolean there, and "a,b" is not split.
    assert decode(weak=False, flag="")[1] == ["b.flag: expected a boolean (true or false), got string ''"]
    assert decode(weak=False, names="a,b")[0].names == ["a,b"]


def test_helpers() -> None:
    assert (
        is_legacy_json("x/packer.json")
        and not is_legacy_json("x.pkr.json")
        and not is_legacy_json("a.pkr.hcl")
    )
    assert go_int("0o17") == 15 and go_int("1__0") is None and go_int("_1") is None
    assert format_float(0.1) == "0.1" and format_float(1e-7) == "0.0000001"


def test_weak_rules_through_a_json_template(tmp_path: Path) -> None:
    raw = {
        "type": "qemu",
        "iso_url": "http://example.invalid/d.iso",
        "iso_checksum": "none",
        "ssh_username": "root",
        "shutdown_command": "poweroff",
        "headless": "",
        "memory": "2048",
        "cpus": 2.0,
        "use_default_display": "1",
        "ssh_port": "0x16",
        "vm_name": 12.5,
        "boot_command": "<esc>,<enter>",
        "qemuargs": "-no-reboot",
        "disk_compression": "t",
    }
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"builders": [raw]}))
    config = load_template(path).builds[0].config
    assert (config.headless, config.memory, config.cpus, config.use_default_display) == (False, 2048, 2, True)
    assert (config.ssh_port, config.vm_name, config.disk_compression) == (22, "12.5", True)
    assert config.boot_command == ["<esc>", "<enter>"]
    assert config.qemuargs == [["-no-reboot"]]


def test_numbers_out_of_go_range() -> None:
    # strconv.ParseInt's "value out of range" and Python's 4300-digit limit: a problem, not a crash
    assert go_int("9" * 19) is None and go_int("9" * 5000) is None
    assert go_int("-9223372036854775808") == -(2**63)
    assert "expected a whole number" in decode(count="9" * 5000)[1][0]
    assert "expected a number" in decode(ratio=10**400)[1][0]


def test_json_numbers_beyond_float64_are_refused_as_go_does() -> None:
    for text in ('{"a": 1e400}', '{"a": 1' + "0" * 400 + "}"):
        with pytest.raises(JsonSyntaxError, match="out of range"):
            parse(text)
    assert parse('{"a": 1' + "0" * 300 + "}")[0]["a"] == 10**300
