"""StepCheckSizeBudget: fail the build when the compacted artifact is larger than size_budget.

Reads config.size_budget, state.disk_paths[0] and state.report (for the biggest packages). Writes nothing.
Off when size_budget is empty (the default). Runs after the disk conversion and the report, so the
report exists when the budget is blown (keep it with -on-error=abort).
"""

from __future__ import annotations

from vmbake.errors import StepError
from vmbake.report.collect import ImageFacts
from vmbake.report.render import biggest_names
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import main_disk, qemu_config
from vmbake.units import format_size


def overrun_message(path: str, size: int, budget: int, facts: ImageFacts | None) -> str:
    """What blew the budget: by how much, and the biggest packages when the report has them."""
    over = size - budget
    text = (
        f"the artifact {path} is {format_size(size)}: over the size_budget of {format_size(budget)} "
        f"by {format_size(over)} ({100 * over / max(budget, 1):.0f}%)"
    )
    if facts is not None and facts.packages:
        text += "; the biggest packages: " + biggest_names(facts.packages)
    else:
        text += " (no package list: the report needs a communicator)"
    return text


class StepCheckSizeBudget(Step):
    name = "StepCheckSizeBudget"

    def run(self, ctx: BuildContext) -> None:
        budget = qemu_config(ctx, self.name).size_budget
        if budget is None:
            return
        disk = main_disk(ctx)
        size = disk.stat().st_size
        if size <= budget:
            ctx.ui.say(
                f"Artifact size {format_size(size)} is within the size budget of {format_size(budget)}"
            )
            return
        facts = ctx.state.report
        raise StepError(
            self.name,
            overrun_message(str(disk), size, budget, facts),
            hint="remove packages or files in the provisioners, or raise size_budget; "
            "-on-error=abort keeps the image and its report for a look",
        )
