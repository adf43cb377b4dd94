"""The comparisons of `bench/run`, in one go: each row a ratio of two timings taken in alternating runs.

Rows (each the median of the per-run ratios over --runs runs, A and B alternating within each run):
  zstd vs zlib       qemu-img convert -c of the same raw disk of host files (bench/qemu_img_compression.py)
  VNC vs QMP         typing the seed's boot command keys into a real QEMU (bench/bootcmd.py)
  vmbake vs Packer   the same disk-image template built by both (bench/compare_packer.py)
  cold vs warm       the debian-bootstrap build with an empty .deb cache, then with the filled one
  vmbake vs debvm    the debian-bootstrap build (cold and warm) against debvm-create (bench/bootstrap.py)
  main job           `vmbake build -only=bootstrap trixie`, provision_stage tree vs vm, each against
                     debvm-create, with each build's step timings (bench/mainjob.py)
  parallel vs serial two builds of the disk-image template at once, against -parallel-builds=1
  arm64 vs amd64     the debian-bootstrap build for arm64 (qemu-user mmdebstrap, an emulated aarch64 boot)
                     against the same build for amd64, both cold: what emulating another architecture
                     under TCG costs. Not in the default set (about 40 min): --only arm64
Writes bench/results.md and bench/results.svg after every section, so a cut-short run keeps what it
measured. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for path in (REPO, REPO / "src", BENCH):
    sys.path.insert(0, str(path))

from vmbake import procs  # noqa: E402


@dataclass
class Row:
    name: str
    a: str
    b: str
    a_times: list[float] = field(default_factory=list)
    b_times: list[float] = field(default_factory=list)
    note: str = ""
    error: str = ""

    @property
    def ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.a_times, self.b_times, strict=False) if b > 0]

    @property
    def ratio(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "-"


LOAD_AT_START = [0.0]  # the 1-minute load average when the run began
DEADLINE = [float("inf")]  # monotonic time after which no new run starts (--budget)


def out_of_time(row: Row, done: int, last_run: float) -> bool:
    """True (and the row says so) when another run would end after the deadline."""
    if time.monotonic() + last_run <= DEADLINE[0]:
        return False
    row.error = f"cut short by the time budget after {done} run(s)"
    print(f"  {row.name}: {row.error}", flush=True)
    return True


def alternate(
    row: Row, runs: int, a: Callable[[int], float], b: Callable[[int], float], estimate: float = 60.0
) -> None:
    """A then B, `runs` times; each timing is printed as it comes. `estimate`: seconds of a first run."""
    last = estimate
    for i in range(runs):
        if out_of_time(row, i, last):
            return
        started = time.monotonic()
        for label, fn, times in ((row.a, a, row.a_times), (row.b, b, row.b_times)):
            took = fn(i)
            times.append(took)
            print(f"  run {i + 1}: {label:<22} {took:8.2f} s", flush=True)
        last = time.monotonic() - started


# -- sections ----------------------------------------------------------------------------------------
def compression(runs: int, work: Path, mib: int) -> Row:
    import qemu_img_compression as qc  # bench/qemu_img_compression.py

    from vmbake import qemu_img

    row = Row("qcow2 compaction: zstd vs zlib", "zstd", "zlib")
    raw = work / "disk.raw"
    qc.fill(raw, mib)
    sizes: dict[str, int] = {}

    def convert(kind: str) -> float:
        target = work / f"{kind}.qcow2"
        target.unlink(missing_ok=True)
        started = time.monotonic()
        procs.run(qemu_img.convert_argv(raw, target, compress=True, compression_type=kind))
        took = time.monotonic() - started
        sizes[kind] = target.stat().st_size
        return took

    alternate(row, runs, lambda _i: convert("zstd"), lambda _i: convert("zlib"))
    row.note = (
        f"{mib} MiB of host files; sizes zstd {sizes['zstd'] / 2**20:.1f} MiB, zlib {sizes['zlib'] / 2**20:.1f} MiB "
        f"(size ratio {sizes['zstd'] / sizes['zlib']:.3f})"
    )
    raw.unlink()
    return row


def boot_command(runs: int) -> Row:
    import bootcmd  # bench/bootcmd.py

    from vmbake.bootcommand import Wait, parse, to_events

    keys = [e for e in to_events(parse(bootcmd.SEED)) if not isinstance(e, Wait)]
    row = Row("boot command (seed's keys): VNC vs QMP", "VNC", "QMP")
    alternate(row, runs, lambda _i: bootcmd.measure("vnc", keys), lambda _i: bootcmd.measure("qmp", keys))
    row.note = (
        f"{len(keys)} key events, without the command's two <wait5>; each transport at its default pace"
    )
    return row


def packer(runs: int, work: Path, image: Path, key: Path) -> Row:
    import compare_packer as cp  # bench/compare_packer.py

    row = Row("disk-image template: vmbake vs Packer 1.6.6", "vmbake", "Packer")
    info = json.loads(procs.run(["qemu-img", "info", "--output=json", str(image)]).stdout)
    (work / "provision.sh").write_text(cp.SCRIPT)
    template = work / "bench.json"
    template.write_text(json.dumps(cp.template(image, key, work, int(info["virtual-size"]) >> 20), indent=2))
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "PACKER_CACHE_DIR": str(work / "cache")}
    argv = cp.commands(template)
    alternate(
        row,
        runs,
        lambda i: cp.timed(argv["vmbake"], work, env, work / f"vmbake-{i}.log"),
        lambda i: cp.timed(argv["packer"], work, env, work / f"packer-{i}.log"),
        estimate=240.0,
    )
    version = procs.run(["packer", "version"], check=False).stdout.strip().splitlines()[:1]
    row.note = (
        f"{' '.join(version)}; vmbake with -report=false (the same work as Packer); the template sets no"
        " cpus, so Packer's VM has 1 and vmbake's the host's CPUs, up to 4"
    )
    return row


def parallel_template(image: Path, key: Path, work: Path, size_mib: int) -> dict[str, object]:
    """The Packer row's template with its builder twice (builds "one" and "two", each its own output)."""
    import compare_packer as cp  # bench/compare_packer.py

    spec = cp.template(image, key, work, size_mib)
    builder: dict[str, object] = spec["builders"][0]  # type: ignore[index]
    spec["builders"] = [
        {**builder, "name": name, "output_directory": str(work / f"output-{name}")} for name in ("one", "two")
    ]
    return spec


