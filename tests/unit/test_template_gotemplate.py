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


# Each expected output below is what Packer 1.6.6 (Debian's package) rendered for the same action
# (seen through the error it gives for a boot_wait that is not a duration).
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ if eq 1 1 }}yes{{ else }}no{{ end }}", "yes"),
        ("{{ if eq (user `a`) `x` }}1{{ else if eq (user `a`) `vv` }}2{{ else }}3{{ end }}", "2"),
        ("{{ if false }}1{{ else if false }}2{{ else }}3{{ end }}", "3"),
        ("{{ printf `%05.1f-%q-%v-%x-%d` 3.14159 `s` 7 255 12 }}", '003.1-"s"-7-ff-12'),
        (
            "{{ printf `%s|%-4s|%4s|%t|%%|%c|%X|%g` `a` `b` `c` true 65 `hi` 2.5 }}",
            "a|b   |   c|true|%|A|6869|2.5",
        ),
        ("{{ printf `%d %d` 1 }}", "1 %!d(MISSING)"),
        ("{{ printf `%d` `x` }}", "%!d(string=x)"),
        ("{{ $x := `ab` }}{{ $x | upper }}{{ len $x }}", "AB2"),
        ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", "2"),
        ("{{ index `abc` 1 }}", "98"),
        ("{{ slice `abcd` 1 3 }}", "bc"),
        ("{{ and 0 `x` }}|{{ or 0 `` `z` }}|{{ not `` }}|{{ and 1 `y` }}", "0|z|true|y"),
        (
            "{{ lt `a` `b` }} {{ le 2 2 }} {{ gt 1.5 2.5 }} {{ ge 3 2 }} {{ ne `a` `b` }}",
            "true true false true true",
        ),
        ("{{ eq 1 2 1 }}", "true"),
        ("{{ with user `a` }}w{{.}}{{ else }}none{{ end }}", "wvv"),
        ("{{ with user `empty` }}w{{ else }}none{{ end }}", "none"),
        ("{{ print 1 2 `a` `b` 3 }}", "1 2ab3"),
        ("{{ println 1 `a` }}", "1 a\n"),
        ("{{ 1.5 }} {{ 1e3 }} {{ 0x10 }} {{ 'a' }} {{ 010 }} {{ -2 }}", "1.5 1000 16 97 8 -2"),
        ("{{ len (split `a,b` `,` 0) }}", "1"),
        ("{{ user `a` | printf `%s-%s` `z` }}", "z-vv"),
        ("{{ user `a` | upper | lower }}", "vv"),
        ("a {{- if false }} x {{- else if true -}}  y  {{- end -}} b", "ayb"),
        ("{{ html `<a&b>` }} {{ urlquery `a b&c` }} {{ js `it's` }}", "&lt;a&amp;b&gt; a+b%26c it\\'s"),
        ("{{/* comment */}}{{- /* trimmed */ -}} x", "x"),
        ("{{ printf `%s|%v|%d` 5 5 5 }}", "%!s(int=5)|5|5"),
        ("{{ printf `%6.2f|%-5d|%+d|%x|%X` 3.14159 42 7 -255 255 }}", "  3.14|42   |+7|-ff|FF"),
        ('{{ printf `%q|%v|%v|%t` `a"b` 1.5 true false }}', '"a\\"b"|1.5|true|false'),
        (
            "{{ printf `%05d|%o|%b|%e|%g|%G` 42 8 5 1234.5678 0.000001234 1e21 }}",
            "00042|10|101|1.234568e+03|1.234e-06|1E+21",
        ),
        ("{{ printf `%s|%d` true 1.5 }}", "%!s(bool=true)|%!d(float64=1.5)"),
        ("{{ printf `%T %T %T` 1 `a` 1.5 }}", "int string float64"),
        ("{{ printf `%5.2s|%.1s|%3c` `abc` `xyz` 65 }}", "   ab|x|  A"),
        (
            "{{ html `\"'` }}|{{ js `</script>` }}|{{ urlquery `é/ ?` }}",
            "&#34;&#39;|\\u003C/script\\u003E|%C3%A9%2F+%3F",
        ),
        ("{{ index `héllo` 1 }}|{{ len `héllo` }}|{{ slice `héllo` 0 1 }}", "195|6|h"),
        (
            "{{ 1e6 }}|{{ 1234567.0 }}|{{ 0.00001 }}|{{ 123456.5 }}|{{ printf `%v|%g` 1e21 1e6 }}|{{ 1e20 }}",
            "1e+06|1.234567e+06|1e-05|123456.5|1e+21|1e+06|1e+20",
        ),
        ("{{ printf `%999999999d|%c` 1 99999999 }}", "%!(BADWIDTH)|\ufffd"),
        ("{{ nil | print }}", "<nil>"),
    ],
)
def test_actions(text: str, expected: str) -> None:
    assert render(text, ctx(user={"a": "vv", "empty": ""})) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ eq 1 `1` }}", "error calling eq: incompatible types for comparison in {{ eq 1 `1` }}"),
        ("{{ lt true false }}", "error calling lt: invalid type for comparison"),
        ("{{ range split `a,b` `,` 0 }}x{{ end }}", "range can't iterate over a in {{ range split"),
        ("{{ if true }}x", "{{ if true }} has no matching {{end}}"),
        ("{{ if true }}x{{ else }}y{{ else }}z{{ end }}", "has no matching {{end}}"),
        ("{{ end }}", "unexpected {{ end }}: no block is open"),
        ("{{ else }}", "unexpected {{ else }}: no block is open"),
        ("{{ break }}", "{{break}} outside {{range}}"),
        ("{{ define `x` }}{{ end }}", "{{define}} (named templates) is not available"),
        ("{{ template `x` }}", "{{template}} (named templates) is not available"),
        ("{{ $y }}", "undefined variable: $y in {{ $y }}"),
        ("{{ $y = 1 }}", "undefined variable: $y"),
        ("{{ user `a` | `b` }}", "can't give argument to non-function 'b'"),
        ("{{ index `abc` 5 }}", "error calling index: index out of range: 5"),
        ("{{ len 3 }}", "error calling len: len of type int"),
        ("{{ not }}", "wrong number of args for not"),
        ("{{ and }}", "wrong number of args for and"),
        ("{{ 08 }}", "bad number syntax"),
        ("{{ 99999999999999999999 }}", "overflow"),
        ("{{ 1e400 }}", "overflow"),
        ("{{ `a` ) }}", "unexpected right paren"),
        ("{{ if }}", "missing value for if in {{ if }}"),
        ("{{}}", "missing value for command in {{}}"),
        ("{{ /* x }}", "unclosed comment"),
    ],
)
def test_action_errors_name_the_action(text: str, message: str) -> None:
    with pytest.raises(TemplateSyntaxError, match=re.escape(message)):
        render(text, ctx(user={"a": "vv"}))


