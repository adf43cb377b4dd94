"""StepCollectReport: gather the image report's facts in the guest, after provisioning, before shutdown.

Reads options.report, config.size_budget, state.comm. Writes state.report (ImageFacts).
Runs when the report is on (the default) or a size_budget is set, so that a budget failure can name the
biggest packages. The commands are read-only and their output is kept out of the terminal. A guest where
they fail (no dpkg, say) gets a warning, not a failed build.
"""

from __future__ import annotations

from vmbake.errors import BuildCancelled, VmbakeError
from vmbake.report.collect import collect
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import qemu_config
from vmbake.units import format_duration


class StepCollectReport(Step):
    name = "StepCollectReport"

    def run(self, ctx: BuildContext) -> None:
        budget = qemu_config(ctx, self.name).size_budget
        if not ctx.options.report and budget is None:
            return
        comm = ctx.state.comm
        if comm is None:
            if ctx.options.report:
                ctx.ui.message("No communicator: the image report will hold only the artifact's sizes")
            return
        ctx.ui.say("Collecting facts for the image report...")
        try:
            facts = collect(comm)
        except BuildCancelled:
            raise
        except VmbakeError as err:
            ctx.ui.warn(f"could not collect the image report: {err}")
            return
        ctx.state.report = facts
        ctx.ui.message(
            f"{len(facts.packages)} packages, {len(facts.filesystems)} filesystems "
            f"(in {format_duration(facts.collect_seconds)})"
        )
