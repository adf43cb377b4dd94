"""Bad input, fuzzed: the template loader (JSON and HCL2), the boot command parser and -var/-var-file
handling either accept an input or raise vmbake's own error (TemplateError / VmbakeError /
BootCommandError, each with a message), never anything else. Thousands of cases, bounded in time."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmbake import bootcommand
from vmbake.cli import main as cli_main
from vmbake.errors import VmbakeError
from vmbake.template import load_template
from vmbake.template.variables import parse_var_flag

CASES: Counter[str] = Counter()


def fuzz_settings(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=True,  # CI runs the same cases every time; a failure is reproducible
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


_DIR = Path(tempfile.mkdtemp(prefix="vmbake-fuzz-"))


FUZZ_KINDS = 8  # the keys of CASES: one per fuzz test


@pytest.fixture(scope="module", autouse=True)
def _fuzz_module() -> Iterator[None]:
    """After every test of the module, whatever their order: the case count, when all of them ran (not a
    -k subset); a shortfall fails as this fixture's teardown."""
    yield
    shutil.rmtree(_DIR, ignore_errors=True)
    if len(CASES) == FUZZ_KINDS:
        total = sum(CASES.values())
        print(f"\nfuzz cases run: {total} ({dict(CASES)})")
        assert total >= 4000, dict(CASES)


def load_or_refuse(text: str, suffix: str, **kwargs: Any) -> None:
    """Load `text` as a template file; only vmbake's errors (with a message) may come out."""
    path = _DIR / f"fuzz{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_template(path, **kwargs)
    except VmbakeError as exc:
        assert str(exc).strip(), "an error without a message"


BUILDER_KEYS = ["type", "iso_url", "iso_checksum", "disk_size", "memory", "cpus", "boot_command", "boot_wait",
                "qemuargs", "http_directory", "http_content", "vm_name", "output_directory", "communicator",
                "ssh_username", "ssh_timeout", "shutdown_timeout", "format", "disk_image", "vnc_port_min",
                "vnc_port_max", "http_port_min", "http_port_max", "accelerator", "headless", "name", "floppy_files",
                "cd_files", "disk_additional_size", "shutdown_command", "net_device", "disk_interface", "machine_type",
                "ssh_password", "vnc_use_password", "skip_compaction", "disk_compression", "use_backing_file"]  # fmt: skip
WORDS = ["qemu", "shell", "none", "ssh", "sha256:abc", "sha256:" + "a" * 64, "5120M", "0", "-1", "1e400", "40G",
         "10s", "1h", "-5m", "{{user `x`}}", "{{ .HTTPIP }}", "{{", "}}", "<wait5>", "<enter>", "../../etc/passwd",
         "/dev/null", "{{env `HOME`}}", "{{split `a` `b` 9}}", "${var.x}", "", "x" * 300, "\u00e9\u2603", "\x00",
         "qcow2", "raw", "tcg", "kvm", "virtio", "file:///etc/passwd", "http://127.0.0.1:1/x.iso",
         "9" * 5000, "9" * 5000 + "M", "9" * 400 + "s", "<wait" + "9" * 400 + ">", "http://h:99999/x.iso",
         "http://[::1/x.iso", "http://u:p@127.0.0.1:1/x.iso", "/dev/zero", "file:/dev/zero"]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([10**400, -(10**400), 2**63, 2**64]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(max_size=12),
)
values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=5,
)  # fmt: skip
builders = st.dictionaries(st.sampled_from(BUILDER_KEYS), values, max_size=8).map(
    lambda b: {"type": "qemu", "iso_url": "x.iso", "iso_checksum": "none", **b}
)
json_templates = st.fixed_dictionaries(
    {"builders": st.lists(builders, min_size=1, max_size=2)},
    optional={
        "variables": st.dictionaries(st.sampled_from(["x", "y", "password"]), values, max_size=3),
        "sensitive-variables": st.lists(st.sampled_from(["x", "y", "password", "nope"]), max_size=3),
        "provisioners": st.lists(
            st.dictionaries(
                st.sampled_from(["type", "inline", "script", "only", "override", "pause_before"]), values
            ),
            max_size=2,
        ),
        "post-processors": values,
    },
)


