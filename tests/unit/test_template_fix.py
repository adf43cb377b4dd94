"""`vmbake fix`: Packer 1.6.6's fixers, one case each, and its output byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vmbake.cli import main
from vmbake.template.fix import fix, go_json

QEMU = {"type": "qemu", "iso_url": "http://example.invalid/d.iso", "ssh_username": "root"}


def fixed_builder(**keys: Any) -> dict[str, Any]:
    out = fix({"builders": [{**QEMU, **keys}]})["builders"][0]
    return {k: v for k, v in out.items() if k not in QEMU or out[k] != QEMU[k]}


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        # iso-md5, then iso-checksum-type-and-url joins type and value
        ({"iso_md5": "abc"}, {"iso_checksum": "md5:abc"}),
        ({"iso_checksum": "ab", "iso_checksum_type": "sha256"}, {"iso_checksum": "sha256:ab"}),
        (
            {"iso_checksum_url": "http://h/SUMS", "iso_checksum_type": "sha256"},
            {"iso_checksum": "file:http://h/SUMS"},
        ),
        ({"iso_checksum_type": "none"}, {}),  # nothing to join: both keys are dropped, as in Packer
        # sshkeypath, sshdisableagent (a boolean only), ssh-wait-timeout
        ({"ssh_key_path": "k"}, {"ssh_private_key_file": "k"}),
        ({"ssh_key_path": "k", "ssh_private_key_file": "j"}, {"ssh_private_key_file": "j"}),
        ({"ssh_disable_agent": True}, {"ssh_disable_agent_forwarding": True}),
        ({"ssh_disable_agent": "true"}, {"ssh_disable_agent": "true"}),
        ({"ssh_wait_timeout": "10m"}, {"ssh_timeout": "10m"}),
        ({"ssh_wait_timeout": "10m", "ssh_timeout": "5m"}, {"ssh_timeout": "5m"}),
        # qemu-disk-size, qemu-host-port
        ({"disk_size": 10240}, {"disk_size": "10240M"}),
        ({"disk_size": 10240.7}, {"disk_size": "10240M"}),
        ({"disk_size": "10G"}, {"disk_size": "10G"}),
        (
            {"ssh_host_port_min": 2222, "ssh_host_port_max": 2229},
            {"host_port_min": 2222, "host_port_max": 2229},
        ),
        # comm-config is for virtualbox builders only: Packer leaves qemu's ssh_skip_nat_mapping alone
        ({"ssh_skip_nat_mapping": True}, {"ssh_skip_nat_mapping": True}),
    ],
)
def test_builder_fixers(keys: dict[str, Any], expected: dict[str, Any]) -> None:
    assert fixed_builder(**keys) == expected


def test_other_plugin_fixers() -> None:
    tpl = fix(
        {
            "builders": [
                {"type": "virtualbox-iso", "ssh_host_port_min": 1, "ssh_skip_nat_mapping": True},
                {"type": "amazon-ebs", "ami_name": "x-{{ .CreateTime }}"},
            ],
            "provisioners": [{"type": "ansible-local", "galaxycommand": "g"}],
            "post-processors": [
                [{"type": "manifest", "filename": "m.json"}, "checksum"],
                {"type": "vagrant", "virtualbox": {"a": 1}, "output": "o"},
            ],
        }
    )
    assert tpl["builders"][0] == {"type": "virtualbox-iso", "host_port_min": 1, "skip_nat_mapping": True}
    assert tpl["builders"][1]["ami_name"] == "x-{{timestamp}}"
    assert tpl["provisioners"] == [{"type": "ansible-local", "galaxy_command": "g"}]
    assert tpl["post-processors"][0][0] == {"type": "manifest", "output": "m.json"}
    assert tpl["post-processors"][1] == {
        "type": "vagrant",
        "override": {"virtualbox": {"a": 1}},
        "output": "o",
    }


def test_go_json_is_packers_output() -> None:
    # The same bytes as `packer fix` 1.6.6 printed for this value: sorted keys, "&" escaped, "<>" not.
    value = {"b": [1.0, 2.5, 1e21, 1e-7, True, None, [], {}], "a": "x & <y>\t\u2028é"}
    assert go_json(value) == (
        "{\n"
        '  "a": "x \\u0026 <y>\\t\\u2028é",\n'
        '  "b": [\n    1,\n    2.5,\n    1e+21,\n    1e-7,\n    true,\n    null,\n    [],\n    {}\n  ]\n'
        "}"
    )


def test_fix_command_prints_and_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "old.json"
    builder = {
        **QEMU,
        "iso_checksum": "0" * 64,
        "iso_checksum_type": "sha256",
        "shutdown_command": "poweroff",
    }
    path.write_text(json.dumps({"builders": [builder]}))
    assert main(["validate", str(path)]) == 1
    assert "run 'vmbake fix TEMPLATE'" in capsys.readouterr().err
    assert main(["fix", str(path)]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["builders"][0]["iso_checksum"] == "sha256:" + "0" * 64
    assert out.startswith('{\n  "builders": [\n    {\n      "iso_checksum": "sha256:') and out.endswith(
        "}\n\n"
    )
    fixed = tmp_path / "new.json"
    fixed.write_text(out)
    assert main(["validate", str(fixed)]) == 0


def test_fix_command_reports_a_fixed_template_that_does_not_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"builders": [{**QEMU, "iso_md5": "abc"}]}))
    assert main(["fix", str(path)]) == 1
    err = capsys.readouterr().err
    assert "the fixed template failed to validate" in err and "builders[0].iso_checksum" in err
    assert main(["fix", "-validate=false", str(path)]) == 0


@pytest.mark.parametrize(
    ("text", "message"), [("{", "error parsing template at line 1"), ("[]", "a JSON object")]
)
def test_fix_command_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    assert main(["fix", str(path)]) == 1
    assert message in capsys.readouterr().err
    assert main(["fix", str(tmp_path / "missing.json")]) == 1
    assert "missing.json does not exist" in capsys.readouterr().err
