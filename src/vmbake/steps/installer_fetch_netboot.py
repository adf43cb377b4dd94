"""StepFetchNetboot: fetch d-i's netboot kernel and initrd for a suite from Debian's archive, signature checked."""

from __future__ import annotations

import os
from pathlib import Path

from vmbake import aptproxy
from vmbake.errors import StepError, VmbakeError
from vmbake.installer.debarchive import DEBIAN_KEYRING
from vmbake.installer.netboot import fetch_netboot
from vmbake.iso import cache_dir
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import qemu_config

# Keyrings that sign a private mirror's InRelease, separated by ':' (default: Debian's archive keyring).
KEYRING_ENV = "VMBAKE_ARCHIVE_KEYRING"


def keyrings() -> list[Path]:
    value = os.environ.get(KEYRING_ENV, "")
    return [Path(p) for p in value.split(":") if p] or [DEBIAN_KEYRING]


class StepFetchNetboot(Step):
    """Reads config.iso_source, suite, mirror and apt_proxy (or the environment's); sets state.kernel_path and state.initrd_path.

    Does nothing unless iso_source is 'debian-netboot'. The files live in the cache and are never
    modified: a preseed is appended to a copy (StepInjectPreseed).
    """

    name = "StepFetchNetboot"

    def run(self, ctx: BuildContext) -> None:
        config = qemu_config(ctx, self.name)
        if config.iso_source != "debian-netboot":
            return
        suite = config.suite
        if not suite:
            raise StepError(
                self.name, "iso_source 'debian-netboot' needs a suite", hint="set suite, e.g. bookworm"
            )
        try:
            files = fetch_netboot(
                suite,
                config.mirror,
                cache_dir(),
                keyrings=keyrings(),
                ui=ctx.ui,
                cancel=ctx.cancel,
                proxy=aptproxy.resolve(config.apt_proxy),
            )
        except VmbakeError as err:
            raise StepError(self.name, err.message, err.hint) from err
        ctx.state.kernel_path = files.kernel
        ctx.state.initrd_path = files.initrd
