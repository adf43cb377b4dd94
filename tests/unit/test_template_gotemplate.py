"""Packer's Go-template language: functions at load time, run-time placeholders kept, then filled."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from vmbake.errors import VmbakeError
from vmbake.template.gotemplate import RenderContext, TemplateSyntaxError, render, render_runtime
from vmbake.template.gotime import go_format


def ctx(**kw: object) -> RenderContext:
    return RenderContext(**kw)  # type: ignore[arg-type]


def test_user_variables_with_backticks_and_double_quotes() -> None:
    c = ctx(user={"vm_name": "buster", "memory": "1024"})
    assert render("{{user `vm_name`}}.qcow2", c) == "buster.qcow2"
    assert render('{{ user "memory" }}M', c) == "1024M"


def test_runtime_placeholders_are_kept_verbatim_at_load_time() -> None:
    text = "url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/virtual-host.cfg name={{user `n`}} {{.Name}} {{ .SSHPublicKey }}"
    out = render(text, ctx(user={"n": "x"}))
    assert (
        out
        == "url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/virtual-host.cfg name=x {{.Name}} {{ .SSHPublicKey }}"
    )


def test_render_runtime_fills_placeholders() -> None:
    out = render_runtime(
        "http://{{ .HTTPIP }}:{{ .HTTPPort }}/a.cfg", {"HTTPIP": "10.0.2.2", "HTTPPort": "8123"}
    )
    assert out == "http://10.0.2.2:8123/a.cfg"
    assert render_runtime(
        "chmod +x {{.Path}}; {{.Vars}} {{.Path}}", {"Path": "/tmp/s.sh", "Vars": "A='1'"}
    ) == ("chmod +x /tmp/s.sh; A='1' /tmp/s.sh")


def test_render_runtime_names_a_missing_placeholder() -> None:
    with pytest.raises(VmbakeError, match=r"\.HTTPPort"):
        render_runtime("{{ .HTTPPort }}", {"HTTPIP": "10.0.2.2"})


def test_string_functions_and_pipelines() -> None:
    c = ctx()
    assert render('{{ upper "abc" }}-{{ "XY" | lower }}', c) == "ABC-xy"
    assert render('{{ replace_all "-" "_" "a-b-c" }}', c) == "a_b_c"
    assert render('{{ replace "-" "_" 1 "a-b-c" }}', c) == "a_b-c"
    assert render('{{ split "a,b,c" "," 2 }}', c) == "c"
    assert render('{{ clean_resource_name "My Image_1" }}', c) == "my-image-1"
    assert render('{{ upper (lower "AbC") }}', c) == "ABC"


def test_template_dir_pwd_timestamp_uuid() -> None:
    c = ctx(template_dir="/srv/t")
    assert render("{{template_dir}}/htdocs", c) == "/srv/t/htdocs"
    assert render("{{ pwd }}", c) == os.getcwd()
    assert re.fullmatch(r"\d{10}", render("{{timestamp}}", c))
    first, second = render("{{uuid}}", c), render("{{uuid}}", c)
    assert re.fullmatch(r"[0-9a-f-]{36}", first) and first != second


def test_build_name_is_kept_until_known() -> None:
    assert render("out-{{build_name}}", ctx()) == "out-{{build_name}}"
    assert render("out-{{build_name}}-{{build_type}}", ctx(build_name="b", build_type="qemu")) == "out-b-qemu"


def test_env_only_where_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMBAKE_TEST_ENV", "hello")
    assert render("{{env `VMBAKE_TEST_ENV`}}", ctx(allow_env=True)) == "hello"
    with pytest.raises(TemplateSyntaxError, match="only allowed in the 'variables' section"):
        render("{{env `VMBAKE_TEST_ENV`}}", ctx())


def test_undefined_user_variable_is_recorded() -> None:
    c = ctx(user={})
    assert render("{{user `missing`}}", c) == ""
    assert c.undefined == ["missing"]


def test_trim_markers_and_comments() -> None:
    assert render("a  {{- `b` -}}  c", ctx()) == "abc"
    assert render("x{{/* a comment */}}y", ctx()) == "xy"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ nope }}", "function 'nope' is not defined"),
        ("{{ user `a` ", "unclosed action"),
        ("{{ if }}x{{ end }}", "missing value for if in {{ if }}"),
        ('{{ split "a" }}', "takes 3 argument"),
        ("{{ ( upper `a` }}", "unclosed left paren in {{ ( upper `a` }}"),
    ],
)
def test_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(TemplateSyntaxError, match=re.escape(message)):
        render(text, ctx(user={"a": "1"}))


def test_isotime_go_layouts() -> None:
    moment = datetime(2021, 3, 7, 14, 5, 9, 123456, tzinfo=UTC)
    assert go_format(moment, "2006-01-02") == "2021-03-07"
    assert go_format(moment, "2006-01-02T15:04:05Z07:00") == "2021-03-07T14:05:09Z"
    assert go_format(moment, "Jan _2 03:04PM") == "Mar  7 02:05PM"
    assert go_format(moment, "Monday January 2 2006 .000") == "Sunday March 7 2021 .123"
    assert go_format(moment, "060102-150405") == "210307-140509"
    east = moment.astimezone(timezone(timedelta(hours=2)))
    assert go_format(east, "-07:00 -0700 Z07:00") == "+02:00 +0200 +02:00"


def test_isotime_function_uses_layout() -> None:
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", render('{{ isotime "2006-01-02" }}', ctx()))
