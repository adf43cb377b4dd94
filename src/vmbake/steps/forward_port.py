"""stepPortForward: choose the host port QEMU forwards to the guest's SSH port.

Reads config.communicator, host_port_min/max (or the deprecated ssh_host_port_min/max), skip_nat_mapping,
ssh_port, vnc_bind_address. Writes state.ssh_host_port, and state.net_probe_port: a second forward, to a
guest port where nothing listens, that tells the SSH wait when the guest's network is up (comm.probe).
The ports are reserved (a lock file that other vmbake builds respect) until the build ends; QEMU binds
them itself, and stepRun chooses again if QEMU finds one taken after all.
"""

from __future__ import annotations

from vmbake.errors import StepError, VmbakeError
from vmbake.ports import PortReservation
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import qemu_config
from vmbake.vm import reserve_forward_ports


class StepPortForward(Step):
    name = "stepPortForward"

    def __init__(self) -> None:
        self._reservations: list[PortReservation] = []

    def run(self, ctx: BuildContext) -> None:
        config = qemu_config(ctx, self.name)
        if config.communicator == "none":
            ctx.ui.message("No communicator is set; skipping port forwarding setup.")
            return
        if config.skip_nat_mapping:
            ctx.state.ssh_host_port = config.ssh_port
            return
        try:
            ssh, probe = reserve_forward_ports(config)
        except VmbakeError as err:
            raise StepError(self.name, f"Error finding port: {err}", err.hint) from err
        self._reservations += [ssh, probe]
        ctx.state.ssh_host_port = ssh.port
        ctx.state.net_probe_port = probe.port
        ctx.ui.say(f"Found port for communicator (SSH, WinRM, etc): {ssh.port}.")

    def cleanup(self, ctx: BuildContext) -> None:
        for reservation in self._reservations:
            reservation.release()
        self._reservations.clear()
