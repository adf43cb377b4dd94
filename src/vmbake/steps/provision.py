"""StepProvision: run the template's provisioners in order against the guest (or the host).

Reads ctx.provisioners (this build's, already selected and decoded by the template loader), state.comm
and, when one fails, ctx.error_cleanup_provisioner (vmbake.provisioners.sequence). Produces nothing in
the state; the guest is changed.
"""

from __future__ import annotations

from vmbake.provisioners.sequence import run_all
from vmbake.state import BuildContext
from vmbake.steps import Step


class StepProvision(Step):
    name = "StepProvision"

    def run(self, ctx: BuildContext) -> None:
        run_all(ctx, self.name)
