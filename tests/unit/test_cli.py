"""The command line: Packer's flag forms, help and version, inspect output, exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vmbake import __version__
from vmbake.cli import UsageError, main, parse_flags
from vmbake.state import Options
from vmbake.template.model import Template
from vmbake.ui import Ui

SEED = Path(__file__).resolve().parents[1] / "data" / "templates" / "seed-buster"


@pytest.mark.parametrize(
    "argv",
    [
        ["-debug", "-force", "-on-error=abort", "-only=a,b", "-var", "x=1", "-var=y=2", "-var-file", "f.json", "T"],
        ["--debug", "--force", "--on-error", "abort", "--only", "a,b", "--var", "x=1", "--var=y=2", "--var-file=f.json",
         "T"],
    ],
)  # fmt: skip
def test_single_and_double_dash_flags_mean_the_same(argv: list[str]) -> None:
    parsed = parse_flags("build", argv)
    assert parsed.args == ["T"]
    assert parsed.values == {"debug": True, "force": True, "on-error": "abort", "only": "a,b",
                             "var": ["x=1", "y=2"], "var-file": ["f.json"]}  # fmt: skip


def test_bool_flags_take_explicit_values() -> None:
    parsed = parse_flags(
        "build", ["-color=false", "-timestamp-ui", "-report=false", "-parallel-builds=1", "T"]
    )
    assert parsed.values == {"color": False, "timestamp-ui": True, "report": False, "parallel-builds": 1}


def test_unknown_flag_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="flag provided but not defined: -frobnicate"):
        parse_flags("validate", ["-frobnicate", "T"])


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert main(["version"]) == 0
    out = capsys.readouterr().out
    assert out.count(f"vmbake {__version__}") == 2


def test_help_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["help", "build"]) == 0
    out = capsys.readouterr().out
    assert "Usage: vmbake build [options] TEMPLATE" in out and "-on-error" in out and "-var-file" in out
    assert main(["validate", "-h"]) == 0
    assert "Usage: vmbake validate" in capsys.readouterr().out


def test_no_command_prints_usage_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 1
    assert "Available commands are:" in capsys.readouterr().out


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bake"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "Error: unknown command 'bake'" and err[1].startswith("  commands: build")


def test_missing_template_names_what_to_give(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "no-such-template-here"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "Error: template 'no-such-template-here' not found"
    assert ".pkr.hcl" in err[1] and "Traceback" not in "\n".join(err)


def test_validate_seed_twins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SEED / "packer.json")]) == 0
    assert main(["validate", str(SEED / "build.pkr.hcl")]) == 0
    out = capsys.readouterr()
    assert "Template validated successfully." in out.out and "The configuration is valid." in out.out
    # The seed types its boot command with no console=ttyS0: the one warning is that vmbake cannot see
    # the installer's dialogs (vmbake.installer.console_watch).
    warnings = out.err.splitlines()
    assert len(warnings) == 2 and all("(no console=ttyS0)" in line for line in warnings), out.err


def test_inspect_json_layout_masks_sensitive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(SEED / "packer.json")]) == 0
    out = capsys.readouterr().out
    assert "Optional variables and their defaults:" in out
    assert "  root_password = <sensitive>" in out and "r00tme" not in out
    assert "  vm_name       = buster" in out
    assert "Builders:\n\n  qemu\n" in out
    assert "Provisioners:\n\n  file\n  shell\n" in out


def test_inspect_hcl_layout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(SEED / "build.pkr.hcl")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Packer Inspect: HCL2 mode")
    assert 'var.vm_name: "buster"' in out and "var.root_password: <sensitive>" in out and "r00tme" not in out
    assert "  > qemu.buster:" in out and "      file\n      shell\n" in out


def test_inspect_required_variables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads((SEED / "packer.json").read_text())
    data["variables"]["token"] = None
    data["builders"][0]["http_directory"] = str(SEED / "htdocs")
    data["builders"][0]["ssh_private_key_file"] = str(SEED / "ssh_key.placeholder")
    data["provisioners"][0]["source"] = str(SEED / "provision.sh")
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    assert main(["inspect", str(path)]) == 0
    assert "Required variables:\n\n  token\n" in capsys.readouterr().out
    assert main(["validate", str(path)]) == 1
    assert "required variable 'token' is not set" in capsys.readouterr().err


def test_var_flag_without_equals(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-var", "novalue", str(SEED / "packer.json")]) == 1
    assert "expected NAME=VALUE" in capsys.readouterr().err


def test_build_hands_the_loaded_template_to_run_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_builds is replaced by a recorder: this test checks the CLI's hand-over, not a build."""
    import vmbake.build

    seen: dict[str, Any] = {}

    def fake(template: Template, options: Options, ui: Ui) -> int:
        seen.update(template=template, options=options)
        return 7

    monkeypatch.setattr(vmbake.build, "run_builds", fake)
    rc = main(["build", "--force", "-on-error=ask", "-only=qemu", "-report=false", str(SEED / "packer.json")])
    assert rc == 7
    assert seen["options"] == Options(debug=False, force=True, on_error="ask", report=False)
    assert [b.name for b in seen["template"].builds] == ["qemu"]  # the loader selected the builds


