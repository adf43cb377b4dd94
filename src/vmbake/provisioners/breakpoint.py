"""The `breakpoint` provisioner (Packer core): stop the build until the user presses enter.

As Packer's: `disable` only says the breakpoint was passed, `note` is shown with the pause, and the
answer is read through the build's Ui (as -debug's pauses are). Without a terminal on stdin (CI, a pipe)
nobody can press enter: the provisioner fails, as Packer 1.6.6's does ("no available tty"), rather than
hang or pass the breakpoint unseen. Ctrl-C during the pause cancels the build.
"""

from __future__ import annotations

from vmbake.config.provisioners import BreakpointConfig
from vmbake.errors import VmbakeError
from vmbake.provisioners import Run


def provision(run: Run, config: BreakpointConfig) -> None:
    ui = run.ctx.ui
    with_note = f' with note "{config.note}"' if config.note else ""
    if config.disable:
        ui.say(f"Breakpoint provisioner{with_note} disabled; continuing...")
        return
    ui.say(f"Pausing at breakpoint provisioner{with_note}.")
    if not ui.interactive():
        raise VmbakeError(
            "breakpoint: no terminal to wait at (stdin is not a tty)",
            hint="run vmbake from a terminal, or set disable = true on the breakpoint",
        )
    ui.ask("Press enter to continue.")
    run.check_cancel()
