"""HCL2 variable type constraints: parsing, and cty's conversions of values to them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vmbake.errors import TemplateError
from vmbake.template import load_template
from vmbake.template.hcl_types import TypeMismatch, convert, parse_type


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("string", "string"),
        ("list(string)", "list(string)"),
        ("list", "list(any)"),
        ("map(list(number))", "map(list(number))"),
        ("set(bool)", "set(bool)"),
        ("tuple([string, number])", "tuple([string, number])"),
        ("object({ name = string, size = number })", "object({name=string, size=number})"),
        ('object({\n  "a" = string\n  b = optional(list(string))\n})', "object({a=string, b=optional(list(string))})"),
    ],
)  # fmt: skip
def test_type_expressions(text: str, shown: str) -> None:
    assert str(parse_type(text)) == shown


@pytest.mark.parametrize("text", ["strin", "list(", "object({a string})", "list(string) x", "tuple(string)"])
def test_bad_type_expressions(text: str) -> None:
    with pytest.raises(TypeMismatch):
        parse_type(text)


@pytest.mark.parametrize(
    ("value", "type_text", "expected"),
    [
        (2048, "string", "2048"),
        (1.5, "string", "1.5"),
        (True, "string", "true"),
        ("2048", "number", 2048),
        ("1.25", "number", 1.25),
        ("false", "bool", False),
        ([1, 2], "list(string)", ["1", "2"]),
        (["a", "a", "b"], "set(string)", ["a", "b"]),
        ({"a": "1"}, "map(number)", {"a": 1}),
        ({"name": "x", "size": "2", "extra": 1}, "object({name=string, size=number})", {"name": "x", "size": 2}),
        ({"name": "x"}, "object({name=string, label=optional(string)})", {"name": "x", "label": None}),
        ({"label": None}, 'object({label=optional(string, "none"), n=optional(number, "3")})', {"label": "none", "n": 3}),
        (["a", "1"], "tuple([string, number])", ["a", 1]),
        (None, "number", None),
        ([1, "a"], "any", [1, "a"]),
    ],
)  # fmt: skip
def test_conversions(value: Any, type_text: str, expected: Any) -> None:
    assert convert(value, parse_type(type_text)) == expected


@pytest.mark.parametrize(
    ("value", "type_text", "words"),
    [
        ("lots", "number", "a number is required"),
        (True, "number", "a number is required"),
        ("yes", "bool", "a bool is required"),
        (["a"], "string", "string required"),
        ("a", "list(string)", "a list is required"),
        ([["a"]], "list(string)", "[0]: string required"),
        ({"name": "x"}, "object({name=string, size=number})", "attribute 'size' is required"),
        (["a"], "tuple([string, number])", "a tuple of 2 elements"),
    ],
)  # fmt: skip
def test_values_that_do_not_fit(value: Any, type_text: str, words: str) -> None:
    with pytest.raises(TypeMismatch, match=words.replace("[", r"\[").replace("]", r"\]")):
        convert(value, parse_type(type_text))


def test_a_bad_type_in_a_template_names_the_variable_and_line(tmp_path: Path) -> None:
    path = tmp_path / "t.pkr.hcl"
    path.write_text(
        'variable "x" {\n  type = lsit(string)\n}\nsource "null" "n" {\n  communicator = "none"\n}\n'
        'build {\n  sources = ["source.null.n"]\n}\n'
    )
    with pytest.raises(TemplateError) as info:
        load_template(path)
    problem = info.value.problems[0]
    assert (problem.key, problem.line) == ("variable.x.type", 2)
    assert "'lsit' is not a type" in problem.message and "list(T)" in (problem.hint or "")
