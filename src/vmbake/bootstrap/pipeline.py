"""The two halves of a bootstrap, callable without a build: the root filesystem, then the disk.

The build steps (steps/bootstrap_*.py) call these with the build's UI; tests call them directly.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vmbake import arch, procs
from vmbake.bootstrap import cache as debcache
from vmbake.bootstrap.disk import lay_disk, require_root
from vmbake.bootstrap.layout import Planned, plan_layout
from vmbake.bootstrap.rootfs import (
    CacheHooks,
    customize_script,
    mmdebstrap_argv,
    progress_filter,
    run_mmdebstrap,
)
from vmbake.config.bootstrap import BootstrapConfig, effective_mirror

Say = Callable[[str], None]


@dataclass(frozen=True)
class RootfsResult:
    tarball: Path
    seconds: float
    cache: debcache.CacheStats | None


def make_rootfs(
    config: BootstrapConfig,
    work_dir: Path,
    authorized_keys: list[str],
    message: Say,
    *,
    debug: bool = False,
    use_cache: bool = True,
    cache_root: Path | None = None,
    owner: str = "",
    cancel: threading.Event | None = None,
    keep_lists: bool = False,
) -> RootfsResult:
    """mmdebstrap `config.suite` into work_dir/rootfs.tar, with the .deb cache unless `use_cache` is off;
    with `keep_lists`, the package lists stay in the tree (see rootfs.mmdebstrap_argv).

    `owner` names this build to another one that waits for the cache's fill lock (debcache.fill_lock)."""
    require_root()
    started = time.monotonic()
    work_dir.mkdir(parents=True, exist_ok=True)
    hook = work_dir / "customize.sh"
    hook.write_text(customize_script(config, authorized_keys))
    hook.chmod(0o700)
    tarball = work_dir / "rootfs.tar"
    # Every maintainer script of another architecture runs under qemu-user: on a busy 2-core host an
    # arm64 tree took over 25 minutes (mkinitramfs alone several).
    timeout = 1800.0 if config.architecture == arch.host_arch() else 5400.0
    on_line = progress_filter(message, debug)
    if not use_cache:
        run_mmdebstrap(
            mmdebstrap_argv(config, tarball, hook, None, verbose=debug, keep_lists=keep_lists),
            on_line,
            timeout,
        )
        return RootfsResult(tarball, time.monotonic() - started, None)
    cache_dir = debcache.deb_cache_dir(config.suite, effective_mirror(config), cache_root)
    used = work_dir / "debs-used"
    shutil.rmtree(used, ignore_errors=True)
    used.mkdir()
    try:
        with debcache.use_cache(
            cache_dir,
            message,
            architecture=config.architecture,
            owner=owner,
            suite=config.suite,
            cancel=cancel,
        ) as view:
            hooks = CacheHooks(view.snapshot, used)
            run_mmdebstrap(
                mmdebstrap_argv(config, tarball, hook, hooks, verbose=debug, keep_lists=keep_lists),
                on_line,
                timeout,
            )
            stats = debcache.absorb(used, cache_dir, view.before)
    finally:
        shutil.rmtree(used, ignore_errors=True)
    return RootfsResult(tarball, time.monotonic() - started, stats)


def make_disk(
    config: BootstrapConfig,
    tarball: Path,
    output: Path,
    work_dir: Path,
    say: Say,
    *,
    debug: Say | None = None,
) -> Path:
    """The bootable disk at `output` in config.format (qcow2 or raw), laid from `tarball`."""
    raw = output if config.format == "raw" else work_dir / "disk.raw"
    try:
        lay_raw(config, tarball, raw, work_dir, say, debug=debug)
        if config.format != "raw":
            output.parent.mkdir(parents=True, exist_ok=True)
            procs.run(["qemu-img", "convert", "-f", "raw", "-O", config.format, str(raw), str(output)],
                      what="qemu-img convert")  # fmt: skip
    finally:
        if raw != output:
            raw.unlink(missing_ok=True)
    return output


def lay_raw(
    config: BootstrapConfig,
    tarball: Path,
    raw: Path,
    work_dir: Path,
    say: Say,
    *,
    debug: Say | None = None,
) -> list[Planned]:
    """The bootable raw disk `raw`, laid from `tarball`; the partitions it was laid out with."""
    plan = plan_layout(config)
    lay_disk(raw, config.disk_size, plan, tarball, config.firmware, work_dir / "mnt", say, debug,
             architecture=config.architecture)  # fmt: skip
    return plan
