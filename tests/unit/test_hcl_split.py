"""A large HCL2 file is parsed in runs of whole top-level blocks: the result must be the one-parse result."""

from __future__ import annotations

import pytest

from vmbake.template import hcl_split, hcl_values
from vmbake.template.hcl_values import parse_hcl

TRICKY = """
variable "a" {
  default = "a } { string with ${upper("}")} and %{ if true }x%{ endif } and $${not}"
}
# a comment with a brace {
locals {
  x = <<EOT
closing } braces { in a heredoc
name = "not an attribute"
EOT
  y = [
    1,
    2,
  ]
}
/* a block comment
variable "hidden" {}
*/
locals {
  z = true ? "yes" : "no"
}
top = 1
top = 2
source "qemu" "x" {
  iso_url = "u"
}
build {
  sources = ["source.qemu.x"]
}
"""


def one_parse(text: str) -> object:
    return hcl_values.clean(hcl_values.hcl2.loads(text, serialization_options=hcl_values._OPTIONS))


@pytest.fixture
def tiny_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hcl_split, "RUN_BYTES", 1)  # every top-level item a run of its own


def test_runs_cut_only_between_top_level_items(tiny_runs: None) -> None:
    runs, too_large = hcl_split.runs(TRICKY)
    assert too_large is None
    firsts = [TRICKY[r.start : r.end].split()[:1] for r in runs]
    assert firsts == [[], ["variable"], ["locals"], ["locals"], ["top"], ["top"], ["source"], ["build"]]
    assert [r.line for r in runs] == [1, 2, 6, 19, 22, 23, 24, 27]


def test_runs_give_the_one_parse_result(tiny_runs: None) -> None:
    split, problems = parse_hcl(TRICKY, "t.pkr.hcl")
    assert problems == []
    assert split == one_parse(TRICKY)
    assert len(split["locals"]) == 2 and split["top"] == 2 and "hidden" not in str(split)


def test_a_syntax_error_in_a_later_run_names_its_line(tiny_runs: None) -> None:
    text = TRICKY + "locals {\n  bad = = 1\n}\n"
    _, problems = parse_hcl(text, "t.pkr.hcl")
    assert len(problems) == 1
    assert problems[0].line == TRICKY.count("\n") + 2, problems[0]
    assert "bad = = 1" in problems[0].message


def test_one_block_over_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hcl_split, "RUN_BYTES", 10)
    monkeypatch.setattr(hcl_split, "MAX_BLOCK_BYTES", 100)
    monkeypatch.setattr(hcl_values, "MAX_BLOCK_BYTES", 100)
    text = "locals {\n  a = 1\n}\nlocals {\n" + "  b = 1\n" * 30 + "}\n"
    _, problems = parse_hcl(text, "t.pkr.hcl")
    assert len(problems) == 1 and problems[0].line == 4
    assert "over vmbake's limit of 100 bytes" in problems[0].message and problems[0].hint


def test_an_unterminated_string_is_named_not_a_large_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hcl_split, "RUN_BYTES", 10)
    monkeypatch.setattr(hcl_split, "MAX_BLOCK_BYTES", 100)
    text = 'locals {\n  a = "open\n}\n' + "locals {\n  b = 1\n}\n" * 30
    _, problems = parse_hcl(text, "t.pkr.hcl")
    assert len(problems) == 1 and problems[0].line == 2
    assert "unterminated string" in problems[0].message
