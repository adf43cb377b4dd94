"""The image report: parsers of recorded guest output, the JSON/HTML rendering, the report and budget
steps on real qcow2 files, and the collect round trip over a scripted communicator.

The communicator here is a fake that answers with recorded output (a real guest is covered by
tests/integration/test_report_verify.py, which boots one)."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from vmbake import procs
from vmbake.config.fields import Decoder
from vmbake.config.qemu import QemuConfig
from vmbake.errors import StepError
from vmbake.report.collect import (
    DF_CMD,
    LIVE_CMD,
    PACKAGES_CMD,
    ImageFacts,
    add_live_facts,
    collect,
    collect_files,
    parse_df,
    parse_du,
    parse_failed_units,
    parse_live,
    parse_packages,
)
from vmbake.report.render import ArtifactInfo, render_html, report_data, summary_lines
from vmbake.state import BuildContext, Options
from vmbake.steps.check_size_budget import StepCheckSizeBudget
from vmbake.steps.collect_report import StepCollectReport
from vmbake.steps.write_report import StepWriteReport
from vmbake.template.model import Template
from vmbake.ui import BuildUi, Ui

DPKG = "\n".join(
    [
        "openssh-server\t1:9.2p1-2+deb12u3\t1932\tii ",
        "linux-image-6.1.0-28-cloud-amd64\t6.1.119-1\t51520\tii ",
        "libc6:amd64\t2.36-9+deb12u9\t12986\tii ",
        "old-thing\t1.0\t999999\trc ",
        "coreutils\t9.1-1\t18062\tii ",
        "<script>x</script>\t1\t1\tii ",
    ]
)
DF = """Filesystem     Type     1B-blocks      Used     Avail Mounted on
/dev/vda1      ext4    2046640128 612237312 1326051328 /
/dev/vda15     vfat     129718272   6150144  123568128 /boot/efi
"""
DU = "\n".join(
    [
        "402653184\t/usr/lib",
        "510000000\t/usr",
        "80000000\t/var",
        "4000000\t/etc",
        "600000000\t/",
        "6100000\t/boot/efi",
        "6000000\t/boot/efi/EFI",
    ]
)
FAILED = "systemd-networkd-wait-online.service loaded failed failed Wait for Network to be Configured\n"


def sample_facts() -> ImageFacts:
    facts = ImageFacts(
        kernel="6.1.0-28-cloud-amd64", os="Debian GNU/Linux 12 (bookworm)", system_state="running"
    )
    facts.packages = parse_packages(DPKG)
    facts.filesystems, facts.directories = parse_du(DU, parse_df(DF))
    return facts


def test_parsers_read_recorded_guest_output() -> None:
    packages = parse_packages(DPKG)
    assert [p.name for p in packages][:3] == ["linux-image-6.1.0-28-cloud-amd64", "coreutils", "libc6:amd64"]
    assert "old-thing" not in [p.name for p in packages]  # removed, config files only
    assert packages[0].installed_bytes == 51520 * 1024
    filesystems, directories = parse_du(DU, parse_df(DF))
    assert [(fs.mountpoint, fs.used_bytes, fs.du_bytes) for fs in filesystems] == [
        ("/", 612237312, 600000000),
        ("/boot/efi", 6150144, 6100000),
    ]
    assert [(d.path, d.depth) for d in directories[:3]] == [("/usr", 1), ("/usr/lib", 2), ("/var", 1)]
    assert ("/boot/efi/EFI", 1) in [(d.path, d.depth) for d in directories]
    assert parse_failed_units(FAILED) == ["systemd-networkd-wait-online.service"]


def test_facts_round_trip_through_json() -> None:
    facts = sample_facts()
    data = json.loads(json.dumps(facts.to_json()))
    again = ImageFacts.from_json(data)
    assert again == facts
    assert data["used_bytes"] == 606100000 and data["packages_bytes"] == facts.packages_bytes


def test_html_has_tables_escaped_names_and_two_svg_charts() -> None:
    facts = sample_facts()
    page = render_html("qemu", facts, ArtifactInfo("out/vm.qcow2", "qcow2", 100 << 20, 2 << 30))
    assert page.count("<svg") == 2 and 'class="chart packages"' in page
    assert "&lt;script&gt;" in page and "<script>" not in page
    assert "linux-image-6.1.0-28-cloud-amd64" in page and "5.78:1" in page  # 606 MB of files in 100 MiB


def test_summary_lists_sizes_ratio_and_at_most_ten_packages() -> None:
    facts = sample_facts()
    facts.packages = facts.packages * 3
    lines = summary_lines(facts, ArtifactInfo("vm", "qcow2", 200 << 20, 4 << 30))
    assert lines[0].startswith("Artifact: 200.0 MiB (qcow2), virtual size 4.0 GiB, compression ratio 2.89:1")
    assert lines[2] == "The 10 biggest packages:"
    assert len(lines) == 13


class ScriptedComm:
    """Answers each command with recorded output (stands in for a guest in this unit test)."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.commands: list[str] = []

    def run(
        self,
        command: str,
        *,
        on_stdout: Callable[[str], None],
        on_stderr: Callable[[str], None],
        pty: bool = False,
        timeout: float | None = None,
    ) -> int:
        self.commands.append(command)
        for prefix, text in self.answers.items():
            if prefix in command:
                for line in text.splitlines():
                    on_stdout(line)
                return 0
        return 0


