"""`vmbake hcl2_upgrade`: JSON templates become HCL2 that loads to the same typed model."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest

from vmbake.cli import main
from vmbake.commands.upgrade import _Context, convert_string, upgrade
from vmbake.errors import TemplateError, VmbakeError
from vmbake.template import BuildSpec, load_template
from vmbake.template.hcl_expr import Evaluator, ExprError

ROOT = Path(__file__).resolve().parents[2]


def _json_templates() -> list[Path]:
    found = []
    for path in sorted([*ROOT.glob("templates/**/*.json"), *ROOT.glob("tests/data/**/*.json")]):
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(data, dict) and "builders" in data and "refuse" not in path.parts:
            found.append(path)
    return found


def _evaluator_has(function: str) -> bool:
    try:
        Evaluator({}).expression(f'{function}("x", "y")')
    except ExprError as exc:
        return "not supported" not in str(exc)
    except Exception:  # wrong arguments for this probe: the function exists
        return True
    return True


def _post_processors(build: BuildSpec) -> list[list[tuple[str, Any, bool | None]]]:
    return [[(p.type, p.config, p.keep_input_artifact) for p in chain] for chain in build.post_processors]


def _args(text: str) -> dict[str, Any]:
    """load_template's arguments for a corpus template's vmbake-args (-var, -var-file, -only, -except)."""
    out: dict[str, Any] = {"vars": {}, "var_files": [], "only": [], "except_": []}
    words = shlex.split(text.replace("\\n", " "))
    for i, word in enumerate(words):
        if word == "-var":
            key, _, value = words[i + 1].partition("=")
            out["vars"][key] = value
        elif word.startswith("-var-file="):
            out["var_files"].append(word.split("=", 1)[1])
        elif word.startswith(("-only=", "-except=")):
            flag, _, value = word.partition("=")
            out["only" if flag == "-only" else "except_"] += value.split(",")
    return out


def _same_build_actions(text: str) -> str:
    return re.sub(r"\{\{\s*build\s+`(\w+)`\s*\}\}", r"{{ build `\1` }}", text)


def _provisioners(build: BuildSpec) -> list[tuple[str, Any, float, float | None, int]]:
    return [(p.type, p.config, p.pause_before, p.timeout, p.max_retries) for p in build.provisioners]


@pytest.mark.parametrize("source", _json_templates(), ids=lambda p: str(p.relative_to(ROOT)))
def test_upgraded_template_loads_to_the_same_model(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "t"
    shutil.copytree(source.parent, work)
    (work / "provision.sh").touch(exist_ok=True)  # the shipped buster template names one it does not carry
    shared = (
        source.parent.parent / "files"
    )  # the corpus templates' files/..., relative to the current directory
    if shared.is_dir():
        shutil.copytree(shared, work / "files")
    monkeypatch.chdir(work)
    json_path = work / source.name
    found = re.search(r"vmbake-args:([^\"]*)", source.read_text())
    args = _args(found.group(1)) if found else {"vars": {}, "var_files": [], "only": [], "except_": []}
    try:
        old = load_template(json_path, **args)
    except VmbakeError as exc:
        pytest.skip(f"the JSON itself does not load in vmbake: {exc.message}")
    # upgrade() rather than the command: a builder type Packer does not know makes the command exit 1
    hcl = upgrade(json.loads(json_path.read_text())).text
    (work / (source.name + ".pkr.hcl")).write_text(hcl)
    data = json.loads(json_path.read_text())
    if source.name.startswith(("weak-", "user-undefined")):
        # Packer's hcl2_upgrade writes each value as the JSON holds it and each {{user `x`}} as var.x
        # (command/hcl2_upgrade.go, jsonBodyToHCL2Body and the "user" entry of transposeTemplatingCalls),
        # and HCL2 decodes strictly (cty): "" or "t" is no bool, "300000000000" no duration, a string no
        # list, an undeclared variable an error. Packer refuses the upgraded file on those keys, and so must
        # vmbake; where cty converts (a number to a string, null), the model must be the same (below).
        try:
            load_template(work / (source.name + ".pkr.hcl"))
        except TemplateError as exc:
            builder_keys = {k for b in data["builders"] for k in b}
            undeclared = set(re.findall(r"user\s+`(\w+)`", json_path.read_text())) - set(
                data.get("variables", {})
            )
            assert exc.problems and all(
                p.key.rsplit(".", 1)[-1] in builder_keys | undeclared for p in exc.problems
            ), exc.problems
            return
    templated = [b["name"] for b in data["builders"] if "{{" in b.get("name", "")]
    if templated:
        # Packer's upgrade labels the source with the name as written, spaces made underscores
        # (command/hcl2_upgrade.go, SourceParser.Parse): HCL2 has no name filled in from variables
        for name in templated:
            assert f'source "qemu" "{name.strip().replace(" ", "_")}"' in hcl
        return
    if "vmbake could not upgrade the Go templates" in hcl:
        # {{if}}, {{range}}, {{with}} and pipelines have no HCL2 form: like Packer's (fallbackReturn), the
        # upgrade keeps the block with its Go templates as written, after a comment saying so
        new = load_template(work / (source.name + ".pkr.hcl"))
        for before, builder in zip(new.builds, data["builders"], strict=True):
            kept = {k: v for k, v in builder.items() if isinstance(v, str) and "{{" in v}
            assert kept and all(getattr(before.config, k) == v for k, v in kept.items())
        return
    for call in ("env", "legacy_isotime", "regex_replace"):
        if f"{call}(" in hcl and not _evaluator_has(call):
            pytest.skip(f"the upgrade writes {call}(), which vmbake's HCL2 evaluator does not have yet")
    new = load_template(work / (source.name + ".pkr.hcl"), **args)
    assert len(old.builds) == len(new.builds)
    # Packer sorts the sources by type and name, and names an unnamed builder autogenerated_N.
    for before, after in zip(sorted(old.builds, key=lambda b: b.type + b.name), new.builds, strict=True):
        assert before.type == after.type
        assert before.config == after.config
        # what each build runs: its provisioners (override and build_name applied) and post-processors
        # only/except are compared by what each build runs: a renamed builder has a new name
        # ({{build_name}} of a builder the upgrade renamed is its new name, as in Packer's upgrade)
        # ({{build `Host`}} and ${build.Host} fill in the same value when the provisioner runs)
        assert _same_build_actions(repr(_provisioners(before))) == repr(_provisioners(after)).replace(
            after.source_name, before.name
        )
        assert _post_processors(before) == _post_processors(after)
        assert before.error_cleanup_provisioner == after.error_cleanup_provisioner
    # a variable whose default calls a template function is a local in HCL2, as Packer writes it
    # (and every JSON variable is a string to Packer: HCL2 gets its text)
    text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in old.values.items()}
    assert {name: text[name] for name in new.values} == new.values
    assert old.description == new.description


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{user `x`}}/a", '"${var.x}/a"'),
        ('{{ user "x" }}', '"${var.x}"'),
        ("{{template_dir}}/htdocs", '"${path.root}/htdocs"'),
        ("{{pwd}}", '"${path.cwd}"'),
        ('{{env "HOME"}}', '"${env(\\"HOME\\")}"'.replace('\\"', '"')),
        ("img-{{timestamp}}", '"img-${local.timestamp}"'),
        ("{{isotime}}", '"${timestamp()}"'),
        ('{{isotime "2006-01-02"}}', '"${legacy_isotime("2006-01-02")}"'),
        ("{{ build_name }}-{{build_type}}", '"${source.name}-${source.type}"'),
        ("{{uuid}}", '"${uuidv4()}"'),
        ("http://{{ .HTTPIP }}:{{.HTTPPort}}/x", '"http://{{ .HTTPIP }}:{{ .HTTPPort }}/x"'),
        ('a "quoted" ${x} %{y}', '"a \\"quoted\\" $${x} %%{y}"'),
    ],
)
def test_go_template_calls_become_hcl2_expressions(text: str, expected: str) -> None:
    assert convert_string(text, _Context()) == expected


def test_variables_locals_and_calls_without_an_equivalent() -> None:
    data = {
        "variables": {
            "name": "web",
            "stamp": "{{timestamp}}",
            "home": "{{env `HOME`}}",
            "need": None,
            "small": "{{upper `x`}}",
        },
        "sensitive-variables": ["name"],
        "builders": [{"type": "qemu", "vm_name": "{{user `stamp`}}-{{lower `X`}}"}],
        "post-processors": [["checksum", {"type": "compress", "keep_input_artifact": True}], "manifest"],
    }
    text = upgrade(data).text
    assert 'variable "name" {\n  type      = string\n  default   = "web"\n  sensitive = true\n}' in text
    assert 'variable "home" {\n  type    = string\n  default = "${env("HOME")}"\n}' in text
    assert 'variable "need" {\n  type = string\n}' in text
    assert (
        "# upgrade by hand: 'upper': no automatic upgrade; rewrite it as upper(...)\n"
        'locals {\n  small = "{{ upper `x` }}"\n  stamp = "${local.timestamp}"\n}'
    ) in text
    assert 'locals { timestamp = regex_replace(timestamp(), "[- TZ:]", "") }' in text
    assert 'source "qemu" "autogenerated_1" {' in text
    assert 'vm_name = "${local.stamp}-{{ lower `X` }}"' in text
    assert "# upgrade by hand: 'lower'" in text
    assert (
        '  post-processors {\n    post-processor "checksum" {\n    }\n'
        '    post-processor "compress" {\n      keep_input_artifact = true\n    }\n  }' in text
    )
    assert '  post-processor "manifest" {\n  }' in text
    assert '  required_plugins {\n    qemu = {\n      source  = "github.com/hashicorp/qemu"\n' in text


def test_output_file_flag_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "t.json"
    src.write_text(json.dumps({"builders": [{"type": "qemu", "name": "a"}]}))
    out = tmp_path / "sub" / "x.pkr.hcl"
    assert main(["hcl2_upgrade", "-output-file", str(out), "-with-annotations", str(src)]) == 0
    assert f"Successfully created {out}. Exit 0" in capsys.readouterr().out
    assert out.read_text().startswith("# Made by 'vmbake hcl2_upgrade'")
    src.write_text("{ nope")
    assert main(["hcl2_upgrade", str(src)]) == 1
    err = capsys.readouterr().err
    assert "invalid JSON" in err and "Traceback" not in err


def test_pipelines_are_kept_with_a_note_and_renamed_builds_followed() -> None:
    data = {
        "builders": [{"type": "qemu", "vm_name": "{{build_name}}-{{ `X` | lower }}"}],
        "provisioners": [{"type": "shell", "inline": ["true"], "only": ["qemu"], "override": {"qemu": {}}}],
    }
    text = upgrade(data).text
    assert 'vm_name = "qemu-{{ `X` | lower }}"' in text
    assert "# upgrade by hand: 'lower'" in text
    assert 'only   = ["qemu.autogenerated_1"]' in text
    assert "autogenerated_1 = {}" in text  # HCL2 override is keyed by the source's NAME
