"""stepConfigureVNC: choose the VNC port (and password) for QEMU's VNC server.

Reads config.disable_vnc, vnc_bind_address, vnc_port_min/max, vnc_use_password, vnc_password.
Writes state.vnc_port and state.vnc_password (registered as a secret). Nothing with disable_vnc.
The port is reserved until the build ends; stepRun chooses again if QEMU finds it taken.
"""

from __future__ import annotations

import secrets
import string

from vmbake.config.qemu import QemuConfig
from vmbake.errors import StepError, VmbakeError
from vmbake.ports import PortReservation, search_message
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import qemu_config
from vmbake.vm import reserve_vnc_port

_PASSWORD_CHARS = string.ascii_letters + string.digits


def vnc_password(config: QemuConfig) -> str:
    """The VNC password: none unless vnc_use_password; VNC only uses the first 8 characters."""
    if not config.vnc_use_password:
        return ""
    if len(config.vnc_password) > 8:
        raise VmbakeError(
            f"vnc_password is {len(config.vnc_password)} characters long; VNC allows at most 8",
            hint="shorten vnc_password, or leave it empty for a random one",
        )
    return config.vnc_password or "".join(secrets.choice(_PASSWORD_CHARS) for _ in range(8))


class StepConfigureVNC(Step):
    name = "stepConfigureVNC"

    def __init__(self) -> None:
        self._reservation: PortReservation | None = None

    def run(self, ctx: BuildContext) -> None:
        config = qemu_config(ctx, self.name)
        if config.disable_vnc:
            return
        ctx.ui.say(search_message(config.vnc_bind_address, config.vnc_port_min, config.vnc_port_max))
        try:
            self._reservation = reserve_vnc_port(config)
            password = vnc_password(config)
        except VmbakeError as err:
            raise StepError(self.name, f"Error finding VNC port: {err}", err.hint) from err
        ctx.ui.add_secret(password)
        ctx.state.vnc_port = self._reservation.port
        ctx.state.vnc_password = password

    def cleanup(self, ctx: BuildContext) -> None:
        if self._reservation is not None:
            self._reservation.release()
            self._reservation = None