def answers() -> dict[str, str]:
    return {PACKAGES_CMD: DPKG, DF_CMD: DF, " du ": DU, "uname": "6.1.0-28-cloud-amd64", "os-release": "Debian",
            "is-system-running": "degraded", "list-units": FAILED}  # fmt: skip


def test_collect_asks_each_fact_once_and_keeps_output_quiet() -> None:
    comm = ScriptedComm(answers())
    facts = collect(comm)
    assert len(comm.commands) == 7
    assert "du -x -B1 -d 3 / /boot/efi" in comm.commands[2]
    assert facts.system_state == "degraded" and facts.failed_units == ["systemd-networkd-wait-online.service"]
    assert facts.biggest_packages(1)[0].name.startswith("linux-image")


def test_files_then_live_facts_ask_the_guest_once_for_what_is_running() -> None:
    """The tree stage's split: the files' facts in the chroot, then one command in the booted guest."""
    tree = ScriptedComm(answers())
    facts = collect_files(tree)
    assert len(tree.commands) == 4 and not facts.kernel and not facts.system_state
    assert facts.os == "Debian" and facts.biggest_packages(1)[0].name.startswith("linux-image")
    guest = ScriptedComm({LIVE_CMD: "6.12.1-amd64\n--vmbake--\ndegraded\n--vmbake--\n" + FAILED})
    add_live_facts(guest, facts)
    assert guest.commands == [LIVE_CMD]
    assert facts.kernel == "6.12.1-amd64" and facts.system_state == "degraded"
    assert facts.failed_units == ["systemd-networkd-wait-online.service"]


def test_parse_live_tolerates_missing_sections() -> None:
    assert parse_live("6.1.0\n--vmbake--\nrunning\n--vmbake--\n") == ("6.1.0", "running", [])
    assert parse_live("6.1.0\n") == ("6.1.0", "", [])


def context(tmp_path: Path, *, report: bool = True, **config: object) -> tuple[BuildContext, io.StringIO]:
    out = io.StringIO()
    values: dict[str, object] = {"output_directory": str(tmp_path), "vm_name": "vm.qcow2"}
    values.update(config)
    ctx = BuildContext(
        "qemu", "qemu", QemuConfig(**values), Template(tmp_path / "t.json", tmp_path, "json"),  # type: ignore[arg-type]
        BuildUi(Ui(out=out, err=out), "qemu"), Options(report=report),
    )  # fmt: skip
    ctx.state.work_dir = tmp_path
    ctx.state.output_dir = tmp_path
    return ctx, out


def small_qcow2(path: Path, mib: int = 3) -> Path:
    """A real qcow2 with `mib` MiB of incompressible data written into it."""
    raw = path.with_suffix(".raw")
    raw.write_bytes(os.urandom(mib << 20))
    procs.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path)])
    raw.unlink()
    return path


