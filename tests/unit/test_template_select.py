"""Build selection before checking, in both formats: -only/-except, builder types vmbake does not run,
provisioners and post-processors bound to builds (Packer's only/except rules), and `inspect` on a template
that parses but does not validate."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from vmbake.cli import main
from vmbake.errors import TemplateError
from vmbake.template import load_template
from vmbake.template.model import Template

SHA = "sha256:" + "0" * 64


def qemu(name: str, **keys: Any) -> dict[str, Any]:
    return {"type": "qemu", "name": name, "iso_url": "http://example.invalid/d.iso", "iso_checksum": SHA,
            "ssh_username": "root", "shutdown_command": "poweroff", **keys}  # fmt: skip


VBOX = {"type": "virtualbox-iso", "guest_os_type": "Debian_64", "memory": "lots", "no_such_key": 1}


def write_json(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def problems(path: Path, **kw: Any) -> list[tuple[str, str]]:
    with pytest.raises(TemplateError) as info:
        load_template(path, **kw)
    return [(p.key, p.message) for p in info.value.problems]


def names(t: Template) -> list[str]:
    return [b.name for b in t.builds]


def inline(t: Template, build: str) -> list[list[str]]:
    return [p.config.inline for p in t.build(build).provisioners]


# -- JSON ---------------------------------------------------------------------------------------------------
def test_json_only_except_by_plain_name_glob_and_type_dot_name(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"builders": [qemu("installer"), qemu("inst-efi"), qemu("other")]})
    assert names(load_template(path, only=["installer"])) == ["installer"]
    assert names(load_template(path, only=["inst*"])) == ["installer", "inst-efi"]
    assert names(load_template(path, except_=["inst*"])) == ["other"]
    assert names(load_template(path, only=["qemu.other"])) == ["other"]  # vmbake also takes TYPE.NAME
    t = load_template(path, only=["other", "nothing"])
    assert names(t) == ["other"] and [w.message for w in t.warnings] == ["-only=nothing matches no build"]


def test_json_foreign_builder_is_kept_unchecked_and_skipped(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"builders": [VBOX, qemu("qemu")]})
    t = load_template(path)  # VBOX's bad memory and unknown key are not looked at
    assert [(b.name, b.type, b.runs) for b in t.builds] == [
        ("virtualbox-iso", "virtualbox-iso", False),
        ("qemu", "qemu", True),
    ]
    assert t.build("virtualbox-iso").config is None and [b.name for b in t.skipped] == ["virtualbox-iso"]
    assert problems(path, only=["virtualbox-iso"]) == [
        ("builders[0].type", "vmbake runs none of the selected builds: virtualbox-iso (virtualbox-iso)")
    ]


def test_json_foreign_builder_alone_is_an_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as info:
        load_template(write_json(tmp_path, {"builders": [VBOX]}))
    (problem,) = info.value.problems
    assert "vmbake runs none of the selected builds" in problem.message
    assert "qemu" in problem.hint and "-only" not in problem.hint  # nothing else to select


def test_json_a_typo_of_a_vmbake_type_is_still_an_error(tmp_path: Path) -> None:
    assert problems(write_json(tmp_path, {"builders": [{**qemu("q"), "type": "qemuu"}]})) == [
        ("builders[0].type", "unknown builder type 'qemuu'")
    ]


def test_json_files_of_excluded_builds_are_not_checked(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.sh")
    data = {
        "builders": [qemu("a"), qemu("b", floppy_files=[str(tmp_path / "nofile")])],
        "provisioners": [
            {"type": "shell", "script": missing, "only": ["b"]},
            {"type": "shell", "inline": ["echo {{build_name}}"]},
        ],
    }
    path = write_json(tmp_path, data)
    t = load_template(path, only=["a"])
    assert names(t) == ["a"] and inline(t, "a") == [["echo a"]]
    found = problems(path)
    assert ("builders[1].floppy_files[0]", f"{str(tmp_path / 'nofile')!r} does not exist") in found
    assert any(key == "provisioners[0].script" for key, _ in found)


def test_json_provisioner_bound_to_a_foreign_build_is_not_decoded(tmp_path: Path) -> None:
    data = {
        "builders": [VBOX, qemu("qemu")],
        "provisioners": [{"type": "ansible", "playbook_file": "x.yml", "only": ["virtualbox-iso"]}],
    }
    assert load_template(write_json(tmp_path, data)).build("qemu").provisioners == ()


def test_json_provisioner_only_must_name_a_builder_exactly(tmp_path: Path) -> None:
    """Packer's template.Validate: 'only' specified builder 'x' not found; no globs, whatever -only says."""
    for only in (["nope"], ["qem*"]):
        data = {
            "builders": [qemu("qemu")],
            "provisioners": [{"type": "shell", "inline": ["x"], "only": only}],
        }
        assert problems(write_json(tmp_path, data), only=["qemu"]) == [
            ("provisioners[0].only[0]", f"no build named {only[0]!r}")
        ]