@fuzz_settings(800)
@given(json_templates)
def test_fuzz_json_templates(data: dict[str, Any]) -> None:
    CASES["json"] += 1
    load_or_refuse(json.dumps(data), ".json")


@fuzz_settings(500)
@given(
    st.builds(
        lambda head, tail: head + tail,
        st.sampled_from(
            ['{"builders": [{"type": "qemu", ', '{"builders": [', "{", "[", '{"a": "\\u12', "\ufeff{"]
        ),
        st.text(max_size=40),
    )
)
def test_fuzz_broken_json(text: str) -> None:
    CASES["json-text"] += 1
    load_or_refuse(text, ".json")


HCL_BITS = ['source "qemu" "a" {', "}", "build {", 'sources = ["source.qemu.a"]', 'provisioner "shell" {',
            "inline = [var.x]", 'variable "x" {', 'default = "y"', "sensitive = true", "locals {", "z = local.z",
            'a = "${', "[", "]", "memory = -var.x", "x = {a = 1", 'post-processor "checksum" {', "source = 1",
            'iso_url = "${upper(1)}"', "n = 1 / 0", 'iso_checksum = "none"', "disk_size = 0", 'disk_size = "0"',
            "memory = 99999999999999999999999", 'boot_command = ["<wait>\u2603<enter>"]', 'http_directory = "../.."',
            'iso_url = "x.iso"', "type = string", "<<EOF", "EOF", "%{ for x in [1] }", "%{ endfor }",
            'x = "\\u0000"', "dynamic \"x\" {", "cpus = true", "only = [1]", "cpus = " + "9" * 5000,
            "memory = 1e400", "memory = -1e400", 'disk_size = "' + "9" * 5000 + 'M"', "disk_size = 9" + "0" * 30,
            'boot_wait = "' + "9" * 400 + 's"', 'shutdown_timeout = "1e400h"', "default = " + "9" * 5000,
            'boot_command = ["<wait' + "9" * 5000 + '>"]', "cpus = 2.5e9999"]  # fmt: skip


@fuzz_settings(500)
@given(st.lists(st.one_of(st.sampled_from(HCL_BITS), st.text(max_size=10)), max_size=14))
def test_fuzz_hcl_templates(lines: list[str]) -> None:
    CASES["hcl"] += 1
    load_or_refuse("\n".join(lines) + "\n", ".pkr.hcl")


BOOT_BITS = ["<esc>", "<wait>", "<wait5>", "<wait10>", "<wait1m>", "<wait0>", "<wait-1s>", "<waitx>", "<enter>",
             "<leftShiftOn>", "<leftShiftOff>", "<f12>", "<f99>", "<spacebar>", "<", ">", "<<", "<enterOn>",
             "<enterOff>", "<bs>", "<del>", "<tab>", "\u2603", "\x00", "\n", "é", "<wait1h2m3s>", "<wait99999999h>",
             "<wait" + "9" * 5000 + ">", "<wait" + "9" * 400 + "s>", "<wait1e400s>", "<wait9.9e307h>",
             "<wait" + "9" * 30 + "ms>", "<wait-" + "9" * 5000 + "s>"]  # fmt: skip


@fuzz_settings(1500)
@given(st.lists(st.one_of(st.sampled_from(BOOT_BITS), st.text(max_size=6)), max_size=12))
def test_fuzz_boot_command(parts: list[str]) -> None:
    CASES["boot_command"] += 1
    text = "".join(parts)
    try:
        actions = bootcommand.parse(text)
        bootcommand.to_events(actions)
    except bootcommand.BootCommandError as exc:
        assert str(exc).strip()


@fuzz_settings(800)
@given(st.text(max_size=30))
def test_fuzz_var_flag(text: str) -> None:
    CASES["-var"] += 1
    try:
        key, _value = parse_var_flag(text)
    except ValueError as exc:  # the CLI turns this into a usage error (tested below)
        assert str(exc).strip()
        return
    assert key


HUGE = ["9" * 5000, "1e400", "-1e400", "9" * 25, "nan", "inf", "0x" + "f" * 2000]
VAR_TEMPLATE = json.dumps(
    {
        "variables": {"x": "1", "password": "p"},
        "sensitive-variables": ["password"],
        "builders": [{"type": "qemu", "iso_url": "x.iso", "iso_checksum": "none", "memory": "{{user `x`}}"}],
    }
)


