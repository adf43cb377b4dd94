"""Durations and sizes are decoded once, when the template loads: the configs hold float seconds and int
bytes, a bad value is a problem naming the file and key, and nothing parses the text again later."""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from pathlib import Path
from typing import Any

import pytest

from vmbake import registry
from vmbake.config.bootstrap import BootstrapConfig
from vmbake.config.fields import MEASURES, Decoder, describe, meta_of
from vmbake.config.provisioners import ShellConfig
from vmbake.config.qemu import QemuConfig
from vmbake.errors import TemplateError
from vmbake.template import load_template
from vmbake.units import parse_size, size_text

MiB, GiB = 1 << 20, 1 << 30


def qemu_json(tmp_path: Path, **keys: Any) -> Path:
    builder = {"type": "qemu", "iso_url": "x.iso", "iso_checksum": "none", "communicator": "none", **keys}
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"builders": [builder]}, indent=2))
    return path


def load_qemu(tmp_path: Path, **keys: Any) -> QemuConfig:
    (build,) = load_template(qemu_json(tmp_path, **keys)).builds
    assert isinstance(build.config, QemuConfig)
    return build.config


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1m30s", 90.0), ("300ms", 0.3), ("1h", 3600.0), ("10s", 10.0), ("1.5h", 5400.0),
     ("2h45m", 9900.0), ("-1s", -1.0)],
)  # fmt: skip
def test_a_duration_key_holds_seconds(tmp_path: Path, text: str, seconds: float) -> None:
    config = load_qemu(tmp_path, boot_wait=text, ssh_timeout=text, shutdown_timeout=text)
    assert (config.boot_wait, config.ssh_timeout, config.shutdown_timeout) == pytest.approx((seconds,) * 3)
    assert isinstance(config.boot_wait, float)


@pytest.mark.parametrize(
    ("raw", "nbytes"),
    [("40G", 40 * GiB), ("5120M", 5120 * MiB), ("5120", 5120 * MiB), (5120, 5120 * MiB), ("512k", 512 << 10),
     ("2GiB", 2 * GiB), ("1T", 1 << 40)],
)  # fmt: skip
def test_a_size_key_holds_bytes_and_a_bare_number_is_mib(tmp_path: Path, raw: Any, nbytes: int) -> None:
    config = load_qemu(tmp_path, disk_size=raw, size_budget=raw, disk_additional_size=[raw, "1G"])
    assert (config.disk_size, config.size_budget) == (nbytes, nbytes)
    assert config.disk_additional_size == [nbytes, GiB]
    assert type(config.disk_size) is int


def test_unset_and_empty_keys_keep_the_defaults(tmp_path: Path) -> None:
    config = load_qemu(tmp_path, boot_wait="", ssh_timeout="", disk_size="", ssh_wait_timeout="")
    assert (config.boot_wait, config.ssh_timeout, config.disk_size) == (10.0, 300.0, 40960 * MiB)
    assert (config.ssh_wait_timeout, config.boot_key_interval, config.size_budget) == (None, None, None)
    assert config.ssh_keep_alive_interval == 5.0 and config.pause_before_connecting == 0.0
    assert load_qemu(tmp_path, ssh_wait_timeout="10m").ssh_wait_timeout == 600.0


@pytest.mark.parametrize("zero", ["0s", "0", "0m"])
def test_zero_means_the_default_where_packer_says_so(tmp_path: Path, zero: str) -> None:
    # Packer's communicator and shutdown configs (and the shell provisioner) replace a zero timeout with
    # five minutes; boot_wait keeps its zero (no wait).
    config = load_qemu(tmp_path, boot_wait=zero, ssh_timeout=zero, shutdown_timeout=zero)
    assert (config.boot_wait, config.ssh_timeout, config.shutdown_timeout) == (0.0, 300.0, 300.0)
    decoder = Decoder("t.json")
    shell = decoder.decode(ShellConfig, {"inline": ["true"], "start_retry_timeout": zero}, "provisioners[0]")
    assert decoder.problems == [] and shell.start_retry_timeout == 300.0


