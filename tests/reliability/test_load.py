"""Load: two builds of one template at once share nothing by accident (ports, cache file, locks), and a
cache download interrupted half-way is resumed or cleaned, never used as it is."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

import pytest

from tests.helpers.faults import VmbakeRun, procs_with_argv, wait_gone
from tests.helpers.origin import Route, origin_server
from tests.reliability.conftest import Rig

pytestmark = pytest.mark.integration


def test_two_builds_of_one_template_at_once(rig: Rig) -> None:
    """Both download the same ISO into one cache (one lock), choose different ports, run their own QEMU."""
    data = rig.guests.disk.read_bytes()
    checksum = "sha256:" + hashlib.sha256(data).hexdigest()
    (rig.base / "http").mkdir()
    with origin_server({"/disk.qcow2": Route(data=data, trickle=None)}) as origin:
        template = rig.template(iso_url=origin.url("/disk.qcow2"), iso_checksum=checksum,
                                http_directory=str(rig.base / "http"), http_port_min=8000, http_port_max=8001,
                                vnc_port_min=5950, vnc_port_max=5951)  # fmt: skip
        template["builders"][0]["output_directory"] = "{{user `out`}}"  # type: ignore[index]
        template["variables"] = {"out": ""}
        path = rig.write(template)
        runs = []
        for name in ("a", "b"):
            (rig.base / name).mkdir()
            run = VmbakeRun(
                ["build", "-var", f"out={rig.base / name / 'output'}", str(path)],
                rig.base / name,
                env={"VMBAKE_CACHE_DIR": str(rig.cache)},
            )
            runs.append(run)
            rig.runs.append(run)
        ports = []
        for run in runs:
            http = run.wait_for(r"Starting HTTP server on port \d+", 90)
            run.wait_for(r"Waiting for shutdown", 90)
            vnc = [line for line in run.lines if "vnc://127.0.0.1:" in line][-1]
            ports.append((int(http.rsplit(" ", 1)[1]), int(vnc.rsplit(":", 1)[1])))
        assert ports[0][0] != ports[1][0], ports  # HTTP
        assert ports[0][1] != ports[1][1], ports  # VNC
        assert len(procs_with_argv(rig.vm_name)) == 2
        assert len(origin.gets("/disk.qcow2")) == 1, "the second build should use the first one's download"
        cached = [p for p in rig.cache.iterdir() if p.suffix == ".iso"]
        assert len(cached) == 1 and cached[0].read_bytes() == data
        for run in runs:
            run.signal_group(signal.SIGINT)
        for run in runs:
            assert run.finish(60)[0] == 130, run.output
    assert wait_gone(rig.vm_name) == []
    for name in ("a", "b"):
        assert not (rig.base / name / "output").exists()


def test_interrupted_download_is_resumed_not_used(rig: Rig) -> None:
    """A download cut half-way leaves a .part file, never the cache entry; the next build resumes it
    with a Range request and checks the whole file before use."""
    data = rig.guests.disk.read_bytes() + b"\0" * 300_000
    checksum = "sha256:" + hashlib.sha256(data).hexdigest()
    half = len(data) // 2
    with origin_server({"/disk.qcow2": Route(data=data, stall_after=half)}) as origin:
        template = rig.template(iso_url=origin.url("/disk.qcow2"), iso_checksum=checksum)
        run = rig.start(template, env={"VMBAKE_DOWNLOAD_TIMEOUT": "60s"})
        run.wait_for(r"Trying http", 60)
        part = _wait_for_part(rig.cache, half)
        run.signal_group(signal.SIGINT)
        code, output = run.finish(60)
        assert code == 130, output
        assert [p for p in rig.cache.iterdir() if p.suffix == ".iso"] == [], (
            "a partial download was kept as done"
        )
        origin.routes["/disk.qcow2"] = Route(data=data)
        rig.runs.clear()
        run = rig.start(template)
        run.wait_for(r"Waiting for shutdown", 90)
        ranges = [s.range for s in origin.gets("/disk.qcow2")]
        assert ranges[-1] is not None and ranges[-1].startswith(f"bytes={part}-"), ranges
        done = [p for p in rig.cache.iterdir() if p.suffix == ".iso"]
        assert len(done) == 1 and done[0].read_bytes() == data
        run.signal_group(signal.SIGINT)
        assert run.finish(60)[0] == 130
    rig.assert_clean()


def _wait_for_part(cache: Path, size: int, timeout: float = 30) -> int:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in cache.glob("*.part"):
            if p.stat().st_size >= size:
                return p.stat().st_size
        time.sleep(0.1)
    raise AssertionError(
        f"no .part file of {size} bytes in {sorted(cache.iterdir()) if cache.exists() else []}"
    )
