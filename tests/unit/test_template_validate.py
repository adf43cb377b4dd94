"""Validation: a table of malformed templates, each exiting 1 with the right key path and no traceback."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vmbake.cli import main
from vmbake.template.validate import check_checksum

SHA = "sha256:" + "0" * 64
BASE: dict[str, Any] = {
    "variables": {"name": "deb"},
    "builders": [{"type": "qemu", "iso_url": "http://example.invalid/d.iso", "iso_checksum": SHA,
                  "ssh_username": "root", "boot_command": ["<esc><wait5>install<enter>"]}],
    "provisioners": [{"type": "shell", "inline": ["echo hi"]}],
}  # fmt: skip

Edit = Callable[[dict[str, Any]], None]


def b(**keys: Any) -> Edit:
    return lambda t: t["builders"][0].update(keys)


def p(**keys: Any) -> Edit:
    return lambda t: t["provisioners"][0].update(keys)


def drop(key: str) -> Edit:
    return lambda t: t["builders"][0].pop(key)


CASES: list[tuple[str, Edit, str, str]] = [
    ("bad type", b(memory="lots"), "builders[0].memory", "expected a whole number"),
    ("bad bool", b(headless="maybe"), "builders[0].headless", "expected a boolean"),
    ("unknown key", b(memroy=1024), "builders[0].memroy", "did you mean 'memory'"),
    ("unknown builder", b(type="qemuu"), "builders[0].type", "did you mean 'qemu'?"),
    ("only a foreign builder", b(type="virtualbox-iso"), "builders[0].type", "runs none of the selected builds"),
    ("unknown provisioner", p(type="salt-masterless"), "provisioners[0].type", "supported: shell, file, shell-local"),
    ("iso_url with iso_urls", b(iso_urls=["http://example.invalid/e.iso"]), "builders[0].iso_urls", "cannot both"),
    ("short sha256", b(iso_checksum="sha256:abc"), "builders[0].iso_checksum", "64 hex digits"),
    ("unknown hash", b(iso_checksum="crc32:abcd"), "builders[0].iso_checksum", "unknown checksum type"),
    ("not hex", b(iso_checksum="md5:" + "z" * 32), "builders[0].iso_checksum", "not a hexadecimal checksum"),
    ("no checksum", drop("iso_checksum"), "builders[0].iso_checksum", "iso_checksum is required"),
    ("disk_size not a size", b(disk_size="big"), "builders[0].disk_size", "invalid size"),
    ("zero wait", b(boot_command=["<wait0>"]), "builders[0].boot_command", "longer than zero"),
    ("negative wait", b(boot_command=["<esc><wait-5s>"]), "builders[0].boot_command", "longer than zero"),
    ("template error", b(vm_name="{{if user `nope`}}"), "builders[0].vm_name", "has no matching {{end}}"),
    ("no iso", drop("iso_url"), "builders[0].iso_url", "one of iso_url or iso_urls is required"),
    ("port range", b(host_port_min=5000, host_port_max=4000), "builders[0].host_port_min", "greater than"),
    ("bad choice", b(disk_interface="nvme"), "builders[0].disk_interface", "'nvme' is not valid"),
    ("bad duration", b(ssh_timeout="forever"), "builders[0].ssh_timeout", "invalid duration"),
    ("env outside variables", b(vm_name="{{env `HOME`}}"), "builders[0].vm_name", "only allowed in the 'variables'"),
    ("unknown function", b(vm_name="{{ frob }}"), "builders[0].vm_name", "function 'frob' is not defined"),
    ("no ssh_username", drop("ssh_username"), "builders[0].ssh_username", "ssh_username is required"),
    ("top-level typo", lambda t: t.update(buildrs=[]), "buildrs", "did you mean 'builders'"),
    ("shell without body", p(inline=[]), "provisioners[0]", "one of inline, script, scripts is required"),
    ("only names no build", p(only=["vbox"]), "provisioners[0].only[0]", "no build named 'vbox'"),
    ("bad pause_before", p(pause_before="5 minutes"), "provisioners[0].pause_before", "invalid duration"),
    ("unknown post-processor", lambda t: t.update({"post-processors": ["docker-push"]}), "post-processors[0].type",
     "supported: checksum, manifest, compress"),
    ("required variable", lambda t: t.update(variables={"pw": None}), "variables.pw", "required variable 'pw'"),
    ("duplicate builds", lambda t: t["builders"].append(copy.deepcopy(t["builders"][0])), "builders[1]", "duplicate"),
]  # fmt: skip


def write_case(tmp_path: Path, edit: Edit) -> Path:
    data = copy.deepcopy(BASE)
    edit(data)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def test_base_template_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(write_case(tmp_path, lambda t: None))]) == 0
    assert "Template validated successfully." in capsys.readouterr().out


@pytest.mark.parametrize(("name", "edit", "key", "message"), CASES, ids=[c[0] for c in CASES])
def test_malformed_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, edit: Edit, key: str, message: str
) -> None:
    path = write_case(tmp_path, edit)
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: template has")
    assert "Traceback" not in err
    line = next(ln for ln in err.splitlines() if f" {key}:" in ln)
    assert message in line
    assert f"{path}:" in line and line.split(f"{path}:")[1].split(":")[0].isdigit()  # the JSON line number


@pytest.mark.parametrize(("name", "edit", "key", "message"), CASES[:3], ids=[c[0] for c in CASES[:3]])
def test_malformed_template_subprocess(tmp_path: Path, name: str, edit: Edit, key: str, message: str) -> None:
    path = write_case(tmp_path, edit)
    proc = subprocess.run([sys.executable, "-m", "vmbake", "validate", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 1
    assert f" {key}:" in proc.stderr and message in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_all_problems_are_reported_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def edit(t: dict[str, Any]) -> None:
        t["builders"][0].update(memory="lots", disk_size="big", iso_urls=["x"])
        t["provisioners"][0]["type"] = "salt-masterless"

    assert main(["validate", str(write_case(tmp_path, edit))]) == 1
    err = capsys.readouterr().err
    assert "template has 4 problems" in err
    for key in (
        "builders[0].memory",
        "builders[0].disk_size",
        "builders[0].iso_urls",
        "provisioners[0].type",
    ):
        assert f" {key}:" in err


def test_debug_shows_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-debug", str(write_case(tmp_path, b(memory="lots")))]) == 1
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("none", True),
        ("file:https://example.invalid/SHA256SUMS", True),
        ("sha256:" + "a" * 64, True),
        ("md5:" + "a" * 32, True),
        ("sha1:" + "a" * 40, True),
        ("sha512:" + "a" * 128, True),
        ("a" * 64, True),
        ("sha256:file:./SHA256SUMS", True),
        ("sha256:" + "a" * 63, False),
        ("sha1:" + "a" * 32, False),
        ("a" * 30, False),
        ("file:", False),
        ("blake:" + "a" * 64, False),
    ],
)
def test_checksum_forms(value: str, ok: bool) -> None:
    assert (check_checksum(value) is None) is ok
