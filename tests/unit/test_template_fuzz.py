"""Robustness smoke test: loading succeeds or raises vmbake's error, never a crash (the deep fuzzing is issue 9's)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmbake.errors import VmbakeError
from vmbake.template import load_template

KEYS = ["type", "name", "iso_url", "iso_urls", "iso_checksum", "disk_size", "boot_command", "memory", "only",
        "except", "override", "inline", "script", "variables", "builders", "provisioners", "post-processors",
        "qemuargs", "http_directory", "pause_before", "checksum_types", "sensitive-variables", "_comment"]  # fmt: skip
WORDS = ["qemu", "shell", "file", "checksum", "{{user `x`}}", "{{ .HTTPIP }}", "{{", "}}", "<wait0>", "<wait5>",
         "sha256:abc", "none", "5120M", "{{env `HOME`}}", "{{ split `a` }}", "${var.x}", "", "10s", "x"]  # fmt: skip

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 70000), st.sampled_from(WORDS), st.text(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)
templates = st.dictionaries(st.sampled_from(KEYS), values, max_size=5)

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _load(text: str, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"t{suffix}"
        path.write_text(text)
        try:
            load_template(path)
        except VmbakeError:
            pass


@SETTINGS
@given(templates)
def test_random_json_templates_never_crash(data: dict[str, Any]) -> None:
    _load(json.dumps(data), ".json")


@SETTINGS
@given(
    st.builds(
        lambda b, s: b + s,
        st.sampled_from(['{"builders": [', "{", "[", '{"a": "\\u12']),
        st.text(max_size=30),
    )
)
def test_broken_json_never_crashes(text: str) -> None:
    _load(text, ".json")


HCL_BITS = ['source "qemu" "a" {', "}", "build {", 'sources = ["source.qemu.a"]', 'provisioner "shell" {',
            "inline = [var.x]", 'variable "x" {', 'default = "y"', "locals {", "z = local.z", 'a = "${', "[", "]",
            "memory = -var.x", "x = {a = 1", 'post-processor "checksum" {', "source = 1", "provisioner = 2",
            'iso_url = "${upper(1)}"', "n = 1 / 0"]  # fmt: skip


@SETTINGS
@given(st.lists(st.sampled_from(HCL_BITS), max_size=12))
def test_random_hcl_never_crashes(lines: list[str]) -> None:
    _load("\n".join(lines) + "\n", ".pkr.hcl")