def test_bad_on_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "-on-error=explode", str(SEED / "packer.json")]) == 1
    assert "invalid -on-error='explode'" in capsys.readouterr().err


def test_template_directory_and_shipped_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SEED)]) == 0  # a directory with .pkr.hcl files loads them
    assert "The configuration is valid." in capsys.readouterr().out


def test_machine_readable_inspect(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-machine-readable", "inspect", str(SEED / "packer.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(",template-builder,qemu,qemu" in ln for ln in lines)
    assert any(",template-variable,root_password,<sensitive>," in ln for ln in lines)


def test_console_script_runs(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "vmbake", "--version"], capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.startswith("vmbake ")


def test_help_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["help", "keys", "shell"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("### `shell`") and '| `inline_shebang` | str | `"/bin/sh -e"` |' in out
    assert "### `qemu`" not in out
    assert main(["help", "keys", "QemuConfig"]) == 0
    assert "| `disk_size` |" in capsys.readouterr().out
    assert main(["help", "keys", "nope"]) == 1


def test_keyboard_interrupt_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """load_template is replaced by one that raises KeyboardInterrupt, as a Ctrl-C during loading would."""
    import vmbake.cli

    def interrupted(*_a: Any, **_k: Any) -> Template:
        raise KeyboardInterrupt

    monkeypatch.setattr(vmbake.cli, "load_template", interrupted)
    assert main(["validate", str(SEED / "packer.json")]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_packer_log_turns_on_debug_logging(tmp_path: Path) -> None:
    log = tmp_path / "vmbake.log"
    env = {"PACKER_LOG": "1", "PACKER_LOG_PATH": str(log), "PATH": "/usr/bin:/bin"}
    code = "import logging, sys; from vmbake.cli import main; rc = main(sys.argv[1:]); " \
           "logging.getLogger('vmbake.test').debug('hello from the log'); sys.exit(rc)"  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code, "--version"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0
    assert "hello from the log" in log.read_text()


def test_verify_is_handed_its_arguments(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """vmbake.verify.main is replaced by a recorder: this checks the hand-over only."""
    from vmbake import verify

    seen: list[list[str]] = []
    monkeypatch.setattr(verify, "main", lambda args: seen.append(args) or 0)
    assert main(["verify", "-ssh-key", "k", "img.qcow2"]) == 0
    assert seen == [["-ssh-key", "k", "img.qcow2"]]


def test_help_template(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["help", "template"]) == 0
    out = capsys.readouterr().out
    assert "{{user `name`}}" in out and "path.root" in out and "{{ .HTTPIP }}" in out


def test_internal_error_is_one_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """load_template is replaced by one that fails like a bug would."""
    import vmbake.cli

    def broken(*_a: Any, **_k: Any) -> Template:
        raise RuntimeError("boom")

    monkeypatch.setattr(vmbake.cli, "load_template", broken)
    assert main(["validate", str(SEED / "packer.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: internal error: RuntimeError('boom')") and "Traceback" not in err
    assert main(["validate", "-debug", str(SEED / "packer.json")]) == 1
    assert "Traceback" in capsys.readouterr().err
