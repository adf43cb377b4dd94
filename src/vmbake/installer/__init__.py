"""Starting the Debian installer without typing: its kernel and initrd booted directly by QEMU.

Three parts, each usable alone:

* `iso_extract` reads d-i's kernel and initrd out of an installer ISO (no mounting, no root);
* `netboot` fetches them from Debian's archive through its signed chain (`debarchive`: InRelease,
  Packages, .deb);
* `preseed_inject` appends a preseed to the initrd as /preseed.cfg, so no HTTP server is needed.

The QEMU arguments (-kernel, -initrd, -append with kernel_args, -no-reboot) come from vmbake.qemu_argv,
which reads state.kernel_path and state.initrd_path; the steps are steps/installer_*.py.
"""

from __future__ import annotations


def kernel_boot_enabled(config: object) -> bool:
    """True when the build boots d-i's kernel directly instead of typing at the ISO's boot menu."""
    return getattr(config, "installer_boot", "cdrom") == "kernel" or (
        getattr(config, "iso_source", "iso") == "debian-netboot"
    )
