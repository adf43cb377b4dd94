""".pkr.json templates (HCL2 in JSON syntax) load to the model their .pkr.hcl form loads to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmbake.errors import TemplateError
from vmbake.template import load_template

SOURCE = {
    "iso_url": "http://deb.example.invalid/x.iso",
    "iso_checksum": "none",
    "ssh_username": "root",
    "ssh_password": "pw",
    "shutdown_command": "poweroff",
}

JSON_FORM = {
    "//": "a comment is ignored",
    "packer": {"required_plugins": {"qemu": {"version": ">= 1.0.0", "source": "github.com/hashicorp/qemu"}}},
    "variable": {
        "release": {"type": "string", "default": "bookworm"},
        "cpus": {
            "type": "number",
            "default": 2,
            "validation": {"condition": "${var.cpus > 0}", "error_message": "The cpus must be positive."},
        },
        "sizes": {"type": "list(string)", "default": ["1G", "2G"]},
    },
    "locals": [{"name": "deb-${var.release}"}, {"path": "C:\\tmp\\$${x}"}],
    "source": {
        "qemu": {
            "deb": {
                **SOURCE,
                "vm_name": "${local.name}",
                "cpus": "${var.cpus}",
                "qemu_img_args": {"create": ["-o", "preallocation=off"]},
                "qemuargs": [["-m", "1024"]],
                "dynamic": {"__unused": {"for_each": "${[]}", "content": {}}},
            }
        }
    },
    "build": [
        {
            "name": "images",
            "sources": ["source.qemu.deb"],
            "provisioner": [
                {
                    "shell": {
                        "inline": ["echo ${source.name} ${build.name} ${build.Host}", "echo ${local.path}"]
                    }
                },
                {"shell-local": {"inline": ["echo ${upper(var.release)}"], "only": ["qemu.deb"]}},
                {"shell": [{"inline": ["echo one"]}, {"inline": ["echo two"]}]},
            ],
            "post-processors": [
                {"post-processor": [{"checksum": {"checksum_types": ["sha256"]}}, {"compress": {}}]}
            ],
        }
    ],
}

HCL_FORM = r"""
packer {
  required_plugins {
    qemu = { version = ">= 1.0.0", source = "github.com/hashicorp/qemu" }
  }
}
variable "release" {
  type    = string
  default = "bookworm"
}
variable "cpus" {
  type    = number
  default = 2
  validation {
    condition     = var.cpus > 0
    error_message = "The cpus must be positive."
  }
}
variable "sizes" {
  type    = list(string)
  default = ["1G", "2G"]
}
locals {
  name = "deb-${var.release}"
}
locals {
  path = "C:\\tmp\\$${x}"
}
source "qemu" "deb" {
  iso_url          = "http://deb.example.invalid/x.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = "pw"
  shutdown_command = "poweroff"
  vm_name          = "${local.name}"
  cpus             = var.cpus
  qemu_img_args {
    create = ["-o", "preallocation=off"]
  }
  qemuargs = [["-m", "1024"]]
}
build {
  name    = "images"
  sources = ["source.qemu.deb"]
  provisioner "shell" {
    inline = ["echo ${source.name} ${build.name} ${build.Host}", "echo ${local.path}"]
  }
  provisioner "shell-local" {
    inline = ["echo ${upper(var.release)}"]
    only   = ["qemu.deb"]
  }
  provisioner "shell" {
    inline = ["echo one"]
  }
  provisioner "shell" {
    inline = ["echo two"]
  }
  post-processors {
    post-processor "checksum" {
      checksum_types = ["sha256"]
    }
    post-processor "compress" {}
  }
}
"""


def test_json_syntax_loads_to_the_same_model_as_hcl(tmp_path: Path) -> None:
    (tmp_path / "j").mkdir()
    (tmp_path / "h").mkdir()
    (tmp_path / "j" / "t.pkr.json").write_text(json.dumps(JSON_FORM, indent=2))
    (tmp_path / "h" / "t.pkr.hcl").write_text(HCL_FORM)
    from_json = load_template(tmp_path / "j" / "t.pkr.json")
    from_hcl = load_template(tmp_path / "h" / "t.pkr.hcl")
    assert from_json.builds == from_hcl.builds
    assert from_json.values == from_hcl.values == {"release": "bookworm", "cpus": 2, "sizes": ["1G", "2G"]}
    (build,) = from_json.builds
    assert build.name == "images.qemu.deb"
    assert [p.config.inline for p in build.provisioners] == [
        ["echo deb images {{ build `Host` }}", "echo C:\\tmp\\${x}"],
        ["echo BOOKWORM"],
        ["echo one"],
        ["echo two"],
    ]
    assert [[p.type for p in chain] for chain in build.post_processors] == [["checksum", "compress"]]
    # the directory form reads .pkr.json files beside .pkr.hcl ones, and a .pkrvars.json var file
    (tmp_path / "j" / "vars.pkrvars.json").write_text('{"sizes": ["3G"], "cpus": 4}')
    loaded = load_template(tmp_path / "j", var_files=[tmp_path / "j" / "vars.pkrvars.json"])
    assert loaded.values["sizes"] == ["3G"] and loaded.builds[0].config.cpus == 4


@pytest.mark.parametrize(
    ("change", "needle", "key", "words"),
    [
        (lambda t: t["source"]["qemu"]["deb"].update(disk_sise="1G"), '"disk_sise"', "source.qemu.deb.disk_sise",
         "unknown key 'disk_sise'"),
        (lambda t: t["build"][0]["provisioner"][1]["shell-local"].update(inline="${var.nope}"), "${var.nope}",
         "build[0].provisioner[1].inline", "var.nope"),
        (lambda t: t["variable"]["cpus"].update(default=-1), '"cpus": {', "variable.cpus", "must be positive"),
        (lambda t: t.update(build=[{"sources": ["source.qemu.deb"], "provisioner": "shell"}]),
         '"provisioner": "shell"', "build[0].provisioner", "expected a JSON object"),
    ],
)  # fmt: skip
def test_problems_name_the_file_key_and_line(
    tmp_path: Path, change: object, needle: str, key: str, words: str
) -> None:
    template = json.loads(json.dumps(JSON_FORM))
    change(template)  # type: ignore[operator]
    path = tmp_path / "t.pkr.json"
    text = json.dumps(template, indent=2)
    path.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if needle in row)
    with pytest.raises(TemplateError) as info:
        load_template(path)
    found = [p for p in info.value.problems if words in p.message]
    assert found, info.value.problems
    assert found[0].file == str(path)
    assert found[0].key.startswith(key.split("[")[0])
    assert found[0].line == line, found[0]


def test_winrm_validates_but_build_refuses_it(tmp_path: Path) -> None:
    from vmbake.build import runnable_builds
    from vmbake.errors import VmbakeError
    from vmbake.ui import Ui

    path = tmp_path / "t.pkr.json"
    body = {**SOURCE, "communicator": "winrm", "winrm_use_ssl": True, "winrm_host": "10.0.2.15"}
    path.write_text(json.dumps({"source": {"qemu": {"w": body}}, "build": {"sources": ["source.qemu.w"]}}))
    template = load_template(path)
    assert any("no WinRM communicator" in w.message for w in template.warnings)
    with pytest.raises(VmbakeError, match="winrm communicator is not supported"):
        runnable_builds(template, Ui())