@pytest.mark.host_tools("qemu-img")
def test_budget_of_1mib_fails_and_names_the_biggest_packages(tmp_path: Path) -> None:
    disk = small_qcow2(tmp_path / "vm.qcow2")
    ctx, _ = context(tmp_path, size_budget=1 << 20)
    ctx.state.disk_paths = [disk]
    ctx.state.comm = ScriptedComm(answers())
    StepCollectReport().run(ctx)  # the budget alone makes the facts be collected
    ctx.state.comm = None
    with pytest.raises(StepError) as caught:
        StepCheckSizeBudget().run(ctx)
    message = str(caught.value)
    assert re.search(r"is 3\.\d MiB: over the size_budget of 1\.0 MiB by 2\.\d MiB", message)
    assert (
        "the biggest packages: linux-image-6.1.0-28-cloud-amd64 (50.3 MiB), coreutils (17.6 MiB)" in message
    )


@pytest.mark.host_tools("qemu-img")
def test_budget_passes_when_the_artifact_fits_and_rejects_bad_values(tmp_path: Path) -> None:
    disk = small_qcow2(tmp_path / "vm.qcow2", mib=1)
    ctx, out = context(tmp_path, size_budget=120 << 20)
    ctx.state.disk_paths = [disk]
    StepCheckSizeBudget().run(ctx)
    assert "within the size budget of 120.0 MiB" in out.getvalue()
    decoder = Decoder("t.pkr.hcl")
    decoder.decode(QemuConfig, {"size_budget": "lots"}, "source.qemu.x")  # refused when the template loads
    assert [(p.key, p.message.split(":")[0]) for p in decoder.problems] == [
        ("source.qemu.x.size_budget", "invalid size 'lots'")
    ]


@pytest.mark.host_tools("qemu-img")
def test_write_report_step_writes_json_and_html_beside_the_image(tmp_path: Path) -> None:
    disk = small_qcow2(tmp_path / "vm.qcow2", mib=2)
    ctx, out = context(tmp_path)
    ctx.state.disk_paths = [disk]
    ctx.state.report = sample_facts()
    StepWriteReport().run(ctx)
    data = json.loads((tmp_path / "vm.qcow2.report.json").read_text())
    assert data["artifact"]["file_bytes"] == disk.stat().st_size
    assert data["artifact"]["virtual_bytes"] == 2 << 20
    assert data["packages"][0]["name"] == "linux-image-6.1.0-28-cloud-amd64"
    assert "<svg" in (tmp_path / "vm.qcow2.report.html").read_text()
    text = out.getvalue()
    assert "virtual size 2.0 MiB" in text and "The 5 biggest packages:" in text


@pytest.mark.host_tools("qemu-img")
def test_report_false_writes_nothing(tmp_path: Path) -> None:
    disk = small_qcow2(tmp_path / "vm.qcow2", mib=1)
    ctx, _ = context(tmp_path, report=False)
    ctx.state.disk_paths = [disk]
    comm = ScriptedComm(answers())
    ctx.state.comm = comm
    StepCollectReport().run(ctx)
    StepWriteReport().run(ctx)
    assert comm.commands == [] and ctx.state.report is None
    assert not list(tmp_path.glob("*.report.*"))


def test_report_data_carries_ratios() -> None:
    data = report_data("qemu", sample_facts(), ArtifactInfo("vm", "qcow2", 101 << 20, 2 << 30))
    assert data["artifact"]["virtual_ratio"] == 20.28 and data["build"] == "qemu"


@pytest.mark.parametrize("builder", ["qemu", "debian-bootstrap"])
def test_report_steps_sit_in_both_step_lists(builder: str, tmp_path: Path) -> None:
    """Collect before the shutdown; report, budget and verify after the conversion, verify last."""
    from vmbake.build import builder_steps
    from vmbake.config.bootstrap import BootstrapConfig

    ctx, _ = context(tmp_path)
    if builder == "debian-bootstrap":
        ctx.builder_type = builder
        ctx.config = BootstrapConfig()
    names = [step.name for step in builder_steps(ctx)]
    order = ["StepProvision", "StepCollectReport", "stepShutdown", "stepConvertDisk", "StepWriteReport",
             "StepCheckSizeBudget", "StepVerifyImage"]  # fmt: skip
    assert [n for n in names if n in order] == order
    assert names[-1] == "StepVerifyImage"
