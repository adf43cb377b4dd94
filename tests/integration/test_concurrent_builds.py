"""Two `vmbake build` processes started together on one empty VMBAKE_CACHE_DIR (issue 21 §3).

Each builds the same minimal bookworm debian-bootstrap template (cloud kernel, no provisioners,
provision_stage "tree": each build boots its image once, on a snapshot, and checks it as `vmbake verify`
does; the cheapest whole build the builder has, and the artifact is made as in any build). The first to start mmdebstrap takes the empty .deb cache's fill
lock; the other says whom it waits for, then takes every package from the cache. Afterwards the cache
holds each .deb once, whole, and no scratch or partial file. Two guests run at once, one per build.
Needs root and Debian's archive (deb.debian.org).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.bootstrap_disk import make_key

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.timeout(1200)]

WAIT_LINE = re.compile(
    r"The \.deb cache of bookworm \(amd64\) is empty and another build is filling it: "
    r"the lock is held by vmbake process (\d+) \(build '(\w+)'\)"
)


def template(name: str, public_key: str) -> dict[str, object]:
    return {
        "builders": [
            {
                "type": "debian-bootstrap",
                "name": name,
                "suite": "bookworm",
                "kernel": "linux-image-cloud-amd64",
                "provision_stage": "tree",
                "disk_size": "2G",
                "root_ssh_keys": [public_key],
                "accelerator": "tcg",
                "ssh_timeout": "10m",
                "output_directory": "output",
                "vm_name": "image.qcow2",
                # runs in the chroot ("tree"), where the default (systemctl poweroff) cannot
                "shutdown_command": "apt-get clean",
            }
        ]
    }


@dataclass(frozen=True)
class Run:
    name: str
    pid: int
    returncode: int
    output: str
    directory: Path


def start(directory: Path, name: str, public_key: str, cache: Path) -> tuple[subprocess.Popen[bytes], Path]:
    directory.mkdir(parents=True)
    path = directory / "template.json"
    path.write_text(json.dumps(template(name, public_key), indent=2))
    log = directory / "build.log"
    env = {**os.environ, "VMBAKE_CACHE_DIR": str(cache)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vmbake", "build", "-color=false", str(path)],
            cwd=directory, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return proc, log


@dataclass(frozen=True)
class Outcome:
    runs: dict[str, Run]  # by build name: "first", "second"
    cache: Path


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    if os.geteuid() != 0:
        pytest.skip("the debian-bootstrap builder needs root")
    base = tmp_path_factory.mktemp("concurrent")
    _, public = make_key(base)
    cache = base / "cache"
    started = time.monotonic()
    procs = {name: start(base / name, name, public, cache) for name in ("first", "second")}
    done: dict[str, Run] = {}
    try:
        for name, (proc, log) in procs.items():
            returncode = proc.wait(timeout=1100)
            done[name] = Run(name, proc.pid, returncode, log.read_text(errors="replace"), base / name)
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.terminate()  # vmbake cancels: its QEMU and mmdebstrap go with it
                proc.wait(60)
    print(f"two concurrent builds on a cold cache: {time.monotonic() - started:.0f}s")
    return Outcome(done, cache)


def test_both_builds_succeed_and_boot_their_image(outcome: Outcome) -> None:
    runs = outcome.runs
    for name in ("first", "second"):
        run = runs[name]
        assert run.returncode == 0, f"build {name} failed:\n{run.output[-5000:]}"
        assert "Checking the booted image (as vmbake verify does)" in run.output, run.output[-3000:]
        assert "ok    systemctl is-system-running" in run.output, run.output[-3000:]
        assert "Stopping the check VM" in run.output
        report = json.loads((run.directory / "output" / "image.qcow2.report.json").read_text())
        assert report["system_state"] in ("running", "degraded"), report["system_state"]
        assert (run.directory / "output" / "image.qcow2").stat().st_size > 50 << 20


def test_one_build_waits_for_the_other_and_names_it(outcome: Outcome) -> None:
    runs = outcome.runs
    waits = {name: WAIT_LINE.search(runs[name].output) for name in ("first", "second")}
    waiters = [name for name, found in waits.items() if found]
    assert len(waiters) == 1, {name: runs[name].output[-3000:] for name in ("first", "second")}
    waiter = waiters[0]
    filler = "second" if waiter == "first" else "first"
    found = waits[waiter]
    assert found is not None
    assert (int(found.group(1)), found.group(2)) == (runs[filler].pid, filler)
    # The filler downloaded everything, the waiter nothing: each package crossed the network once.
    filled = re.search(r"Package cache: 0 packages \(0\.0 MiB\) from the cache, (\d+) ", runs[filler].output)
    assert filled and int(filled.group(1)) > 100, runs[filler].output[-3000:]
    took = re.search(
        r"Package cache: (\d+) packages \([\d.]+ MiB\) from the cache, 0 \(", runs[waiter].output
    )
    assert took and int(took.group(1)) == int(filled.group(1)), runs[waiter].output[-3000:]


def test_cache_holds_each_deb_once_and_nothing_half_written(outcome: Outcome) -> None:
    cache = outcome.cache
    suites = sorted(p.name for p in (cache / "debs").iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(suites) == 1 and suites[0].startswith("bookworm-"), suites
    debs = cache / "debs" / suites[0]
    names = sorted(p.name for p in debs.iterdir())
    assert names and all(n.endswith(".deb") and not n.startswith(".") for n in names), names
    packages = [n.split("_", 1)[0] for n in names]
    assert len(packages) == len(set(packages)), "a package is cached twice"
    for name in names:
        with (debs / name).open("rb") as deb:
            assert deb.read(8) == b"!<arch>\n", f"{name} is not a whole .deb"
    # No lock, scratch, snapshot or partial file left anywhere in the cache.
    leftovers = [
        str(p.relative_to(cache))
        for p in cache.rglob("*")
        if p.is_file() and not (p.parent == debs and p.name.endswith(".deb"))
    ]
    assert leftovers == []