def parallel(runs: int, work: Path, image: Path, key: Path) -> Row:
    import compare_packer as cp  # bench/compare_packer.py

    row = Row("two disk-image builds: parallel vs one after another", "parallel", "-parallel-builds=1")
    work.mkdir(exist_ok=True)
    info = json.loads(procs.run(["qemu-img", "info", "--output=json", str(image)]).stdout)
    (work / "provision.sh").write_text(cp.SCRIPT)
    template = work / "parallel.json"
    spec = parallel_template(image, key, work, int(info["virtual-size"]) >> 20)
    template.write_text(json.dumps(spec, indent=2))
    argv = cp.vmbake_argv(template)  # -force: each run replaces the outputs of the one before
    serial = [*argv[:-1], "-parallel-builds=1", argv[-1]]
    alternate(
        row,
        runs,
        lambda i: cp.timed(argv, work, dict(os.environ), work / f"parallel-{i}.log"),
        lambda i: cp.timed(serial, work, dict(os.environ), work / f"serial-{i}.log"),
        estimate=480.0,
    )
    row.note = (
        f"{os.cpu_count()} host CPUs; each VM gets vmbake's default vCPUs (the host's, up to 4), so the two "
        "TCG guests of the parallel run share the cores; a ratio of 0.5 would be perfect overlap, 1.0 none"
    )
    return row


