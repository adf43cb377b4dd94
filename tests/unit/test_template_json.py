"""JSON templates: Packer's sections and semantics, exact lines, variables from every source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vmbake.config.postprocessors import ChecksumConfig, ManifestConfig
from vmbake.config.provisioners import ShellConfig
from vmbake.config.qemu import QemuConfig
from vmbake.errors import TemplateError
from vmbake.template import load_template
from vmbake.template.jsonpos import JsonSyntaxError, parse

SHA = "sha256:" + "0" * 64


def builder(**keys: Any) -> dict[str, Any]:
    return {"type": "qemu", "iso_url": "http://example.invalid/d.iso", "iso_checksum": SHA, "ssh_username": "root",
            "shutdown_command": "poweroff", **keys}  # fmt: skip


def write(tmp_path: Path, data: dict[str, Any], name: str = "t.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=2))
    return path


def problems(path: Path, **kw: Any) -> list[tuple[str, str]]:
    with pytest.raises(TemplateError) as info:
        load_template(path, **kw)
    return [(p.key, p.message) for p in info.value.problems]


def test_json_positions_nested() -> None:
    text = '{\n "a": 1,\n "b": [\n  {"c": "x"},\n  {"d": [1,\n   2]}\n ]\n}'
    value, lines = parse(text)
    assert value == {"a": 1, "b": [{"c": "x"}, {"d": [1, 2]}]}
    assert lines["a"] == 2 and lines["b[0].c"] == 4 and lines["b[1].d"] == 5 and lines["b[1].d[1]"] == 6


def test_json_syntax_error_has_line() -> None:
    with pytest.raises(JsonSyntaxError) as info:
        parse('{\n "a": 1\n "b": 2\n}')
    assert info.value.line == 3


def test_minimal_template_loads_with_defaults(tmp_path: Path) -> None:
    t = load_template(write(tmp_path, {"builders": [builder()]}))
    (build,) = t.builds
    assert build.name == "qemu" and build.type == "qemu" and isinstance(build.config, QemuConfig)
    assert (
        build.config.disk_size == 40960 << 20
        and build.config.boot_wait == 10.0
        and build.config.memory == 512
    )
    assert t.format == "json" and t.directory == tmp_path.resolve()


def test_comment_keys_are_ignored(tmp_path: Path) -> None:
    data = {"_comment": "top", "builders": [builder(_note="x")],
            "provisioners": [{"type": "shell", "_c": 1, "inline": ["true"]}]}  # fmt: skip
    t = load_template(write(tmp_path, data))
    assert t.builds[0].provisioners[0].config.inline == ["true"]


def test_line_of_a_bad_key(tmp_path: Path) -> None:
    path = write(tmp_path, {"builders": [builder(disk_size="huge")]})
    with pytest.raises(TemplateError) as info:
        load_template(path)
    (problem,) = info.value.problems
    expected = next(i for i, line in enumerate(path.read_text().splitlines(), 1) if '"disk_size"' in line)
    assert problem.key == "builders[0].disk_size" and problem.line == expected


def test_names_default_to_type_and_must_be_unique(tmp_path: Path) -> None:
    t = load_template(write(tmp_path, {"builders": [builder(), builder(name="second")]}))
    assert [b.name for b in t.builds] == ["qemu", "second"]
    found = problems(write(tmp_path, {"builders": [builder(), builder()]}))
    assert found == [("builders[1]", "duplicate build name 'qemu'")]


def test_variables_precedence(tmp_path: Path) -> None:
    data = {"variables": {"a": "default", "b": "default", "c": "default"},
            "builders": [builder(vm_name="{{user `a`}}-{{user `b`}}-{{user `c`}}")]}  # fmt: skip
    var_file = tmp_path / "vars.json"
    var_file.write_text(json.dumps({"b": "file", "c": "file"}))
    t = load_template(write(tmp_path, data), vars={"c": "cli"}, var_files=[var_file])
    assert t.builds[0].config.vm_name == "default-file-cli"
    assert t.values == {"a": "default", "b": "file", "c": "cli"}


def test_required_variable(tmp_path: Path) -> None:
    path = write(tmp_path, {"variables": {"pw": None}, "builders": [builder(ssh_password="{{user `pw`}}")]})
    assert problems(path) == [("variables.pw", "required variable 'pw' is not set")]
    t = load_template(path, vars={"pw": "s3cret"})
    assert t.variables["pw"].required and t.builds[0].config.ssh_password == "s3cret"


def test_sensitive_variables_are_listed(tmp_path: Path) -> None:
    data = {"variables": {"pw": "hunter22"}, "sensitive-variables": ["pw"], "builders": [builder()]}
    t = load_template(write(tmp_path, data))
    assert t.variables["pw"].sensitive and t.sensitive_values == ["hunter22"]


def test_sensitive_keys_are_listed_too(tmp_path: Path) -> None:
    t = load_template(
        write(tmp_path, {"builders": [builder(ssh_password="pa55word", vnc_password="vnc-secret")]})
    )
    assert sorted(t.sensitive_values) == ["pa55word", "vnc-secret"]


def test_env_in_variables_and_variables_using_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VMBAKE_TEST_MIRROR", "http://mirror.invalid")
    data = {"variables": {"url": "{{user `mirror`}}/debian", "mirror": "{{env `VMBAKE_TEST_MIRROR`}}"},
            "builders": [builder(iso_url="{{user `url`}}/d.iso")]}  # fmt: skip
    t = load_template(write(tmp_path, data))
    assert t.builds[0].config.iso_url == "http://mirror.invalid/debian/d.iso"


def test_variable_loop_is_a_problem(tmp_path: Path) -> None:
    data = {"variables": {"a": "{{user `b`}}", "b": "{{user `a`}}"}, "builders": [builder()]}
    keys = {k for k, _ in problems(write(tmp_path, data))}
    assert keys == {"variables.a", "variables.b"}


def test_boot_command_keeps_runtime_fields_and_fills_user_vars(tmp_path: Path) -> None:
    data = {"variables": {"cfg": "virtual-host.cfg"},
            "builders": [builder(boot_command=["<esc><wait5>url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/{{user `cfg`}}"],
                                 qemuargs=[["-name", "{{ .Name }}"]])]}  # fmt: skip
    config = load_template(write(tmp_path, data)).builds[0].config
    assert config.boot_command == ["<esc><wait5>url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/virtual-host.cfg"]
    assert config.qemuargs == [["-name", "{{ .Name }}"]]


def test_build_name_functions_in_builder(tmp_path: Path) -> None:
    data = {"builders": [builder(name="deb", output_directory="out-{{build_name}}-{{build_type}}")]}
    assert load_template(write(tmp_path, data)).builds[0].config.output_directory == "out-deb-qemu"


def test_provisioner_common_keys_and_override_resolved_per_build(tmp_path: Path) -> None:
    data = {"builders": [builder(name="a"), builder(name="b"), builder(name="c")],
            "provisioners": [{"type": "shell", "inline": ["echo {{build_name}}"], "except": ["c"],
                              "pause_before": "1m30s", "max_retries": 3, "timeout": "10s",
                              "override": {"a": {"inline": ["echo overridden"]}}}]}  # fmt: skip
    a, b, c = load_template(write(tmp_path, data)).builds
    (spec,) = a.provisioners
    assert spec.pause_before == 90.0 and spec.max_retries == 3 and spec.timeout == 10.0
    assert isinstance(spec.config, ShellConfig) and spec.config.inline == ["echo overridden"]
    assert b.provisioners[0].config.inline == ["echo b"]  # {{build_name}} filled in at load time, once
    assert c.provisioners == ()


def test_post_processor_forms(tmp_path: Path) -> None:
    data = {"builders": [builder()],
            "post-processors": ["checksum", {"type": "manifest", "strip_path": True},
                                [{"type": "checksum", "checksum_types": ["sha256"]}, "manifest"]]}  # fmt: skip
    chains = load_template(write(tmp_path, data)).builds[0].post_processors
    assert [[p.type for p in c] for c in chains] == [["checksum"], ["manifest"], ["checksum", "manifest"]]
    assert chains[0][0].config == ChecksumConfig()
    assert chains[0][0].config.output == "packer_{{.BuildName}}_{{.BuilderType}}_{{.ChecksumType}}.checksum"
    assert chains[1][0].config == ManifestConfig(strip_path=True)
    assert chains[2][0].config.checksum_types == ["sha256"]


def test_only_and_except_select_builds_by_glob(tmp_path: Path) -> None:
    path = write(
        tmp_path, {"builders": [builder(name="installer"), builder(name="inst-efi"), builder(name="other")]}
    )
    assert [b.name for b in load_template(path, only=["inst*"]).builds] == ["installer", "inst-efi"]
    assert [b.name for b in load_template(path, except_=["inst*"]).builds] == ["other"]
    t = load_template(path, only=["nothing"])  # Packer's validate accepts it; `vmbake build` runs nothing
    assert t.builds == [] and [w.message for w in t.warnings] == ["-only=nothing matches no build"]


def test_min_packer_version_and_description(tmp_path: Path) -> None:
    t = load_template(
        write(tmp_path, {"min_packer_version": "1.6.0", "description": "d", "builders": [builder()]})
    )
    assert t.description == "d"


def test_error_cleanup_provisioner(tmp_path: Path) -> None:
    data = {
        "builders": [builder()],
        "error-cleanup-provisioner": {"type": "shell-local", "inline": ["echo bye"]},
    }
    spec = load_template(write(tmp_path, data)).builds[0].error_cleanup_provisioner
    assert spec is not None and spec.type == "shell-local" and spec.config.inline == ["echo bye"]


def test_unsupported_keys_are_warnings(tmp_path: Path) -> None:
    t = load_template(write(tmp_path, {"builders": [builder(vtpm=True)]}))
    assert [(w.key, "not yet supported" in w.message) for w in t.warnings] == [("builders[0].vtpm", True)]


def test_undeclared_cli_variable_is_read_by_user_with_a_warning(tmp_path: Path) -> None:
    # Packer 1.6.6 gives every -var to {{user}}, declared or not (command/meta.go, Meta.Core).
    t = load_template(
        write(tmp_path, {"builders": [builder(vm_name="{{user `nope`}}")]}), vars={"nope": "x1"}
    )
    assert t.builds[0].config.vm_name == "x1"
    assert [(w.file, w.key) for w in t.warnings] == [("-var", "nope")]


def test_var_file_comment_keys_and_undeclared_values(tmp_path: Path) -> None:
    var_file = tmp_path / "vars.json"
    var_file.write_text(json.dumps({"_comment": "site values", "disk": "9G", "name": "vm1"}))
    data = {"variables": {"name": "x"}, "builders": [builder(vm_name="{{user `name`}}-{{user `disk`}}")]}
    t = load_template(write(tmp_path, data), var_files=[var_file])
    assert t.builds[0].config.vm_name == "vm1-9G"
    assert [w.key for w in t.warnings] == ["disk"]  # a _comment key is not warned about


def test_var_file_values_must_be_strings(tmp_path: Path) -> None:
    # helper/flag-kv/flag_json.go reads a JSON template's -var-file into map[string]string.
    var_file = tmp_path / "vars.json"
    var_file.write_text(json.dumps({"memory": 2048, "name": None}))
    found = problems(
        write(tmp_path, {"variables": {"memory": "1"}, "builders": [builder()]}), var_files=[var_file]
    )
    assert found == [("memory", "a variable file value must be a string, got 2048")]


def test_variable_default_must_be_a_string(tmp_path: Path) -> None:
    data = {"variables": {"memory": 2048, "headless": True, "ok": "1", "req": None}, "builders": [builder()]}
    found = problems(write(tmp_path, data), vars={"req": "r"})
    assert [k for k, _ in found] == ["variables.memory", "variables.headless"]


def test_undefined_user_variable_is_empty_with_a_warning(tmp_path: Path) -> None:
    t = load_template(write(tmp_path, {"builders": [builder(vm_name="a{{user `nope`}}b")]}))
    assert t.builds[0].config.vm_name == "ab"
    assert [(w.key, "undefined variable 'nope'" in w.message) for w in t.warnings] == [
        ("builders[0].vm_name", True)
    ]
    # inside the variables section Packer fails ("variable not set"): so does vmbake
    data = {"variables": {"a": "{{user `nope`}}"}, "builders": [builder()]}
    assert problems(write(tmp_path, data)) == [("variables.a", "undefined variable 'nope'")]


@pytest.mark.parametrize(
    "key",
    [
        "iso_checksum_type",
        "iso_checksum_url",
        "iso_md5",
        "ssh_disable_agent",
        "ssh_key_path",
        "ssh_skip_nat_mapping",
    ],
)
def test_deprecated_builder_keys_are_refused_with_the_fix_hint(tmp_path: Path, key: str) -> None:
    with pytest.raises(TemplateError) as info:
        load_template(write(tmp_path, {"builders": [builder(**{key: "x"})]}))
    (problem,) = info.value.problems
    assert problem.key == f"builders[0].{key}" and "deprecated key" in problem.message
    assert "vmbake fix" in problem.hint


def test_deprecated_keys_that_are_still_keys_are_accepted(tmp_path: Path) -> None:
    # ssh_wait_timeout and ssh_host_port_min/max are still keys of Packer 1.6.6's qemu builder
    raw = builder(ssh_wait_timeout="10m", ssh_host_port_min=2222, ssh_host_port_max=2229)
    t = load_template(write(tmp_path, {"builders": [raw]}))
    assert t.builds[0].config.ssh_wait_timeout == 600.0
    assert [w.key.split(".")[-1] for w in t.warnings] == [
        "ssh_wait_timeout",
        "ssh_host_port_min",
        "ssh_host_port_max",
    ]
    # ... but not of the shell provisioner, nor is the manifest's filename
    data = {
        "builders": [builder()],
        "provisioners": [{"type": "shell", "inline": ["true"], "ssh_wait_timeout": "1m"}],
        "post-processors": [{"type": "manifest", "filename": "m.json"}],
    }
    found = problems(write(tmp_path, data))
    assert [k for k, m in found if "deprecated key" in m] == [
        "provisioners[0].ssh_wait_timeout",
        "post-processors[0].filename",
    ]


def test_missing_shutdown_command_is_a_warning(tmp_path: Path) -> None:
    t = load_template(write(tmp_path, {"builders": [builder(shutdown_command="")]}))
    assert [w.key for w in t.warnings] == ["builders[0].shutdown_command"]
    assert load_template(write(tmp_path, {"builders": [builder()]})).warnings == []


def test_missing_floppy_file(tmp_path: Path) -> None:
    found = problems(write(tmp_path, {"builders": [builder(floppy_files=["/nonexistent/ks.cfg", "*.cfg"])]}))
    assert found == [("builders[0].floppy_files[0]", "'/nonexistent/ks.cfg' does not exist")]