def test_and_or_stop_at_the_deciding_argument() -> None:
    # Go 1.18+ evaluates and/or lazily: the failing call after the deciding value never runs.
    assert render("{{ or `x` (index `a` 9) }}", ctx()) == "x"
    assert render("{{ and `` (index `a` 9) }}", ctx()) == ""


def test_range_over_runtime_fields_with_break_and_continue() -> None:
    text = "{{ range $k, $v := . }}{{ if eq $k `B` }}{{ continue }}{{ end }}{{ $k }}={{ $v }};{{ end }}"
    assert render_runtime(text, {"A": "1", "B": "2", "C": "3"}) == "A=1;C=3;"
    assert render_runtime("{{ range . }}{{ . }}{{ break }}{{ end }}", {"A": "1", "B": "2"}) == "1"
    assert render_runtime("{{ range $x := . }}{{ $x }}{{ else }}none{{ end }}", {}) == "none"


def test_blocks_on_runtime_values_are_kept_whole_until_the_build() -> None:
    text = "{{ if .HTTPIP }}http://{{ .HTTPIP }}:{{ .HTTPPort }}{{ else }}none{{ end }} {{ user `a` }}"
    loaded = render(text, ctx(user={"a": "vv"}))
    assert loaded == "{{ if .HTTPIP }}http://{{ .HTTPIP }}:{{ .HTTPPort }}{{ else }}none{{ end }} vv"
    assert render_runtime(loaded, {"HTTPIP": "10.0.2.2", "HTTPPort": "8080"}) == "http://10.0.2.2:8080 vv"
    declared = render("{{ $ip := .HTTPIP }}{{ user `a` }}{{ $ip }}", ctx(user={"a": "vv"}))
    assert declared == "{{ $ip := .HTTPIP }}vv{{ $ip }}"
    assert render_runtime(declared, {"HTTPIP": "10.0.2.2"}) == "vv10.0.2.2"