def bootstrap(runs: int, work: Path, key: Path | None = None) -> tuple[Row, Row, Row]:
    """The three bootstrap rows. With `key`, its public half may log in to the images as root, and the
    first cold build's image is kept as work/image.qcow2 (the Packer row boots it)."""
    import bootstrap as bs  # bench/bootstrap.py

    cold_warm = Row("debian-bootstrap build: warm vs cold .deb cache", "warm", "cold")
    versus_cold = Row("bootstrap (cold) vs debvm-create", "vmbake cold", "debvm-create")
    versus_warm = Row("bootstrap (warm) vs debvm-create", "vmbake warm", "debvm-create")
    has_debvm = shutil.which("debvm-create") is not None
    root_keys = (Path(f"{key}.pub").read_text().strip(),) if key is not None else ()
    last = 330.0  # a first run's estimate: cold and warm builds and debvm-create on an idle host
    for i in range(runs):
        if out_of_time(cold_warm, i, last):
            versus_cold.error = versus_warm.error = cold_warm.error
            break
        started = time.monotonic()
        cache = work / f"cache-{i}"
        cold, _ = bs.build(work / "cold", cache, "linux-image-cloud-amd64", root_keys)
        if i == 0 and key is not None:
            shutil.copy(work / "cold" / "output" / "bench.qcow2", work / "image.qcow2")
        warm, mib = bs.build(work / "warm", cache, "linux-image-cloud-amd64", root_keys)
        shutil.rmtree(cache, ignore_errors=True)
        cold_warm.a_times.append(warm)
        cold_warm.b_times.append(cold)
        print(f"  run {i + 1}: cold {cold:8.2f} s, warm {warm:8.2f} s ({mib:.1f} MiB)", flush=True)
        if has_debvm:
            debvm_s, debvm_mib = bs.debvm(work / "debvm")
            for row, took in ((versus_cold, cold), (versus_warm, warm)):
                row.a_times.append(took)
                row.b_times.append(debvm_s)
            print(f"  run {i + 1}: debvm-create {debvm_s:8.2f} s ({debvm_mib:.1f} MiB)", flush=True)
            versus_warm.note = (
                f"image: vmbake {mib:.1f} MiB, debvm {debvm_mib:.1f} MiB (zstd qcow2); debvm-create makes a bare "
                "ext4 image and does not boot it, vmbake partitions, installs grub, boots and provisions"
            )
        last = time.monotonic() - started
    if not has_debvm and not cold_warm.error:
        versus_cold.error = versus_warm.error = "debvm-create is not installed (apt-get install debvm)"
    cold_warm.note = (
        "cold: a new, empty .deb cache; warm: the same build again with that cache (both with the image "
        "report on, vmbake's default)"
    )
    return cold_warm, versus_cold, versus_warm


def arm64(runs: int, work: Path) -> Row:
    """The bench/bootstrap.py build (bookworm, cloud kernel, a one-line provisioner) for arm64 and amd64,
    each with a new .deb cache."""
    import bootstrap as bs  # bench/bootstrap.py

    row = Row("debian-bootstrap build (cold): arm64 vs amd64", "arm64", "amd64")
    kernels = {"arm64": "linux-image-cloud-arm64", "amd64": "linux-image-cloud-amd64"}

    def one(architecture: str) -> Callable[[int], float]:
        def run(i: int) -> float:
            cache = work / f"cache-{architecture}-{i}"
            seconds, mib = bs.build(work / architecture, cache, kernels[architecture], (), architecture)
            shutil.rmtree(cache, ignore_errors=True)
            print(f"    {architecture}: {mib:.1f} MiB image", flush=True)
            return seconds

        return run

    alternate(row, runs, one("arm64"), one("amd64"), estimate=900.0)
    row.note = (
        "on an amd64 host: arm64's mmdebstrap runs the packages' scripts through qemu-user, and its check "
        "boot emulates an aarch64 CPU (qemu-system-aarch64 -M virt -cpu max,pauth-impdef=on, AAVMF); amd64 boots under TCG too"
    )
    return row


def mainjob(runs: int, work: Path) -> list[Row]:
    """The README's main job (trixie, cold cache), provisioned as a tree and in the guest, and debvm-create;
    the note gives each build's step medians."""
    import mainjob as mj  # bench/mainjob.py

    tree_vm = Row("main job (trixie, cold): provision_stage tree vs vm", "tree", "vm")
    tree_debvm = Row("main job (tree) vs debvm-create", "vmbake tree", "debvm-create")
    vm_debvm = Row("main job (vm) vs debvm-create", "vmbake vm", "debvm-create")
    trees: list[mj.Build] = []
    vms: list[mj.Build] = []
    last = 600.0
    for i in range(runs):
        if out_of_time(tree_vm, i, last):
            tree_debvm.error = vm_debvm.error = tree_vm.error
            break
        started = time.monotonic()
        tree, vm = mj.build(work, "tree"), mj.build(work, "vm")
        trees.append(tree)
        vms.append(vm)
        tree_vm.a_times.append(tree.seconds)
        tree_vm.b_times.append(vm.seconds)
        print(f"  run {i + 1}: tree {tree.seconds:8.2f} s, vm {vm.seconds:8.2f} s", flush=True)
        if shutil.which("debvm-create"):
            debvm_s = mj.debvm(work)
            for row, took in ((tree_debvm, tree.seconds), (vm_debvm, vm.seconds)):
                row.a_times.append(took)
                row.b_times.append(debvm_s)
            print(f"  run {i + 1}: debvm-create {debvm_s:8.2f} s", flush=True)
        last = time.monotonic() - started
    if not shutil.which("debvm-create") and not tree_vm.error:
        tree_debvm.error = vm_debvm.error = "debvm-create is not installed (apt-get install debvm)"
    steps = "; ".join(line.strip() for line in mj.step_table({"vm": vms, "tree": trees})[1:])
    tree_vm.note = f"median seconds by step (vm, tree): {steps}"
    return [tree_vm, tree_debvm, vm_debvm]


