"""StepWriteReport: after compaction, write OUTPUT_DIR/<vm_name>.report.json and .report.html, and print
a short summary (artifact size, virtual size, compression ratio, the 10 biggest packages).

Reads options.report, state.report (from StepCollectReport), state.disk_paths[0], state.output_dir and
the VM's name. Writes the two files; adds nothing to the artifact list (they sit in the output directory).
"""

from __future__ import annotations

import json
from pathlib import Path

from vmbake import procs
from vmbake.errors import StepError, VmbakeError
from vmbake.report.collect import ImageFacts
from vmbake.report.render import ArtifactInfo, summary_lines, write_report
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import main_disk, output_dir, vm_name


def artifact_info(path: Path) -> ArtifactInfo:
    """The file's size on disk and its virtual size, from qemu-img info."""
    out = procs.run(["qemu-img", "info", "--output=json", "-U", str(path)], what="qemu-img info").stdout
    info = json.loads(out)
    return ArtifactInfo(
        str(path), str(info.get("format", "")), path.stat().st_size, int(info["virtual-size"])
    )


class StepWriteReport(Step):
    name = "StepWriteReport"

    def run(self, ctx: BuildContext) -> None:
        if not ctx.options.report:
            return
        disk = main_disk(ctx)
        if not disk.is_file():
            ctx.ui.warn(f"no image report: the disk {disk} is missing")
            return
        try:
            artifact = artifact_info(disk)
        except VmbakeError as err:
            raise StepError(self.name, f"cannot read the image's sizes: {err}", err.hint) from err
        facts = ctx.state.report or ImageFacts()
        json_path, html_path = write_report(output_dir(ctx), vm_name(ctx), ctx.name, facts, artifact)
        ctx.ui.say(f"Image report: {html_path} (data: {json_path.name})")
        for line in summary_lines(facts, artifact):
            ctx.ui.message(line)