@pytest.mark.parametrize("zero", ["0", 0, "0M"])
def test_a_disk_size_of_zero_is_packers_default(tmp_path: Path, zero: Any) -> None:
    # The QEMU builder's config: an empty or "0" disk_size becomes "40960M". Other sizes still refuse 0.
    assert load_qemu(tmp_path, disk_size=zero).disk_size == 40960 * MiB
    with pytest.raises(TemplateError, match=r"size_budget: must be greater than zero"):
        load_qemu(tmp_path, size_budget=zero)
    decoder = Decoder("t.pkr.hcl")
    decoder.decode(BootstrapConfig, {"disk_size": zero}, "source.debian-bootstrap.d")
    assert [problem for problem in decoder.problems if "greater than zero" in str(problem)]


def test_a_json_number_in_a_duration_is_nanoseconds_as_in_packer(tmp_path: Path) -> None:
    # mapstructure decodes a number into a time.Duration as nanoseconds: "boot_wait": 5 is 5 ns
    assert load_qemu(tmp_path, boot_wait=5).boot_wait == pytest.approx(5e-9)


def test_bootstrap_partitions_and_shell_provisioner_decode_too(tmp_path: Path) -> None:
    path = tmp_path / "t.pkr.hcl"
    path.write_text(
        'source "debian-bootstrap" "d" {\n'
        '  disk_size = "3G"\n'
        '  partitions {\n    mountpoint = "/boot"\n    size = "512M"\n  }\n'
        '  partitions {\n    mountpoint = "/"\n  }\n'
        "}\n"
        'build {\n  sources = ["source.debian-bootstrap.d"]\n'
        '  provisioner "shell" {\n    inline = ["true"]\n    start_retry_timeout = "1m30s"\n'
        '    pause_after = "300ms"\n    pause_before = "2s"\n    timeout = "1h"\n  }\n'
        '  provisioner "shell" {\n    inline = ["true"]\n  }\n'
        "}\n"
    )
    (build,) = load_template(path).builds
    config = build.config
    assert isinstance(config, BootstrapConfig)
    assert config.disk_size == 3 * GiB
    assert [(p.mountpoint, p.size) for p in config.partitions] == [("/boot", 512 * MiB), ("/", None)]
    first, second = build.provisioners
    assert isinstance(first.config, ShellConfig) and isinstance(second.config, ShellConfig)
    assert (first.config.start_retry_timeout, first.config.pause_after) == pytest.approx((90.0, 0.3))
    assert (first.pause_before, first.timeout) == (2.0, 3600.0)
    assert (second.config.start_retry_timeout, second.config.pause_after) == (300.0, None)


@pytest.mark.parametrize(
    ("keys", "key", "message"),
    [
        ({"boot_wait": "forever"}, "builders[0].boot_wait", "invalid duration 'forever'"),
        ({"ssh_timeout": "5"}, "builders[0].ssh_timeout", "invalid duration '5'"),
        ({"shutdown_timeout": "9000h"}, "builders[0].shutdown_timeout", "'9000h' is longer than a year"),
        ({"disk_size": "huge"}, "builders[0].disk_size", "invalid size 'huge'"),
        ({"size_budget": "0"}, "builders[0].size_budget", "must be greater than zero"),
        ({"disk_size": "1.5G"}, "builders[0].disk_size", "invalid size '1.5G'"),
        ({"disk_additional_size": ["1G", "lots"]}, "builders[0].disk_additional_size[1]", "invalid size 'lots'"),
        ({"size_budget": "-1G"}, "builders[0].size_budget", "invalid size '-1G'"),
        ({"boot_wait": "{{ .HTTPIP }}"}, "builders[0].boot_wait", "is filled in only during the build"),
    ],
)  # fmt: skip
def test_a_bad_value_is_a_load_time_problem_with_file_key_and_line(
    tmp_path: Path, keys: dict[str, Any], key: str, message: str
) -> None:
    path = qemu_json(tmp_path, **keys)
    with pytest.raises(TemplateError) as caught:
        load_template(path)
    (problem,) = caught.value.problems
    assert (problem.file, problem.key) == (str(path), key)
    assert message in problem.message
    assert problem.line is not None and problem.line > 1
    assert problem.hint  # what the key takes