def test_json_only_and_except_together_are_refused(tmp_path: Path) -> None:
    data = {
        "builders": [qemu("a"), qemu("b")],
        "provisioners": [{"type": "shell", "inline": ["x"], "only": ["a"], "except": ["b"]}],
    }
    assert problems(write_json(tmp_path, data)) == [
        ("provisioners[0].except", "only one of 'only' or 'except' may be specified")
    ]


def test_json_error_cleanup_provisioner_runs_for_every_build(tmp_path: Path) -> None:
    """Packer neither checks nor reads its only/except (core.go builds it for every build)."""
    data = {
        "builders": [qemu("a"), qemu("b")],
        "error-cleanup-provisioner": {
            "type": "shell-local",
            "inline": ["echo {{build_name}}"],
            "only": ["x"],
        },
    }
    t = load_template(write_json(tmp_path, data))
    cleanups = [b.error_cleanup_provisioner for b in t.builds]
    assert [c.config.inline if c else None for c in cleanups] == [["echo a"], ["echo b"]]


def test_json_except_names_a_post_processor(tmp_path: Path) -> None:
    """-except=NAME drops that post-processor and the rest of its chain (Packer's core.go)."""
    data = {
        "builders": [qemu("qemu")],
        "post-processors": [["compress", {"type": "checksum", "name": "sums"}, "manifest"], "manifest"],
    }
    path = write_json(tmp_path, data)
    chains = load_template(path, except_=["sums"]).builds[0].post_processors
    assert [[p.type for p in c] for c in chains] == [["compress"], ["manifest"]]
    t = load_template(path, except_=["compress"])
    assert [[p.type for p in c] for c in t.builds[0].post_processors] == [["manifest"]]
    assert t.warnings == []  # it matched a post-processor


# -- HCL2 ---------------------------------------------------------------------------------------------------
HCL = """
source "qemu" "a" {
  iso_url      = "http://example.invalid/d.iso"
  iso_checksum = "SHA"
  ssh_username = "root"
  shutdown_command = "poweroff"
}
source "qemu" "b" {
  iso_url      = "http://example.invalid/d.iso"
  iso_checksum = "SHA"
  ssh_username = "root"
  shutdown_command = "poweroff"
  B_EXTRA
}
source "vmware-iso" "a" {
  guest_os_type = "debian10-64"
  memory        = "lots"
  no_such_key   = var.not_declared
}
"""


def write_hcl(tmp_path: Path, build: str, sources: str = "qemu.a qemu.b", b_extra: str = "") -> Path:
    refs = ", ".join(f'"source.{ref}"' for ref in sources.split())
    text = HCL.replace("SHA", SHA).replace("B_EXTRA", b_extra)
    path = tmp_path / "t.pkr.hcl"
    path.write_text(text + "build {\n  sources = [" + refs + "]\n" + textwrap.dedent(build) + "\n}\n")
    return path