# -- output ------------------------------------------------------------------------------------------
def chart(rows: list[Row]) -> str:
    """Horizontal bars of each ratio on a log scale, a line at 1.0."""
    import math

    shown = [r for r in rows if r.ratio is not None]
    width, label_w, top, bar_h, gap = 760, 330, 30, 20, 8
    height = top + len(shown) * (bar_h + gap) + 30
    lo, hi = math.log10(0.05), math.log10(20)
    scale = (width - label_w - 60) / (hi - lo)

    def x(value: float) -> float:
        return label_w + (math.log10(min(max(value, 0.05), 20)) - lo) * scale

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        'font-size="12">',
        '<text x="0" y="18" font-size="14" font-weight="bold">Ratios A/B (median; log scale; &lt;1: A faster)</text>',
    ]
    for i, row in enumerate(shown):
        y = top + i * (bar_h + gap)
        ratio = row.ratio or 1.0
        x0, x1 = sorted((x(1.0), x(ratio)))
        colour = "#3b78b5" if ratio <= 1 else "#c0504d"
        parts += [
            f'<text x="{label_w - 8}" y="{y + bar_h - 6}" text-anchor="end">{row.a} / {row.b}</text>',
            f'<rect x="{x0:.1f}" y="{y}" width="{max(1.0, x1 - x0):.1f}" height="{bar_h}" fill="{colour}"/>',
            f'<text x="{max(x1, x(1.0)) + 4:.1f}" y="{y + bar_h - 6}">{ratio:.2f}</text>',
        ]
    parts.append(
        f'<line x1="{x(1.0):.1f}" y1="{top - 4}" x2="{x(1.0):.1f}" y2="{height - 24}" stroke="#222"/>'
    )
    for tick in (0.1, 0.25, 0.5, 1, 2, 4, 10):
        parts.append(f'<text x="{x(tick):.1f}" y="{height - 8}" text-anchor="middle">{tick:g}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_results(rows: list[Row], notes: list[str], started: float, out: Path) -> None:
    lines = [
        "# vmbake benchmarks",
        "",
        "Written by `bench/run` (do not edit by hand). Each ratio is A's time over B's, the median of the",
        "per-run ratios; A and B ran alternately in the same run. Timings are reported, not asserted.",
        "",
        "![ratios](results.svg)",
        "",
        "| comparison | A | B | A median (s) | B median (s) | ratio A/B | runs |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = f"**{row.ratio:.2f}**" if row.ratio is not None else "not measured"
        if row.ratio is not None and len(row.ratios) < 3:
            ratio += " (fewer than 3 runs)"
        lines.append(
            f"| {row.name} | {row.a} | {row.b} | {_median(row.a_times)} | {_median(row.b_times)} | {ratio} | "
            f"{len(row.ratios)} |"
        )
    lines += ["", "## Per run", ""]
    for row in rows:
        detail = ", ".join(
            f"{a:.1f}/{b:.1f}={a / b:.2f}" for a, b in zip(row.a_times, row.b_times, strict=False) if b
        )
        detail = "; ".join(part for part in (detail, row.error) if part)
        lines.append(f"- {row.name}: {detail or 'no runs'}" + (f". {row.note}" if row.note else ""))
    lines += ["", "## This run", ""] + [f"- {n}" for n in notes]
    if LOAD_AT_START[0] >= 1.5:
        lines.append(
            "- other work ran on the host at the same time (see the load average): TCG guests slow down with "
            "it, so single timings are noisy; the ratios of alternating runs are the figures to read"
        )
    else:
        lines.append(
            "- the host was otherwise idle at the start (see the load average); a TCG guest's boot still "
            "varies by several seconds from run to run, so the ratios of alternating runs are the figures to read"
        )
    lines.append(f"- total time of the run: {(time.monotonic() - started) / 60:.1f} min")
    out.write_text("\n".join(lines) + "\n")
    (out.parent / "results.svg").write_text(chart(rows))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="alternating runs per row (at least 3)")
    parser.add_argument("--only", default="compression,bootcmd,packer,bootstrap,mainjob,parallel")
    parser.add_argument("--image", type=Path, help="a bootable disk for the Packer row (made when absent)")
    parser.add_argument("--key", type=Path, help="root's private key for --image")
    parser.add_argument("--mib", type=int, default=256, help="MiB of data for the compression row")
    parser.add_argument("--out", type=Path, default=BENCH / "results.md")
    parser.add_argument(
        "--budget", type=float, default=50.0, help="minutes; no run starts that would end later"
    )
    args = parser.parse_args()
    runs = max(3, args.runs)
    only = set(args.only.split(","))
    started = time.monotonic()
    DEADLINE[0] = started + args.budget * 60
    load = os.getloadavg()
    LOAD_AT_START[0] = load[0]
    notes = [
        f"host: {platform.node() and 'this machine'}, {os.cpu_count()} CPUs, {platform.machine()}, "
        f"Python {platform.python_version()}; QEMU under TCG (no KVM); load average at start {load[0]:.1f}",
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
    ]
    rows: list[Row] = []
    base = Path(tempfile.mkdtemp(prefix="vmbake-bench-"))
    # The bootstrap section's first image, which root logs in to with this key, is the Packer row's disk.
    key = base / "id_ed25519"
    procs.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vmbake-bench", "-f", str(key)])
    sections: list[tuple[str, Callable[[], list[Row]]]] = [
        ("compression", lambda: [compression(runs, base, args.mib)]),
        ("bootcmd", lambda: [boot_command(runs)]),
        ("bootstrap", lambda: list(bootstrap(runs, base / "bootstrap", key))),
        ("packer", lambda: [packer(runs, base / "packer", *disk(args, base, key))]),
        ("mainjob", lambda: mainjob(runs, base / "mainjob")),
        ("parallel", lambda: [parallel(runs, base / "parallel", *disk(args, base, key))]),
        ("arm64", lambda: [arm64(runs, base / "arm64")]),
    ]
    try:
        for name, section in sections:
            if name not in only:
                continue
            print(f"== {name}", flush=True)
            (base / "packer").mkdir(exist_ok=True)
            (base / "bootstrap").mkdir(exist_ok=True)
            (base / "mainjob").mkdir(exist_ok=True)
            (base / "arm64").mkdir(exist_ok=True)
            t0 = time.monotonic()
            try:
                rows += section()
            except (Exception, SystemExit) as exc:  # a missing piece must not lose the other rows
                rows.append(Row(name, "-", "-", error=f"failed: {exc}"))
                print(f"  {name} failed: {exc}", flush=True)
            notes.append(f"section {name}: {(time.monotonic() - t0) / 60:.1f} min")
            write_results(rows, notes, started, args.out)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for row in rows:
        print(f"{row.name:<50} {row.ratio:.2f}" if row.ratio is not None else f"{row.name:<50} {row.error}")
    print(f"wrote {args.out} in {(time.monotonic() - started) / 60:.1f} min")
    return 0


def disk(args: argparse.Namespace, base: Path, key: Path) -> tuple[Path, Path]:
    """The Packer row's disk: --image, else the bootstrap section's first image, else one made now."""
    if args.image is not None and args.key is not None:
        return args.image, args.key
    kept = base / "bootstrap" / "image.qcow2"
    if kept.is_file():
        return kept, key
    from tests.helpers.bootstrap_disk import build_bootstrapped_disk

    print("  making a bookworm disk for the Packer row (tests/helpers/bootstrap_disk.py) ...", flush=True)
    made = build_bootstrapped_disk(base / "disk")
    return made.image, made.private_key


if __name__ == "__main__":
    raise SystemExit(main())