def test_an_hcl_number_in_a_duration_has_no_unit(tmp_path: Path) -> None:
    path = tmp_path / "t.pkr.hcl"
    path.write_text(
        'source "qemu" "q" {\n  iso_url = "x.iso"\n  iso_checksum = "none"\n  communicator = "none"\n'
        '  boot_wait = 5\n}\nbuild {\n  sources = ["source.qemu.q"]\n'
        '  provisioner "shell-local" {\n    inline = ["true"]\n    pause_before = 5\n  }\n}\n'
    )
    with pytest.raises(TemplateError) as caught:
        load_template(path)
    found = {(p.key, p.message.split(":")[0]) for p in caught.value.problems}
    assert found == {
        ("source.qemu.q.boot_wait", "invalid duration '5'"),
        ("build[0].provisioner[0].pause_before", "invalid duration '5'"),
    }


def test_a_json_number_in_pause_before_is_nanoseconds(tmp_path: Path) -> None:
    path = qemu_json(tmp_path)
    data = json.loads(path.read_text())
    data["provisioners"] = [{"type": "shell-local", "inline": ["true"], "pause_before": 2_000_000_000}]
    path.write_text(json.dumps(data))
    (build,) = load_template(path).builds
    assert build.provisioners[0].pause_before == pytest.approx(2.0)


# -- every duration and size key is a number ------------------------------------------------------------------
def _config_classes() -> list[type]:
    """Every config dataclass a template can reach: builders, provisioners, post-processors and the
    nested blocks inside them (partitions, users, qemu_img_args ...)."""
    roots = [registry.builder_class(name) for name in registry.builder_types()]
    roots += [*registry.PROVISIONERS.values(), *registry.POST_PROCESSORS.values()]
    seen: list[type] = []
    todo = [cls for cls in roots if cls is not None]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.append(cls)
        for tp in typing.get_type_hints(cls).values():
            for inner in (tp, *typing.get_args(tp)):
                if dataclasses.is_dataclass(inner) and isinstance(inner, type):
                    todo.append(inner)
    return seen


_NUMBER = {"duration": (float, float | None), "size": (int, int | None, list[int])}
# Text keys whose names read like a duration or size but that are something else.
_NOT_MEASURES = {"QemuImgArgs.resize"}


def test_no_duration_or_size_key_is_a_string() -> None:
    classes = _config_classes()
    assert {"QemuConfig", "BootstrapConfig", "Partition", "ShellConfig", "NullConfig"} <= {
        c.__name__ for c in classes
    }
    kinds: dict[str, int] = {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kind = meta_of(f).kind
            name = f"{cls.__name__}.{f.name}"
            if kind in MEASURES:
                assert hints[f.name] in _NUMBER[kind], f"{name} is a {kind} typed {hints[f.name]}"
                kinds[kind] = kinds.get(kind, 0) + 1
            elif hints[f.name] in (str, str | None, list[str]) and name not in _NOT_MEASURES:
                looks_like_one = re.search(r"timeout|_wait$|interval|^pause_|size|budget", f.name)
                assert not looks_like_one, f"{name} reads like a duration or size but is text with no kind"
    assert kinds["duration"] >= 20 and kinds["size"] >= 6


def test_the_docs_show_the_defaults_as_packer_writes_them() -> None:
    rows = {key: (type_name, default) for key, type_name, default, _meta in describe(QemuConfig)}
    assert rows["boot_wait"] == ("duration", "10s")
    assert rows["ssh_timeout"] == ("duration", "5m")
    assert rows["disk_size"] == ("size", "40960M")
    assert rows["ssh_wait_timeout"] == ("duration", "")
    assert rows["disk_additional_size"] == ("list of size", "")
    assert {key: default for key, _t, default, _m in describe(BootstrapConfig)}["disk_size"] == "2G"


def test_decoder_problem_for_a_nested_size_names_its_path() -> None:
    decoder = Decoder("t.pkr.hcl")
    decoder.decode(BootstrapConfig, {"partitions": [{"mountpoint": "/", "size": "a lot"}]}, "source.x")
    assert [p.key for p in decoder.problems] == ["source.x.partitions[0].size"]


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [(2 * GiB, "2G"), (5120 * MiB, "5G"), (5000 * MiB, "5000M"), (1536 << 10, "1536K"), (1000, "1000B"),
     (3 << 40, "3T")],
)  # fmt: skip
def test_size_text_is_exact_and_reads_back(nbytes: int, text: str) -> None:
    assert size_text(nbytes) == text
    assert parse_size(text) == nbytes