@fuzz_settings(250)
@given(
    st.dictionaries(
        st.sampled_from(["x", "password", "nope", "", "a.b"]),
        st.one_of(st.text(max_size=8), st.sampled_from(HUGE)),  # x is the template's memory
        max_size=3,
    ),
    st.one_of(
        st.text(max_size=40),
        st.sampled_from(
            [
                '{"x": 1}',
                '{"x": [1]}',
                '{"nope": "1"}',
                'x = "2"',
                "x = ",
                "{",
                '{"x": {"y": 1}}',
                "x = [1, 2]",
                'x = "' + "9" * 5000 + '"',
                "x = " + "9" * 5000,
                '{"x": "1e400"}',
                '{"x": ' + "9" * 5000 + "}",
            ]
        ),
    ),
    st.sampled_from([".json", ".pkrvars.hcl", ".txt"]),
)
def test_fuzz_vars_and_var_files(variables: dict[str, str], var_file: str, suffix: str) -> None:
    CASES["-var/-var-file"] += 1
    path = _DIR / f"vars{suffix}"
    path.write_text(var_file, encoding="utf-8", errors="surrogatepass")
    load_or_refuse(VAR_TEMPLATE, ".json", vars=variables, var_files=[path])


@fuzz_settings(100)
@given(
    st.lists(
        st.sampled_from(
            ["-var", "-var-file", "x=1", "=", "x", "-var=", "-var=x", "nope.json", "-only", "--"]
        ),
        max_size=4,
    )
)
def test_fuzz_cli_var_flags(args: list[str]) -> None:
    """The command line itself: a bad -var/-var-file is exit status 1 with a message, never a traceback."""
    CASES["cli"] += 1
    template = _DIR / "cli.json"
    template.write_text(VAR_TEMPLATE)
    code = cli_main(["validate", *args, str(template)])
    assert code in (0, 1)


KINDS = ["file", "fifo", "directory", "dev-zero", "dev-null", "socket", "dangling", "loop", "empty"]


def _make(kind: str, path: Path, text: str) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.is_symlink() or path.exists():  # a file, FIFO, socket or link
        path.unlink()
    if kind == "file":
        path.write_text(text)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "dev-null":
        path.symlink_to("/dev/null")
    elif kind == "socket":
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))  # the file stays after the socket closes
    elif kind == "loop":
        path.symlink_to(path.name)  # a link to itself
    elif kind == "dangling":
        path.symlink_to(_DIR / "nowhere")
    else:
        path.write_text("")


HCL_FILE_FUNCTIONS = ["file", "filebase64", "filemd5", "filesha256", "filebase64sha512"]


@fuzz_settings(200)
@given(
    st.sampled_from(KINDS),
    st.sampled_from(KINDS),
    st.sampled_from([".json", ".pkr.hcl"]),
    st.sampled_from(KINDS),
    st.sampled_from([*HCL_FILE_FUNCTIONS, "templatefile"]),
)
def test_fuzz_file_kinds(
    template_kind: str, var_file_kind: str, suffix: str, data_kind: str, function: str
) -> None:
    """Templates, variable files and the files HCL2's file functions read, of every kind of file:
    refused at once (never read from a pipe or a device), or loaded; the test's own time limit catches
    a read that blocks, and /dev/zero read to its end would fill memory."""
    CASES["file kinds"] += 1
    template, var_file, data = _DIR / f"kinds{suffix}", _DIR / "kinds.pkrvars.hcl", _DIR / "kinds.dat"
    call = f'{function}("{data}"{", {}" if function == "templatefile" else ""})'
    body = (
        VAR_TEMPLATE
        if suffix == ".json"
        else f'locals {{\n  d = {call}\n}}\nsource "qemu" "a" {{\n  iso_url = "x.iso"\n'
        f'  iso_checksum = "none"\n  vm_name = "v${{substr(local.d, 0, 2)}}"\n}}\n'
        'build {\n  sources = ["source.qemu.a"]\n}\n'
    )
    _make(template_kind, template, body)
    _make(var_file_kind, var_file, 'x = "2"\n')
    _make(data_kind, data, "data\n")
    try:
        load_template(template, var_files=[var_file])
    except VmbakeError as exc:
        assert str(exc).strip()