def test_hcl_only_by_type_dot_name_glob_and_source_name(tmp_path: Path) -> None:
    path = write_hcl(tmp_path, "", "qemu.a vmware-iso.a")
    assert names(load_template(path, only=["qemu.a"])) == ["qemu.a"]
    assert names(load_template(path, only=["*.a"])) == ["qemu.a", "vmware-iso.a"]
    assert names(load_template(path, except_=["vmware-iso.*"])) == ["qemu.a"]
    assert names(load_template(path, only=["a"])) == ["qemu.a", "vmware-iso.a"]  # vmbake: bare NAME too


def test_hcl_foreign_source_is_kept_unchecked_and_alone_is_an_error(tmp_path: Path) -> None:
    path = write_hcl(tmp_path, "", "qemu.a vmware-iso.a")
    t = load_template(path)  # vmware-iso.a's keys, and the undeclared variable it reads, are not looked at
    assert [(b.name, b.runs) for b in t.builds] == [("qemu.a", True), ("vmware-iso.a", False)]
    assert problems(path, only=["vmware-iso.a"]) == [
        ("source.vmware-iso.a", "vmbake runs none of the selected builds: vmware-iso.a (vmware-iso)")
    ]


def test_hcl_provisioner_only_matches_type_dot_name_exactly(tmp_path: Path) -> None:
    build = """
    provisioner "shell" {
      only   = ["qemu.a"]
      inline = ["only a"]
    }
    provisioner "shell" {
      only   = ["a"]
      inline = ["never: a bare NAME names no build"]
    }
    provisioner "shell" {
      only   = ["qemu.nowhere"]
      inline = ["never: no such build, and no error"]
    }
    provisioner "shell" {
      except = ["qemu.a"]
      inline = ["${source.name} {{ build_name }}"]
    }
    """
    t = load_template(write_hcl(tmp_path, build), only=["qemu.*"])
    assert inline(t, "qemu.a") == [["only a"]]
    assert inline(t, "qemu.b") == [["b qemu.b"]]


def test_hcl_files_of_excluded_builds_are_not_checked(tmp_path: Path) -> None:
    build = f"""
    provisioner "shell" {{
      only   = ["qemu.b"]
      script = "{tmp_path / "missing.sh"}"
    }}
    """
    path = write_hcl(tmp_path, build, b_extra=f'floppy_files = ["{tmp_path / "nofile"}"]')
    t = load_template(path, except_=["qemu.b"])
    assert names(t) == ["qemu.a"] and t.build("qemu.a").provisioners == ()
    found = problems(path)
    assert any(key.endswith("floppy_files[0]") for key, _ in found)
    assert any(key == "build[0].provisioner[0].script" for key, _ in found)


def test_hcl_only_with_except_is_refused(tmp_path: Path) -> None:
    build = 'provisioner "shell" {\n  only = ["qemu.a"]\n  except = ["qemu.b"]\n  inline = ["x"]\n}'
    assert problems(write_hcl(tmp_path, build)) == [
        ("build[0].provisioner[0].except", "only one of 'only' or 'except' may be specified")
    ]


def test_hcl_override_is_keyed_by_source_name(tmp_path: Path) -> None:
    """Packer's startProvisioner looks the override up by the source's name (source.name())."""
    build = """
    provisioner "shell" {
      inline   = ["plain"]
      override = {
        a = { inline = ["for a"] }
        "qemu.b" = { inline = ["not a key Packer reads"] }
      }
    }
    """
    t = load_template(write_hcl(tmp_path, build))
    assert inline(t, "qemu.a") == [["for a"]] and inline(t, "qemu.b") == [["plain"]]


