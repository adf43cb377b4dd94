"""HCL2 templates: blocks, references, variable files and PKR_VAR_x, and parity with the JSON form."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from vmbake.config.qemu import QemuConfig
from vmbake.errors import TemplateError
from vmbake.template import load_template

SEED = Path(__file__).resolve().parents[1] / "data" / "templates" / "seed-buster"
SHA = "sha256:" + "0" * 64

SOURCE = f"""
source "qemu" "deb" {{
  iso_url      = "http://example.invalid/d.iso"
  iso_checksum = "{SHA}"
  ssh_username = "root"
  EXTRA
}}
"""


@pytest.fixture(scope="module", autouse=True)
def _warm_parser() -> None:
    """python-hcl2 builds its grammar on first use (about half a second); do it once per module."""
    import hcl2

    hcl2.loads("a = 1")


def write(tmp_path: Path, text: str, name: str = "t.pkr.hcl") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def template(tmp_path: Path, extra: str = "", build: str = "", head: str = "", **kw: Any) -> Any:
    text = (
        head + SOURCE.replace("EXTRA", extra) + 'build {\n  sources = ["source.qemu.deb"]\n' + build + "\n}\n"
    )
    return load_template(write(tmp_path, text), **kw)


def problems(
    tmp_path: Path, extra: str = "", build: str = "", head: str = "", **kw: Any
) -> list[tuple[str, str]]:
    with pytest.raises(TemplateError) as info:
        template(tmp_path, extra, build, head, **kw)
    return [(p.key, p.message) for p in info.value.problems]


def test_json_and_hcl_twins_load_to_the_same_model() -> None:
    from_json = load_template(SEED / "packer.json")
    from_hcl = load_template(SEED / "build.pkr.hcl")
    assert [(b.type, b.config) for b in from_json.builds] == [(b.type, b.config) for b in from_hcl.builds]
    assert from_json.builds[0].provisioners == from_hcl.builds[0].provisioners
    assert from_json.builds[0].post_processors == from_hcl.builds[0].post_processors
    assert from_json.variables == from_hcl.variables and from_json.values == from_hcl.values
    assert from_json.description == from_hcl.description
    assert from_json.sensitive_values == from_hcl.sensitive_values == ["r00tme"]  # also ssh_password's value
    config = from_hcl.builds[0].config
    assert isinstance(config, QemuConfig)
    assert config.http_directory == str(SEED / "htdocs") and config.qemuargs == [
        ["-m", "1024M"],
        ["-smp", "2"],
    ]
    assert (
        config.boot_command[-1] == "url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/virtual-host.cfg<wait5><enter>"
    )


def test_build_names_are_type_dot_name(tmp_path: Path) -> None:
    t = template(tmp_path)
    assert [b.name for b in t.builds] == ["qemu.deb"] and t.builds[0].source_name == "deb"
    assert [b.name for b in template(tmp_path, only=["deb"]).builds] == ["qemu.deb"]
    assert [b.name for b in template(tmp_path, only=["qemu.*"]).builds] == ["qemu.deb"]


def test_references_var_local_path(tmp_path: Path) -> None:
    head = """
    variable "mem" {
      type    = number
      default = 768
    }
    locals {
      name = "img-${var.mem}"
      full = "${local.name}.qcow2"
    }
    """
    t = template(
        tmp_path, 'memory = var.mem\n  vm_name = local.full\n  http_directory = "${path.root}"', head=head
    )
    config = t.builds[0].config
    assert config.memory == 768 and config.vm_name == "img-768.qcow2"
    assert config.http_directory == str(tmp_path.resolve())


def test_source_name_in_provisioners_is_per_build(tmp_path: Path) -> None:
    t = template(
        tmp_path, build='provisioner "shell" {\n inline = ["echo ${source.name} ${upper(source.type)}"]\n}'
    )
    assert t.builds[0].provisioners[0].config.inline == ["echo deb QEMU"]


def test_variable_sources_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    head = """
    variable "a" { default = "default" }
    variable "b" { default = "default" }
    variable "c" { default = "default" }
    variable "d" { default = "default" }
    """
    monkeypatch.setenv("PKR_VAR_a", "env")
    monkeypatch.setenv("PKR_VAR_b", "env")
    monkeypatch.setenv("PKR_VAR_c", "env")
    (tmp_path / "x.auto.pkrvars.hcl").write_text('b = "auto"\nc = "auto"\n')
    var_file = tmp_path / "mine.pkrvars.hcl"
    var_file.write_text('c = "file"\n')
    t = template(tmp_path, 'vm_name = "${var.a}-${var.b}-${var.c}-${var.d}"', head=head, vars={"d": "cli"},
                 var_files=[var_file])  # fmt: skip
    assert t.builds[0].config.vm_name == "env-auto-file-cli"


def test_required_and_sensitive_variables(tmp_path: Path) -> None:
    head = 'variable "pw" {\n  type = string\n  sensitive = true\n}\n'
    found = problems(tmp_path, "ssh_password = var.pw", head=head)
    assert found == [("variable.pw", "required variable 'pw' is not set")]
    t = template(tmp_path, "ssh_password = var.pw", head=head, vars={"pw": "hunter22"})
    assert t.variables["pw"].sensitive and t.sensitive_values == ["hunter22"]


def test_typed_cli_variable_is_checked(tmp_path: Path) -> None:
    head = 'variable "mem" {\n  type = number\n  default = 1\n}\n'
    assert problems(tmp_path, "memory = var.mem", head=head, vars={"mem": "lots"}) == [
        (
            "mem",
            "invalid value for variable 'mem': it is not compatible with the type number: "
            "a number is required, got 'lots'",
        )
    ]


def test_variables_block_and_json_var_file(tmp_path: Path) -> None:
    var_file = tmp_path / "v.json"
    var_file.write_text('{"name": "from-json"}')
    t = template(tmp_path, "vm_name = var.name", head='variables {\n  name = "x"\n}\n', var_files=[var_file])
    assert t.builds[0].config.vm_name == "from-json"


def test_directory_of_files(tmp_path: Path) -> None:
    write(tmp_path, 'variable "n" {\n  default = "split"\n}\n', "variables.pkr.hcl")
    write(tmp_path, SOURCE.replace("EXTRA", "vm_name = var.n"), "sources.pkr.hcl")
    write(tmp_path, 'build {\n  sources = ["source.qemu.deb"]\n}\n', "build.pkr.hcl")
    t = load_template(tmp_path)
    assert t.format == "hcl2" and t.builds[0].config.vm_name == "split"


def test_post_processors_and_chains(tmp_path: Path) -> None:
    build = """
    post-processor "checksum" {
      checksum_types = ["sha256"]
    }
    post-processors {
      post-processor "compress" {}
      post-processor "manifest" {}
    }
    """
    chains = template(tmp_path, build=build).builds[0].post_processors
    assert [[p.type for p in c] for c in chains] == [["checksum"], ["compress", "manifest"]]


def test_build_source_block_renames(tmp_path: Path) -> None:
    text = (
        SOURCE.replace("EXTRA", "")
        + 'build {\n  source "source.qemu.deb" {\n    name = "efi"\n    efi_boot = true\n  }\n}\n'
    )
    t = load_template(write(tmp_path, text))
    assert [b.name for b in t.builds] == ["qemu.efi"] and t.builds[0].config.efi_boot is True


def test_escapes_heredoc_and_literal_interpolation(tmp_path: Path) -> None:
    build = 'provisioner "shell" {\n  inline = ["echo \\"$${HOME}\\"", <<EOF\nline one\nEOF\n  ]\n}'
    inline = template(tmp_path, build=build).builds[0].provisioners[0].config.inline
    assert inline[0] == 'echo "${HOME}"' and inline[1] == "line one\n"  # HCL keeps the heredoc's last newline


@pytest.mark.parametrize(
    ("extra", "build", "key", "message"),
    [
        ("memory = var.nope", "", "source.qemu.deb.memory", "var.nope is not defined"),
        ("memroy = 1", "", "source.qemu.deb.memroy", "unknown key 'memroy'"),
        ('disk_size = "big"', "", "source.qemu.deb.disk_size", "invalid size"),
        ('boot_command = ["<wait0>"]', "", "source.qemu.deb.boot_command", "longer than zero"),
        (
            "",
            'provisioner "salt-masterless" {}',
            "build[0].provisioner[0]",
            "unknown provisioner type 'salt-masterless'",
        ),
        ("", 'sources = ["source.qemu.nope"]', "build[0].sources[1]", "no source block 'source.qemu.nope'"),
        ('vm_name = frob("x")', "", "source.qemu.deb.vm_name", "function 'frob' is not one of Packer's"),
    ],
)
def test_hcl_problems_name_the_key(tmp_path: Path, extra: str, build: str, key: str, message: str) -> None:
    if build.startswith("sources"):
        text = (
            SOURCE.replace("EXTRA", extra)
            + 'build {\n  sources = ["source.qemu.deb", "source.qemu.nope"]\n}\n'
        )
        with pytest.raises(TemplateError) as info:
            load_template(write(tmp_path, text))
        found = [(p.key, p.message) for p in info.value.problems]
    else:
        found = problems(tmp_path, extra, build)
    assert any(k == key and message in m for k, m in found), found


def test_hcl_syntax_error_has_line(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as info:
        load_template(write(tmp_path, 'source "qemu" "x" {\n  a = = 1\n}\n'))
    (problem,) = info.value.problems
    assert problem.line == 2 and problem.message.startswith("invalid HCL")


def test_problems_carry_hcl_lines(tmp_path: Path) -> None:
    text = SOURCE.replace("EXTRA", 'disk_size = "big"') + (
        'build {\n  sources = ["source.qemu.deb"]\n  provisioner "shell" {\n    inline = ["a"]\n  }\n'
        '  provisioner "file" {\n    destination = "/tmp/"\n    sourse = "x"\n  }\n}\n'
    )
    path = write(tmp_path, text)
    with pytest.raises(TemplateError) as info:
        load_template(path)
    lines = path.read_text().splitlines()
    found = {p.key: p.line for p in info.value.problems}
    assert lines[found["source.qemu.deb.disk_size"] - 1].strip().startswith("disk_size")
    assert lines[found["build[0].provisioner[1].sourse"] - 1].strip().startswith("sourse")
