"""Benchmark the README's main job, `vmbake build -only=bootstrap trixie`, step by step, against debvm-create.

Each run builds the shipped trixie template twice from a cold (empty) .deb cache, once as it ships
(provision_stage "tree": provision.sh in a chroot of the image, one check boot) and once with
provision_stage "vm" (provision.sh in the booted TCG guest, as before), then times `debvm-create -r
trixie` (Debian package debvm), all three alternating in the same run. It prints each build's step
timings (the build's own table) and the ratios; it never fails on a miss. Target on a 2-core TCG host:
the tree build in <= 150 s and <= 2 x debvm-create.

debvm-create makes a bare ext4 filesystem image: no partition table, no bootloader, no provisioning, and
no boot of the guest; its time is a floor rather than a like-for-like build.

Usage (as root, with deb.debian.org reachable):  python bench/mainjob.py [--runs N] [--skip-vm]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_S = 150.0
STAGE_LINE = re.compile(r'^(\s*provision_stage\s*=\s*)"[a-z]+"', re.MULTILINE)
STEP_LINE = re.compile(r":\s+(\w+)\s+([0-9.]+)s\s+[0-9.]+%\s*$")


@dataclass
class Build:
    seconds: float
    steps: dict[str, float] = field(default_factory=dict)
    mib: float = 0.0


def template_dir(work: Path, stage: str) -> Path:
    """A copy of the shipped trixie template with provision_stage set to `stage`."""
    target = work / f"trixie-{stage}"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(REPO / "templates" / "trixie", target)
    hcl = target / "build.pkr.hcl"
    text, count = STAGE_LINE.subn(rf'\g<1>"{stage}"', hcl.read_text())
    if count == 0:  # one per bootstrap build (amd64 and arm64); the bench runs -only=bootstrap
        sys.exit(f"{hcl}: no provision_stage line found")
    hcl.write_text(text)
    return target


def step_times(output: str) -> dict[str, float]:
    """The build's step timing table ("Step timings ..." then one line per step) as {step: seconds}."""
    _, _, table = output.partition("Step timings")
    steps: dict[str, float] = {}
    for line in table.splitlines()[1:]:
        match = STEP_LINE.search(line)
        if match is None:
            break
        steps[match.group(1)] = float(match.group(2))
    return steps


def build(work: Path, stage: str) -> Build:
    """One cold build of the main job with provision_stage `stage`, in its own directory and cache."""
    run_dir = work / f"run-{stage}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    template = template_dir(work, stage)
    env = {**os.environ, "VMBAKE_CACHE_DIR": str(run_dir / "cache"), "PYTHONPATH": str(REPO / "src")}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "vmbake", "build", "-color=false", "-only=bootstrap", str(template)],
        cwd=run_dir, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"the {stage} build failed:\n{(result.stdout + result.stderr)[-3000:]}")
    image = run_dir / "output-bootstrap" / "trixie.qcow2"
    made = Build(seconds, step_times(result.stdout), image.stat().st_size / 2**20)
    shutil.rmtree(run_dir, ignore_errors=True)
    return made


def debvm(work: Path) -> float:
    """Seconds of `debvm-create -r trixie` with its defaults (it downloads every run: no cache)."""
    target = work / "debvm.ext4"
    target.unlink(missing_ok=True)
    started = time.monotonic()
    subprocess.run(["debvm-create", "-r", "trixie", "-o", str(target)], check=True, capture_output=True)
    seconds = time.monotonic() - started
    target.unlink(missing_ok=True)
    return seconds


def run(runs: int, work: Path, with_vm: bool = True) -> tuple[list[Build], list[Build], list[float]]:
    """`runs` rounds of: tree build, vm build (unless not `with_vm`), debvm-create; printed as they come."""
    trees: list[Build] = []
    vms: list[Build] = []
    debvms: list[float] = []
    for i in range(runs):
        trees.append(build(work, "tree"))
        print(f"  run {i + 1}: tree {trees[-1].seconds:7.1f} s ({trees[-1].mib:.1f} MiB)", flush=True)
        if with_vm:
            vms.append(build(work, "vm"))
            print(f"  run {i + 1}: vm   {vms[-1].seconds:7.1f} s ({vms[-1].mib:.1f} MiB)", flush=True)
        if shutil.which("debvm-create"):
            debvms.append(debvm(work))
            print(f"  run {i + 1}: debvm-create {debvms[-1]:7.1f} s", flush=True)
    return trees, vms, debvms


def step_table(columns: dict[str, list[Build]]) -> list[str]:
    """Median seconds of each step, one column per build kind, steps in the order they first ran."""
    order: list[str] = []
    for builds in columns.values():
        for b in builds:
            order += [s for s in b.steps if s not in order]
    lines = [f"{'step':<24}" + "".join(f"{name:>10}" for name in columns)]
    for step in order:
        cells = []
        for builds in columns.values():
            values = [b.steps[step] for b in builds if step in b.steps]
            cells.append(f"{statistics.median(values):9.1f}s" if values else f"{'-':>10}")
        lines.append(f"{step:<24}" + "".join(cells))
    totals = [
        f"{statistics.median([b.seconds for b in bs]):9.1f}s" if bs else f"{'-':>10}"
        for bs in columns.values()
    ]
    lines.append(f"{'whole build':<24}" + "".join(totals))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--skip-vm", action="store_true", help="leave out the provision_stage 'vm' builds")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the debian-bootstrap builder needs loop devices and mount")
    work = Path(tempfile.mkdtemp(prefix="vmbake-mainjob-"))
    load = os.getloadavg()[0]
    try:
        trees, vms, debvms = run(args.runs, work, not args.skip_vm)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    end_load = os.getloadavg()[0]
    print(f"host load average: {load:.1f} at the start, {end_load:.1f} at the end (on {os.cpu_count()} CPUs)")
    for line in step_table({"vm": vms, "tree": trees}):
        print(line)
    tree_s = statistics.median(b.seconds for b in trees)
    print(f"tree build {tree_s:.1f} s, target {TARGET_S:.0f} s")
    # What the build adds to mmdebstrap (debvm-create is little more than mmdebstrap): disk, provisioning,
    # the check boot, the artifact.
    beyond = [b.seconds - b.steps.get("stepBootstrapRootfs", 0.0) for b in trees]
    print(f"tree build beyond mmdebstrap {statistics.median(beyond):.1f} s")
    if debvms:
        debvm_s = statistics.median(debvms)
        ratios = [t.seconds / d for t, d in zip(trees, debvms, strict=False)]
        print(f"debvm-create {debvm_s:.1f} s; tree / debvm {statistics.median(ratios):.2f} (target 2.00)")
        if vms:
            vm_ratios = [v.seconds / d for v, d in zip(vms, debvms, strict=False)]
            print(f"vm / debvm {statistics.median(vm_ratios):.2f}")


if __name__ == "__main__":
    main()
