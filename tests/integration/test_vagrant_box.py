"""Debian's Vagrant (with vagrant-libvirt) takes a libvirt box made by the vagrant post-processor.

No Vagrant VM boots: `vagrant box add` unpacks and checks the box, `vagrant box list` shows it. The
disk is a small qcow2 made by qemu-img; VAGRANT_HOME is a temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from vmbake.cli import main

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("vagrant") is None, reason="vagrant is not installed (scripts/install-deps.sh)"
    ),
]


def test_vagrant_box_add_takes_the_libvirt_box(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "disk.qcow2", "1G"], check=True)
    template = tmp_path / "box.json"
    template.write_text(
        json.dumps(
            {
                "builders": [{"type": "null", "communicator": "none"}],
                "post-processors": [
                    [
                        {"type": "artifice", "files": ["disk.qcow2"]},
                        {
                            "type": "vagrant",
                            "provider_override": "libvirt",
                            "output": "test.box",
                            "keep_input_artifact": True,
                        },
                    ]
                ],
            }
        )
    )
    assert main(["build", str(template)]) == 0, capsys.readouterr()
    env = {**os.environ, "VAGRANT_HOME": str(tmp_path / "vagrant-home"), "VAGRANT_CHECKPOINT_DISABLE": "1"}
    add = subprocess.run(
        ["vagrant", "box", "add", "--name", "vmbake/test", "test.box"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert add.returncode == 0, add.stdout + add.stderr
    listed = subprocess.run(["vagrant", "box", "list"], env=env, capture_output=True, text=True, timeout=120)
    assert "vmbake/test (libvirt, 0)" in listed.stdout, listed.stdout + listed.stderr
    stored = tmp_path / "vagrant-home" / "boxes" / "vmbake-VAGRANTSLASH-test" / "0" / "libvirt"
    assert json.loads((stored / "metadata.json").read_text())["format"] == "qcow2"
    same = subprocess.run(["qemu-img", "compare", "-q", "disk.qcow2", str(stored / "box.img")])
    assert same.returncode == 0  # the stored box.img is the artifact's disk
