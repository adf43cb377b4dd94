"""The `breakpoint` provisioner (Packer core): stop the build until the user presses enter.

As Packer's: `disable` only says the breakpoint was passed, `note` is shown with the pause. Packer reads
the answer from its terminal; vmbake asks through the build's Ui, like -debug's pauses. Without a
terminal on stdin (CI, a pipe) there is nobody to press enter: vmbake says so and goes on rather than
hanging or failing the build. Ctrl-C during the pause cancels the build.
"""

from __future__ import annotations

from vmbake.config.provisioners import BreakpointConfig
from vmbake.provisioners import Run


def provision(run: Run, config: BreakpointConfig) -> None:
    ui = run.ctx.ui
    with_note = f' with note "{config.note}"' if config.note else ""
    if config.disable:
        ui.say(f"Breakpoint provisioner{with_note} disabled; continuing...")
        return
    ui.say(f"Pausing at breakpoint provisioner{with_note}.")
    if not ui.interactive():
        ui.say("No terminal to wait at (stdin is not a tty); continuing...")
        return
    ui.ask("Press enter to continue.")
    run.check_cancel()