def test_build_name_in_a_condition_waits_for_the_build() -> None:
    text = "{{ if eq build_type `qemu` }}Q{{ else }}other{{ end }}"
    assert render(text, ctx()) == text
    assert render(text, ctx(build_name="x", build_type="qemu")) == "Q"


def test_a_block_kept_for_the_build_has_its_load_time_values_filled_in() -> None:
    # {{user}} is only known at load time: inside a block that waits for the build it is filled in now.
    c = ctx(user={"a": "vv", "b": "{{x}}"})
    text = "{{ if .HTTPIP }}x{{ user `a` }}{{ else if .Y }}{{ user `b` }}{{ else }}{{ upper `z` }}{{ end }}!"
    loaded = render(text, c)
    assert loaded == '{{ if .HTTPIP }}xvv{{ else if .Y }}{{ "{{x}}" }}{{ else }}Z{{ end }}!'
    assert render_runtime(loaded, {"HTTPIP": "", "Y": "1"}) == "{{x}}!"
    assert render_runtime(loaded, {"HTTPIP": "h", "Y": ""}) == "xvv!"
    declared = render("{{ if eq build_name `q` }}{{ $v := user `a` }}{{ $v }}{{ end }}", c)
    assert declared == '{{ if eq build_name `q` }}{{ $v := "vv" }}{{ $v }}{{ end }}'
    assert render(declared, ctx(build_name="q", build_type="qemu", source_name="q")) == "vv"
    looped = render(
        "{{ range $k, $v := . }}{{ if eq (user `a`) `vv` }}{{ $k }}{{ break }}{{ end }}{{ end }}", c
    )
    assert looped == "{{ range $k, $v := . }}{{ $k }}{{break}}{{ end }}"
    assert render_runtime(looped, {"A": "1", "B": "2"}) == "A"


def test_packers_other_functions() -> None:
    assert re.fullmatch(r"\d{4}-\d{2}", render("{{ strftime `%Y-%m` }}", ctx()))
    with pytest.raises(TemplateSyntaxError, match="'sed' is deprecated"):
        render("{{ sed `s/a/b/` `a` }}", ctx())
    for name in ("consul_key", "vault", "aws_secretsmanager"):
        with pytest.raises(TemplateSyntaxError, match="vmbake does not contact"):
            render(f"{{{{ {name} `a` `b` }}}}", ctx())


def test_an_action_kept_for_the_build_has_its_load_time_arguments_filled_in() -> None:
    c = ctx(user={"port": "8080", "a": "vv"})
    loaded = render(
        "{{ printf `%s:%s` .HTTPIP (user `port`) }} {{ .HTTPIP | printf `%s-%s` (user `a` | upper) }}", c
    )
    assert loaded == '{{ printf "%s:%s" .HTTPIP "8080" }} {{ .HTTPIP | printf "%s-%s" "VV" }}'
    assert render_runtime(loaded, {"HTTPIP": "10.0.2.2"}) == "10.0.2.2:8080 VV-10.0.2.2"
    untouched = "{{- printf `%d` (len .Name) }} {{ build `ID` }}"
    assert render(untouched, c) == untouched


def test_fill_build_data_fills_build_actions_only() -> None:
    from vmbake.config.provisioners import ShellConfig
    from vmbake.template.gotemplate import fill_build_data

    config = ShellConfig(
        inline=["echo {{ build `Host` }}:{{build `Port`}}", "echo {{ braces }} stay"],
        execute_command="{{ .Vars }} sh {{ .Path }} {{ build `ID` | printf `%q` }}",
    )
    filled = fill_build_data(config, {"Host": "10.0.2.2", "Port": "2222", "ID": "vm"})
    assert filled.inline == ["echo 10.0.2.2:2222", "echo {{ braces }} stay"]
    assert filled.execute_command == '{{ .Vars }} sh {{ .Path }} "vm"'
    assert fill_build_data(ShellConfig(inline=["plain"]), {}) == ShellConfig(inline=["plain"])
    with pytest.raises(VmbakeError, match="build `Nope`"):
        fill_build_data(ShellConfig(inline=["{{ build `Nope` }}"]), {"Host": "h"})
