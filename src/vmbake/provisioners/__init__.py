"""Provisioners: `shell` and `file` work through the communicator, `shell-local` runs on the host.

Shared here: the run-time values a provisioner's placeholders may read (vmbake.placeholders builds them), Packer's injected PACKER_*
variables, the quoting of environment_vars, and the deadline a provisioner's `timeout` sets.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vmbake import placeholders
from vmbake.comm import Communicator
from vmbake.errors import BuildCancelled, StepError, VmbakeError
from vmbake.state import BuildContext


@dataclass
class Run:
    """One provisioner run: its build, its name for messages, and the deadline set by `timeout`."""

    ctx: BuildContext
    label: str  # "shell", "file" ...: names the provisioner in errors
    deadline: float | None = None

    def remaining(self) -> float | None:
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise VmbakeError(
                f"the {self.label} provisioner ran past its timeout", hint="raise its 'timeout'"
            )
        return left

    def comm(self) -> Communicator:
        comm = self.ctx.state.comm
        if comm is None:
            raise StepError(
                "StepProvision",
                f"the {self.label} provisioner needs a connection to the guest, but there is none",
                hint="set communicator to 'ssh' (with 'none' only shell-local provisioners can run)",
            )
        return comm

    def sleep(self, seconds: float) -> None:
        """Wait, but wake up at once on Ctrl-C."""
        if seconds > 0 and self.ctx.cancel.wait(seconds):
            raise BuildCancelled()

    def check_cancel(self) -> None:
        if self.ctx.cancel.is_set():
            raise BuildCancelled()


def build_data(ctx: BuildContext) -> dict[str, str]:
    """What {{ build `X` }} reads when a provisioner or post-processor runs (vmbake.placeholders)."""
    return placeholders.of(ctx).build_data()


def render(ctx: BuildContext, text: str, **own: str) -> str:
    """A provisioner's value with `{{ .X }}` read from the build data and the provisioner's `own` values
    (Packer renders provisioner fields so), and {{ build `X` }} from the build data."""
    values = placeholders.of(ctx)
    return values.render(text, values.provisioner(**own), values.build_data())


def packer_env(ctx: BuildContext, user_vars: list[str], label: str) -> dict[str, str]:
    """Packer's injected variables, then the user's KEY=VALUE pairs (which win)."""
    env = {"PACKER_BUILD_NAME": ctx.name, "PACKER_BUILDER_TYPE": ctx.builder_type}
    if ctx.state.http_port is not None:
        env["PACKER_HTTP_ADDR"] = f"{ctx.state.http_ip}:{ctx.state.http_port}"
        env["PACKER_HTTP_IP"] = ctx.state.http_ip
        env["PACKER_HTTP_PORT"] = str(ctx.state.http_port)
    for pair in user_vars:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise VmbakeError(
                f"{label}: environment_vars entry {pair!r} is not KEY=VALUE",
                hint="write each variable as NAME=value",
            )
        env[key] = value
    return env


def quote_value(value: str) -> str:
    """A value made safe inside single quotes: each ' closes the quote, adds a quoted ', and reopens."""
    return value.replace("'", "'\"'\"'")


def flatten_env(env: Mapping[str, str], fmt: str) -> str:
    """The variables in name order, each through the printf-style `fmt` ("%s='%s' ")."""
    return "".join(_printf(fmt, k, quote_value(env[k])) for k in sorted(env))


def _printf(fmt: str, name: str, value: str) -> str:
    parts = fmt.split("%s", 2)
    if len(parts) != 3:
        raise VmbakeError(f"env_var_format {fmt!r} must contain %s twice", hint="for example \"%s='%s' \"")
    return parts[0] + name + parts[1] + value + parts[2]


def random_name(pattern: str) -> str:
    """Packer's random remote names: script_NNNN.sh (0 <= N < 9999)."""
    return pattern % random.randrange(9999)


Provision = Callable[[Run, Any], None]
