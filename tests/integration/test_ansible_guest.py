"""The ansible and ansible-local provisioners against a real guest, in one debian-bootstrap build under TCG.

The build (bookworm, cloud kernel, `include` ansible-core so that the guest can run ansible itself) runs
the same playbook twice: once with `ansible` from the host over the build's own SSH connection (forwarded
port, root, the build's temporary key), once with `ansible-local`, which uploads the playbook and its role
and runs ansible-playbook in the guest. The playbook (tests/data/ansible) has a role with a template and a
handler, and makes a fact from `packer_build_name`. A last shell provisioner prints what each run wrote, so
the guest itself shows both effects.

To stay cheap the build shares the .deb cache of the other bootstrap tests (the default vmbake cache, same
suite and kernel), skips compaction, and the host's ansible reuses one SSH connection per run (pipelining
and a short-lived control master). Needs root, Debian's archive (deb.debian.org) and the host's
ansible-core (scripts/install-deps.sh).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from vmbake import procs

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.timeout(2700)]

DATA = Path(__file__).resolve().parents[1] / "data" / "ansible"
BUILD = "ansible-guest"


@dataclass(frozen=True)
class Built:
    output: str
    seconds: float


def template(work: Path) -> dict[str, object]:
    return {
        "builders": [
            {
                "type": "debian-bootstrap",
                "name": BUILD,
                "suite": "bookworm",
                "kernel": "linux-image-cloud-amd64",
                "include": ["ansible-core"],
                "disk_size": "2G",
                "accelerator": "tcg",
                "ssh_timeout": "30m",
                "skip_compaction": True,
                # An HTTP server, so that the playbook's packer_http_addr has a value from both provisioners.
                "http_content": {"/hello.txt": "hello\n"},
                "output_directory": "output",
                "vm_name": "image.qcow2",
            }
        ],
        "provisioners": [
            {"type": "shell", "inline": ["mkdir -p /root/host /root/local"]},
            {
                "type": "ansible",
                "playbook_file": str(DATA / "site.yml"),
                "groups": ["web"],
                "extra_arguments": ["-e", "target_dir=/root/host"],
                "ansible_env_vars": [
                    # One SSH connection for the whole play, gone a few seconds after it; no known_hosts entry.
                    "ANSIBLE_SSH_ARGS=-o ControlMaster=auto -o ControlPersist=5s -o UserKnownHostsFile=/dev/null",
                    f"ANSIBLE_SSH_CONTROL_PATH_DIR={work}/cp",
                    f"ANSIBLE_LOCAL_TEMP={work}/ansible-tmp",
                    "ANSIBLE_PIPELINING=True",
                    "ANSIBLE_NOCOLOR=True",
                ],
            },
            {
                "type": "ansible-local",
                "playbook_file": str(DATA / "site.yml"),
                "role_paths": [str(DATA / "roles" / "banner")],
                "inventory_groups": ["db"],
                "extra_arguments": ["-e", "target_dir=/root/local"],
                "command": "ANSIBLE_NOCOLOR=1 PYTHONUNBUFFERED=1 ansible-playbook",
            },
            {
                "type": "shell",
                "inline": [
                    "for f in host/banner.txt host/handler.txt local/banner.txt local/handler.txt; do"
                    ' echo "SHOW $f: $(cat /root/$f)"; done'
                ],
            },
        ],
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    if os.geteuid() != 0:
        pytest.skip("the debian-bootstrap builder needs root")
    if shutil.which("ansible-playbook") is None:
        pytest.fail("ansible-playbook is not installed on the host: run scripts/install-deps.sh")
    work = tmp_path_factory.mktemp("ansible-guest")
    path = work / "template.json"
    path.write_text(json.dumps(template(work), indent=2))
    started = time.monotonic()
    result = procs.run(
        [sys.executable, "-m", "vmbake", "build", "-color=false", "-report=false", str(path)],
        cwd=work,
        check=False,
        timeout=2400,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    return Built(output, time.monotonic() - started)


def shown(output: str) -> dict[str, str]:
    """What the last shell provisioner printed: file -> its content, as the guest has it."""
    return dict(re.findall(r"^    " + BUILD + r": SHOW (\S+): (.*)$", output, re.MULTILINE))


def test_ansible_from_the_host_changes_the_guest(built: Built) -> None:
    files = shown(built.output)
    http = re.search(r"files at (10\.0\.2\.2:\d+)", files.get("host/banner.txt", ""))
    assert http, built.output[-4000:]
    assert (
        files["host/banner.txt"]
        == f"built by {BUILD}/debian-bootstrap for default in web, files at {http[1]}"
    )
    assert files["host/handler.txt"] == f"handler ran after {BUILD}/debian-bootstrap"
    # The host's ansible-playbook ran over the build's connection, its lines under the build's prefix.
    assert f"==> {BUILD}: Executing Ansible: ansible-playbook -e packer_build_name=" in built.output
    assert re.search(rf"^    {BUILD}: PLAY RECAP", built.output, re.MULTILINE)
    assert re.search(rf"^    {BUILD}: default\s+: ok=\d+\s+changed=2 ", built.output, re.MULTILINE)


def test_ansible_local_runs_the_uploaded_playbook_in_the_guest(built: Built) -> None:
    files = shown(built.output)
    http = re.search(r"files at (10\.0\.2\.2:\d+)", files.get("local/banner.txt", ""))
    assert http, built.output[-4000:]
    assert (
        files["local/banner.txt"]
        == f"built by {BUILD}/debian-bootstrap for 127.0.0.1 in db, files at {http[1]}"
    )
    assert files["local/handler.txt"] == f"handler ran after {BUILD}/debian-bootstrap"
    assert f"==> {BUILD}: Uploading role directories..." in built.output
    assert re.search(rf"^    {BUILD}: 127\.0\.0\.1\s+: ok=\d+\s+changed=2 ", built.output, re.MULTILINE)
    print(f"ansible guest build: {built.seconds:.0f} s")
