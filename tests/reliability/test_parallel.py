"""Parallel builds of one template, on tiny guests: two builds run at the same time with their own ports
and make their own artifacts; Ctrl-C cancels both and leaves nothing; -parallel-builds=1 runs them one
after the other."""

from __future__ import annotations

import re
import signal

import pytest

from tests.reliability.conftest import Rig
from vmbake import procs

pytestmark = pytest.mark.integration

NAMES = ("a", "b")


def two_builds(rig: Rig, *, hanging: bool) -> dict[str, object]:
    """One template, two tiny-guest builds named a and b; narrow port ranges, so a shared port shows."""
    (rig.base / "http").mkdir(exist_ok=True)
    builders = []
    for name in NAMES:
        builder = rig.template(
            hanging=hanging,
            vm_name=f"{name}-{rig.vm_name}",  # both contain rig.vm_name: rig.qemu_pids() finds both
            http_directory=str(rig.base / "http"),
            http_port_min=8010,
            http_port_max=8011,
            vnc_port_min=5960,
            vnc_port_max=5961,
        )["builders"][0]  # type: ignore[index]
        builder.update(name=name, output_directory=str(rig.base / f"output-{name}"))
        builders.append(builder)
    return {"builders": builders}


def lines_of(output: str, name: str) -> list[int]:
    return [i for i, line in enumerate(output.splitlines()) if line.startswith(f"==> {name}: ")]


def finished_at(output: str, name: str) -> int:
    return next(
        i for i, line in enumerate(output.splitlines()) if line.startswith(f"Build '{name}' finished")
    )


def test_two_builds_run_at_the_same_time_with_their_own_ports(rig: Rig) -> None:
    code, output = rig.build(two_builds(rig, hanging=False), timeout=110)
    assert code == 0, output
    for name, other in (("a", "b"), ("b", "a")):  # each starts before the other one finished
        assert lines_of(output, name)[0] < finished_at(output, other), output
    http = {
        m.group(1): m.group(2) for m in re.finditer(r"==> (\w): Starting HTTP server on port (\d+)", output)
    }
    vnc = {m.group(1): m.group(2) for m in re.finditer(r"^ {4}(\w): vnc://127\.0\.0\.1:(\d+)", output, re.M)}
    assert sorted(http) == sorted(vnc) == ["a", "b"], output
    assert http["a"] != http["b"] and vnc["a"] != vnc["b"], (http, vnc)
    for name in NAMES:
        image = rig.base / f"output-{name}" / f"{name}-{rig.vm_name}"
        info = procs.run(["qemu-img", "info", "--output=json", str(image)]).stdout
        assert '"format": "qcow2"' in info
        assert f"--> {name}: VM files in directory: {rig.base / f'output-{name}'}" in output
    rig.assert_clean(output="any")


def test_ctrl_c_cancels_both_builds_and_leaves_nothing(rig: Rig) -> None:
    run = rig.start(two_builds(rig, hanging=True))
    run.wait_for(r"==> [ab]: Waiting for shutdown\.\.\.", 90)
    run.wait_for(r"==> [ab]: Waiting for shutdown\.\.\.", 90)
    assert len(rig.qemu_pids()) == 2
    run.signal_group(signal.SIGINT)
    code, output = run.finish(60)
    assert code == 130, output
    for name in NAMES:
        assert f"==> {name}: Interrupt received. Cancelling build..." in output
        assert not (rig.base / f"output-{name}").exists(), output
    assert "Traceback" not in output
    rig.assert_clean()


def test_parallel_builds_1_runs_them_one_after_another(rig: Rig) -> None:
    code, output = rig.build(two_builds(rig, hanging=False), "-parallel-builds=1", timeout=110)
    assert code == 0, output
    assert finished_at(output, "a") < lines_of(output, "b")[0], output  # b starts once a has finished
    rig.assert_clean(output="any")
