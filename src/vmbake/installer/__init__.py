"""Starting the Debian installer without typing: its kernel and initrd booted directly by QEMU.

Three parts, each usable alone:

* `iso_extract` reads d-i's kernel and initrd out of an installer ISO (no mounting, no root);
* `netboot` fetches them from Debian's archive through its signed chain (InRelease, Packages, .deb);
* `preseed_inject` appends a preseed to the initrd as /preseed.cfg, so no HTTP server is needed.

This module holds what the rest of the build asks about that choice: whether it is in effect, and the
QEMU arguments that boot the installer kernel.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vmbake.state import BuildState

_PLACEHOLDER = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")


def kernel_boot_enabled(config: Any) -> bool:
    """True when the build boots d-i's kernel directly instead of typing at the ISO's boot menu."""
    return getattr(config, "installer_boot", "cdrom") == "kernel" or (
        getattr(config, "iso_source", "iso") == "debian-netboot"
    )


def render_kernel_args(text: str, state: BuildState, name: str = "") -> str:
    """`kernel_args` with its run-time values filled in: {{ .HTTPIP }}, {{ .HTTPPort }}, {{ .Name }}.

    Anything else in braces was rendered (or rejected) when the template was loaded; an unknown
    placeholder left here is kept as typed, so the guest's command line shows it.
    """
    values = {
        "HTTPIP": state.http_ip,
        "HTTPPort": "" if state.http_port is None else str(state.http_port),
        "Name": name,
    }

    def fill(match: re.Match[str]) -> str:
        return values.get(match.group(1), match.group(0))

    return _PLACEHOLDER.sub(fill, text).strip()


def installer_qemu_args(config: Any, state: BuildState, name: str = "") -> list[str]:
    """The QEMU arguments that boot the installer kernel, or [] once it has run (or was never asked for).

    `-no-reboot` turns the installer's final reboot into QEMU exiting, exactly like a power-off, so the
    installer kernel can never start a second time: vmbake then restarts QEMU from the disk.
    """
    if state.kernel_path is None or state.initrd_path is None:
        return []
    argv = ["-kernel", str(state.kernel_path), "-initrd", str(state.initrd_path)]
    cmdline = render_kernel_args(getattr(config, "kernel_args", ""), state, name)
    if cmdline:
        argv += ["-append", cmdline]
    return [*argv, "-no-reboot"]
