"""StepDownload: retrieve and check the ISO (or, with disk_image, the disk image) named by iso_url(s).

Reads: config.iso_url, iso_urls, iso_checksum, iso_target_path, iso_target_extension, iso_source.
Writes: state.iso_path. Skipped when iso_source is 'debian-netboot' (the installer comes from the archive).
Cleanup: nothing; a download is kept in the cache, and an interrupted one is resumed next time.
"""

from __future__ import annotations

from vmbake.config.qemu import InstallerConfig, ISOConfig
from vmbake.errors import BuildCancelled, StepError, VmbakeError
from vmbake.iso import retrieve
from vmbake.state import BuildContext
from vmbake.steps import Step


def iso_urls(config: ISOConfig) -> list[str]:
    """iso_url first, then iso_urls, without duplicates."""
    urls = [config.iso_url] if config.iso_url else []
    return urls + [u for u in config.iso_urls if u and u not in urls]


class StepDownload(Step):
    name = "StepDownload"

    def run(self, ctx: BuildContext) -> None:
        config = ctx.config
        if not isinstance(config, ISOConfig):
            return
        if isinstance(config, InstallerConfig) and config.iso_source == "debian-netboot":
            return
        try:
            ctx.state.iso_path = retrieve(
                iso_urls(config),
                config.iso_checksum,
                ctx.ui,
                extension=config.iso_target_extension,
                target_path=config.iso_target_path,
                cancel=ctx.cancel,
            )
        except (StepError, BuildCancelled):
            raise
        except VmbakeError as exc:
            raise StepError(self.name, exc.message, exc.hint) from None
