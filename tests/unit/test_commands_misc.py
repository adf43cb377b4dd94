"""`vmbake console`, `init` and `completion`, and the generated docs (reference.md, the man page)."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vmbake.cli import main
from vmbake.commands import docs
from vmbake.commands.completion import bash_script
from vmbake.commands.console import show

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "tests" / "data" / "templates" / "seed-buster"


def _console(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], text: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    status = main(["console", *argv])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_console_evaluates_hcl2_against_variables_and_locals(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "t.pkr.hcl").write_text(
        'variable "name" {\n  default = "web"\n}\nlocals {\n  full = "${var.name}-1"\n  n = [1, 2]\n}\n'
    )
    status, out, err = _console(
        monkeypatch,
        capsys,
        ["-var", "name=db", str(tmp_path)],
        "var.name\nlocal.full\nupper(local.full)\nlocal.n\n1 + 2\n",
    )
    assert (status, out, err) == (0, "db\ndb-1\nDB-1\n[\n  1,\n  2,\n]\n3\n", "")


def test_console_prints_values_as_packer_does() -> None:
    assert (
        show({"b": [1, "x"], "a": None, "c": {}})
        == '{\n  "a" = null\n  "b" = [\n    1,\n    "x",\n  ]\n  "c" = {}\n}'
    )
    assert (show("bare"), show(2.0), show(1.5), show(True), show([])) == ("bare", "2", "1.5", "true", "[]")


def test_console_reports_a_bad_expression_and_goes_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _console(monkeypatch, capsys, [], 'var.nope\n"a"\n')
    assert status == 1
    assert out == "a\n"
    assert err.startswith("Error: ") and "nope" in err


def test_console_renders_go_templates_for_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _console(monkeypatch, capsys, [str(SEED / "packer.json")], "{{user `vm_name`}}.qcow2\n")
    assert (status, out) == (0, "buster.qcow2\n")


def test_init_names_what_packer_would_install(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.pkr.hcl").write_text(
        "packer {\n  required_plugins {\n"
        '    qemu = { source = "github.com/hashicorp/qemu", version = ">= 1.1.0" }\n'
        '    ansible = { source = "github.com/hashicorp/ansible", version = "~> 1" }\n'
        '    amazon = { source = "github.com/hashicorp/amazon", version = ">= 1" }\n'
        "  }\n}\n"
    )
    assert main(["init", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (
        "qemu: Packer would install github.com/hashicorp/qemu (version >= 1.1.0); vmbake has its qemu builder built in."
        in out
    )
    assert (
        "ansible: Packer would install github.com/hashicorp/ansible (version ~> 1); vmbake has its ansible "
        "provisioner, ansible-local provisioner built in." in out
    )
    assert (
        "amazon: Packer would install github.com/hashicorp/amazon (version >= 1); vmbake does not implement this plugin."
        in out
    )
    assert "vmbake needs no plugins for the builds it runs." in out
    assert main(["init", "bookworm"]) == 0
    assert "No required_plugins block" in capsys.readouterr().out


def test_generated_docs_are_current() -> None:
    for name, text in docs.generated().items():
        committed = (ROOT / "docs" / name).read_text(encoding="utf-8")
        assert committed == text, f"docs/{name} is stale: run python -m vmbake.commands.docs"


@pytest.mark.host_tools("groff")
def test_man_page_renders_without_warnings() -> None:
    result = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", str(ROOT / "docs" / "vmbake.1")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stderr == ""
    plain = re.sub(".\x08", "", result.stdout)  # grotty's overstrike bold and underline
    assert "vmbake fmt PATH" in plain and "vm_name" in plain
    if shutil.which("man"):
        shown = subprocess.run(
            ["man", "--warnings", "-l", str(ROOT / "docs" / "vmbake.1")],
            capture_output=True, text=True, check=True, env={**os.environ, "MANPAGER": "cat", "MANWIDTH": "80"},
        )  # fmt: skip
        assert shown.stderr == "" and "SYNOPSIS" in shown.stdout


def _complete(script: Path, words: list[str], cword: int) -> list[str]:
    """Run the completion function in a real bash; `vmbake` is this checkout's module."""
    quoted = " ".join("'" + w + "'" for w in words)
    program = (
        f"source {script}\n"
        f'vmbake() {{ PYTHONPATH={ROOT / "src"} {sys.executable} -m vmbake "$@"; }}\n'
        f"COMP_WORDS=({quoted}); COMP_CWORD={cword}; _vmbake\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        ["bash", "--norc", "-c", program], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return sorted(filter(None, result.stdout.splitlines()))


def test_bash_completion(tmp_path: Path) -> None:
    script = tmp_path / "vmbake.bash"
    script.write_text(bash_script())
    assert _complete(script, ["vmbake", "v"], 1) == ["validate", "verify", "version"]
    assert _complete(script, ["vmbake", "fmt", "-c"], 2) == ["-check"]
    assert _complete(script, ["vmbake", "build", "-on"], 2) == ["-on-error=", "-only="]
    assert _complete(script, ["vmbake", "build", "book"], 2) == ["bookworm"]
    # bash splits "-only=" at "=": the builds of the template named on the line, shipped or a file
    assert _complete(script, ["vmbake", "build", "-only", "=", "", "bookworm"], 4) == [
        "debian-bootstrap.bootstrap", "debian-bootstrap.bootstrap-arm64", "qemu.installer", "qemu.installer-netboot",
    ]  # fmt: skip
    seed = str((SEED / "build.pkr.hcl").relative_to(ROOT))
    assert _complete(script, ["vmbake", "validate", "-except", "=", "q", seed], 4) == ["qemu.buster"]
    assert _complete(script, ["vmbake", "build", "-only=qemu", "bookworm"], 2) == [
        "-only=qemu.installer", "-only=qemu.installer-netboot",
    ]  # fmt: skip
    assert _complete(script, ["vmbake", "completion", ""], 2) == ["bash"]
    assert _complete(script, ["vmbake", "help", "keys", "s"], 3) == ["shell", "shell-local"]
