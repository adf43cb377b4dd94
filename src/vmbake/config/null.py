"""The `null` builder's keys (Packer core): only a communicator, to provision a host that already exists.

With `communicator = "none"` a null build runs only what needs no guest: shell-local and breakpoint
provisioners, then the post-processors. With SSH it logs in to `ssh_host` with the given password, key or
agent; it makes no temporary key (there is no guest to hand it to).
"""

from __future__ import annotations

from dataclasses import dataclass

from vmbake.config.qemu import CommConfig


@dataclass(frozen=True)
class NullConfig(CommConfig):
    """A `null` build: the communicator keys only; no VM, no artifact."""


def validate_null(config: NullConfig) -> list[tuple[str, str, str]]:
    """(key, message, hint) for each problem Packer's null builder reports at validate time."""
    found: list[tuple[str, str, str]] = []
    if config.communicator != "ssh":
        return found
    if not config.ssh_host:
        found.append(
            (
                "ssh_host",
                "the null builder needs ssh_host",
                'name the host to provision, or set communicator = "none"',
            )
        )
    if not config.ssh_username:
        found.append(("ssh_username", "the null builder needs ssh_username", "the user to log in as"))
    if not (config.ssh_password or config.ssh_private_key_file or config.ssh_agent_auth):
        found.append(
            (
                "ssh_password",
                "the null builder needs a way to log in",
                "set ssh_password, ssh_private_key_file or ssh_agent_auth",
            )
        )
    return found
