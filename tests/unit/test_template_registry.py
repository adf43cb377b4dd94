"""The registry of types, and the shipped templates found by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmbake import registry
from vmbake.cli import main
from vmbake.config.qemu import QemuConfig
from vmbake.template import load_template, resolve_template_path


def test_builder_types() -> None:
    assert registry.builder_class("qemu") is QemuConfig
    assert registry.builder_class("virtualbox-iso") is None
    assert registry.builder_types()[0] == "qemu"


def test_shipped_template_found_by_name() -> None:
    names = registry.shipped_templates()
    assert "bookworm" in names
    path = resolve_template_path("bookworm")
    assert path.is_dir() and path.name == "bookworm" and path.parent.name == "templates"


@pytest.mark.parametrize("name", registry.shipped_templates())
def test_shipped_templates_validate(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", name]) == 0, capsys.readouterr().err
    template = load_template(name)
    assert template.builds


def test_warning_for_a_key_not_yet_supported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.json"
    path.write_text(
        '{"builders": [{"type": "qemu", "iso_url": "x.iso", "iso_checksum": "none", "ssh_username": "root",\n'
        ' "iso_skip_cache": true}]}'
    )
    assert main(["validate", str(path)]) == 0
    err = capsys.readouterr().err
    assert "Warning:" in err and "builders[0].iso_skip_cache" in err and "not yet supported" in err


@pytest.mark.parametrize("name", registry.shipped_templates())
def test_only_picks_one_build_by_its_source_name(name: str) -> None:
    builds = load_template(name).builds
    for build in builds:
        (picked,) = load_template(name, only=[build.source_name]).builds
        assert picked.name == build.name
