"""stepBootstrapRootfs: build the root filesystem with mmdebstrap, as a tarball in the work directory.

Reads the BootstrapConfig given at construction (suite, mirror, variant, packages, excludes, hooks, apt_proxy
or the environment's APT_PROXY/http_proxy: checked to answer before mmdebstrap starts),
state.work_dir and state.ssh_public_key (the build's key, set by StepSSHKeyPair, which runs before).
Writes state.rootfs_tarball, and state.kept_apt_lists when it asked mmdebstrap to leave its package lists
in the tree (`keep_lists`: provision_stage "tree" with provisioners, whose `apt-get update` then only
revalidates them; StepTreeProvision removes them again unless a provisioner took them over). Downloaded
.debs go to the cache under the vmbake cache directory, and the step says how much came from it. Needs root (see vmbake.bootstrap.disk).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

from vmbake import accel, aptproxy
from vmbake.bootstrap.pipeline import make_rootfs
from vmbake.bootstrap.rootfs import keeps_apt_lists
from vmbake.config.bootstrap import BootstrapConfig, effective_mirror
from vmbake.config.login import gives_a_way_in
from vmbake.config.qemu import QemuConfig
from vmbake.errors import StepError, VmbakeError
from vmbake.login import NO_WAY_IN, build_key_line, read_keys
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.units import format_duration


def authorized_keys(config: BootstrapConfig, build_key: str) -> list[str]:
    """Root's authorized_keys during the build: the user's keys (lines or files), then the build's key."""
    keys = read_keys(config.root_ssh_keys)
    if build_key.strip():
        keys.append(build_key_line(build_key))
    return keys


class StepBootstrapRootfs(Step):
    name = "stepBootstrapRootfs"

    def __init__(self, config: BootstrapConfig, *, keep_lists: bool = False) -> None:
        self.config = config
        # The user's own --skip=cleanup/apt keeps the lists in the image: then they are not the builder's.
        self.keep_lists = keep_lists and not keeps_apt_lists(config)
        self._scratch: Path | None = None

    def run(self, ctx: BuildContext) -> None:
        view = ctx.config  # the QEMU view of the build (builders.bootstrap.qemu_view)
        boots = not (self.config.provision_stage == "tree" and self.config.communicator == "none")
        if boots and isinstance(view, QemuConfig):
            accel.choose_ahead(view.accelerator, view.qemu_binary)  # KVM's probe runs beside mmdebstrap
        proxy = aptproxy.resolve(self.config.apt_proxy)
        config = dataclasses.replace(self.config, apt_proxy=proxy.url)
        work = ctx.state.work_dir
        if work is None:
            work = self._scratch = Path(tempfile.mkdtemp(prefix="vmbake-bootstrap-"))
        try:
            keys = authorized_keys(config, ctx.state.ssh_public_key)
        except VmbakeError as exc:
            raise StepError(self.name, f"root_ssh_keys: {exc.message}", exc.hint) from None
        if config.communicator == "ssh" and not keys and not config.root_password:
            raise StepError(
                self.name,
                "no SSH key to put in root's authorized_keys and no root_password",
                hint="let vmbake make its temporary key (leave ssh_password empty) or set root_ssh_keys",
            )
        ctx.ui.add_secret(config.root_password)
        if not gives_a_way_in(config) and not config.keep_build_key:
            ctx.ui.warn(NO_WAY_IN)
        ctx.ui.say(
            f"Bootstrapping Debian {config.suite} with mmdebstrap ({config.variant} variant, {config.kernel}, "
            f"from {effective_mirror(config)}" + (f" through {proxy.url}" if proxy.url else "") + ")..."
        )
        try:
            aptproxy.check(proxy, effective_mirror(config) + "/")
        except VmbakeError as exc:
            raise StepError(self.name, exc.message, exc.hint) from None
        result = make_rootfs(
            config, work / "bootstrap", keys, ctx.ui.message, debug=ctx.ui.ui.debug,
            owner=f"build {ctx.name!r}", cancel=ctx.cancel, keep_lists=self.keep_lists,
        )  # fmt: skip
        ctx.state.rootfs_tarball = result.tarball
        ctx.state.kept_apt_lists = self.keep_lists
        if result.cache is not None:
            ctx.ui.message(f"Package cache: {result.cache.summary()}")
        size = result.tarball.stat().st_size / (1 << 20)
        ctx.ui.message(f"Root filesystem ready: {size:.0f} MiB in {format_duration(result.seconds)}")

    def cleanup(self, ctx: BuildContext) -> None:
        tarball = ctx.state.rootfs_tarball
        if tarball is not None:
            tarball.unlink(missing_ok=True)
            ctx.state.rootfs_tarball = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