def test_hcl_except_glob_names_a_post_processor(tmp_path: Path) -> None:
    build = """
    post-processors {
      post-processor "compress" {}
      post-processor "checksum" {
        name = "sums"
      }
      post-processor "manifest" {}
    }
    post-processors {
      post-processor "manifest" {}
    }
    """
    t = load_template(write_hcl(tmp_path, build, "qemu.a"), except_=["su*"])
    assert [[p.type for p in c] for c in t.builds[0].post_processors] == [["compress"], ["manifest"]]


def test_hcl_blocks_belong_to_their_build_block(tmp_path: Path) -> None:
    """Each build block's provisioners and error-cleanup-provisioner apply to its own sources only."""
    path = write_hcl(
        tmp_path,
        'provisioner "shell" {\n  inline = ["first"]\n}\n'
        'error-cleanup-provisioner "shell-local" {\n  inline = ["clean first"]\n}',
        "qemu.a",
    )
    with path.open("a") as f:
        f.write(
            'build {\n  sources = ["source.qemu.b"]\n'
            '  error-cleanup-provisioner "shell-local" {\n    inline = ["clean second"]\n  }\n}\n'
        )
    t = load_template(path)
    assert inline(t, "qemu.a") == [["first"]] and inline(t, "qemu.b") == []
    cleanups = [b.error_cleanup_provisioner for b in t.builds]
    assert [c.config.inline if c else None for c in cleanups] == [["clean first"], ["clean second"]]


# -- commands -----------------------------------------------------------------------------------------------
def test_validate_names_the_builds_it_did_not_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_json(tmp_path, {"builders": [VBOX, qemu("qemu")]})
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Not checked, as vmbake does not run their builder types: virtualbox-iso (virtualbox-iso)" in out
    assert "Template validated successfully." in out


def test_validate_warns_of_a_missing_http_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Packer looks at http_directory only when the build starts its HTTP server; vmbake's build fails there
    (test_httpserver), and validate warns."""
    path = write_json(tmp_path, {"builders": [qemu("qemu", http_directory=str(tmp_path / "htdocs"))]})
    assert main(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert "builders[0].http_directory:" in captured.err and "does not exist" in captured.err


def test_inspect_needs_only_a_template_that_parses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = {
        "builders": [VBOX, qemu("qemu", memory="lots")],
        "provisioners": [{"type": "ansible", "playbook_file": "nowhere.yml"}],
        "post-processors": ["vagrant"],
    }
    path = write_json(tmp_path, data)
    assert main(["validate", str(path)]) == 1
    capsys.readouterr()
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "virtualbox-iso" in out and "  ansible" in out and "0: vagrant" in out


def test_inspect_hcl_lists_foreign_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build = 'provisioner "ansible" {\n  only = ["vmware-iso.a"]\n  playbook_file = "x.yml"\n}'
    path = write_hcl(tmp_path, build, "vmware-iso.a")
    assert main(["validate", str(path)]) == 1
    capsys.readouterr()
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "> vmware-iso.a:" in out and "      ansible" in out


def test_selecting_nothing_validates_with_a_warning_and_builds_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Packer 1.6.6 accepts -only matching nothing; current Packer's build then stops: No builds to run."""
    path = write_json(tmp_path, {"builders": [qemu("qemu")]})
    assert main(["validate", "-only=nothing", str(path)]) == 0
    assert "-only=nothing matches no build" in capsys.readouterr().err
    assert main(["build", "-only=nothing", str(path)]) == 1
    assert "no build to run" in capsys.readouterr().err


def test_inspect_does_not_run_the_template_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """packer inspect 1.6.6 lists a JSON template whose provisioner names a missing build (validate refuses)."""
    data = {
        "builders": [qemu("qemu")],
        "provisioners": [{"type": "shell", "inline": ["x"], "only": ["vbox"]}],
    }
    path = write_json(tmp_path, data)
    assert main(["validate", str(path)]) == 1
    assert main(["inspect", str(path)]) == 0
    assert "  shell" in capsys.readouterr().out
