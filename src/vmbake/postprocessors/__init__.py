"""Post-processors: `checksum`, `manifest`, `compress` and vmbake's `convert`, run in chains after a build, as Packer does.

`run_chains(ctx, chains, artifacts)` is what the build calls. Within a chain each post-processor receives
the previous one's artifacts. The build's own artifacts are kept when the first post-processor of any
chain keeps its input (checksum and manifest always do; compress only with keep_input_artifact: true),
else they are deleted, as Packer deletes them (but for the files a post-processor wrote inside them). The result lists the kept build artifacts first, then the
last artifacts of each chain.

A cancel (Ctrl-C, SIGTERM, SIGHUP) during a post-processor stops every chain. As in Packer, the build's
artifacts are then deleted unless the first post-processor of a chain had already finished and kept them;
what the finished post-processors wrote stays, and the cancelled one leaves no temporary file.
"""

from __future__ import annotations

import contextlib
import shutil
import tarfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from vmbake.errors import BuildCancelled, VmbakeError
from vmbake.provisioners import build_data
from vmbake.state import Artifact, BuildContext
from vmbake.template.gotemplate import fill_build_data, render_runtime


class PostProcessorLike(Protocol):
    """What run_chain needs of vmbake.template.model.PostProcessorSpec."""

    @property
    def type(self) -> str: ...

    @property
    def config(self) -> Any: ...

    @property
    def keep_input_artifact(self) -> bool | None: ...


# A post-processor: (ctx, its config, the input artifacts) -> (output artifacts, keep input, force keep).
Runner = Callable[[BuildContext, Any, list[Artifact]], tuple[list[Artifact], bool, bool]]


def files_of(artifacts: Sequence[Artifact]) -> list[Path]:
    """Every file of the artifacts: a directory artifact stands for the files under it, sorted."""
    files: list[Path] = []
    for artifact in artifacts:
        if artifact.path.is_dir():
            files += sorted(p for p in artifact.path.rglob("*") if p.is_file())
        elif artifact.path.exists():
            files.append(artifact.path)
    return files


class CancellableFile:
    """A file opened for reading whose every read first looks at the build's cancel event.

    Archiving or hashing a disk inside vmbake (compress, vagrant, checksum, manifest) on a worker thread
    (-parallel-builds), where no signal lands, would otherwise go on to its end after a cancel; through
    this file it stops within one block. On the main thread the signal itself interrupts the work."""

    def __init__(self, path: Path, cancel: threading.Event) -> None:
        self._cancel = cancel
        self._file = open(path, "rb")  # noqa: SIM115 (closed by __exit__)

    def _check(self) -> None:
        if self._cancel.is_set():
            raise BuildCancelled()

    def read(self, size: int = -1) -> bytes:
        self._check()
        return self._file.read(size)

    def readinto(self, buffer: Any) -> int:  # hashlib.file_digest reads through this
        self._check()
        return self._file.readinto(buffer)

    def readable(self) -> bool:
        return True

    def __enter__(self) -> CancellableFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.close()


def add_to_tar(
    tar: tarfile.TarFile,
    path: Path,
    name: str,
    cancel: threading.Event,
    member_filter: Callable[[tarfile.TarInfo], tarfile.TarInfo] | None = None,
) -> None:
    """tar.add(path, name, recursive=False, filter=member_filter), a regular file read through
    CancellableFile."""
    info = tar.gettarinfo(str(path), name)
    if member_filter is not None:
        info = member_filter(info)
    if info.isreg():
        with CancellableFile(path, cancel) as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)


def render_output(ctx: BuildContext, template: str, **extra: str) -> Path:
    """A post-processor's `output` with {{.BuildName}}, {{.BuilderType}} (and `extra`) filled in."""
    values = {"BuildName": ctx.name, "BuilderType": ctx.builder_type, **extra}
    return Path(render_runtime(template, values, build_name=ctx.name, build_type=ctx.builder_type))


def _runners() -> dict[str, Runner]:
    from vmbake.postprocessors.artifice import run as artifice
    from vmbake.postprocessors.checksum import run as checksum
    from vmbake.postprocessors.compress import run as compress
    from vmbake.postprocessors.convert import run as convert
    from vmbake.postprocessors.manifest import run as manifest
    from vmbake.postprocessors.shell_local import run as shell_local
    from vmbake.postprocessors.vagrant import run as vagrant

    return {
        "checksum": checksum,
        "manifest": manifest,
        "compress": compress,
        "shell-local": shell_local,
        "artifice": artifice,
        "vagrant": vagrant,
        "convert": convert,
    }


def destroy(artifact: Artifact, spare: Sequence[Artifact] = ()) -> None:
    """Delete the artifact; of a directory, keep the `spare` artifacts inside it (and their directories)."""
    if artifact.path.is_dir():
        top = artifact.path.resolve()
        kept = [s.path.resolve() for s in spare]
        kept = [k for k in kept if k != top and k.is_relative_to(top)]
        if not kept:
            shutil.rmtree(artifact.path, ignore_errors=True)
            return
        for path in sorted(top.rglob("*"), reverse=True):
            if any(path == k or path.is_relative_to(k) or k.is_relative_to(path) for k in kept):
                continue
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()
    else:
        with contextlib.suppress(FileNotFoundError):
            artifact.path.unlink()


def run_chain(
    ctx: BuildContext, chain: Sequence[PostProcessorLike], artifacts: list[Artifact]
) -> list[Artifact]:
    """Run one chain on the build's `artifacts`; its last artifacts. (The build's own artifacts are never
    deleted here: `run_chains` decides that over all chains.)"""
    return _run_chain(ctx, chain, artifacts, lambda: None)


def _run_chain(
    ctx: BuildContext,
    chain: Sequence[PostProcessorLike],
    artifacts: list[Artifact],
    keep_original: Callable[[], None],
) -> list[Artifact]:
    """The chain's last artifacts. `keep_original` is called as soon as the first post-processor has
    finished and keeps the build's artifacts (so that a cancel later in the chain still knows it).

    Intermediate artifacts that a later post-processor does not keep are deleted."""
    runners = _runners()
    prior = artifacts
    for i, spec in enumerate(chain):
        if ctx.cancel.is_set():  # a build on a worker thread learns of a cancel here, between two
            raise BuildCancelled()
        runner = runners.get(spec.type)
        if runner is None:
            raise VmbakeError(
                f"post-processor {spec.type!r} is not supported by vmbake",
                hint="use " + ", ".join(runners) + ", or remove it from the template",
            )
        ctx.ui.say(f"Running post-processor: {spec.type}")
        try:
            config = fill_build_data(spec.config, build_data(ctx))
            produced, default_keep, force = runner(ctx, config, prior)
        except VmbakeError as exc:
            raise VmbakeError(f"post-processor {spec.type} failed: {exc}", exc.hint) from None
        except OSError as exc:
            raise VmbakeError(f"post-processor {spec.type} failed: {exc}") from None
        keep = default_keep
        if spec.keep_input_artifact is not None and not (force and default_keep):
            keep = spec.keep_input_artifact
        if i == 0:
            if keep:
                keep_original()
        elif not keep:
            for artifact in prior:
                if artifact not in produced:
                    destroy(artifact, produced)
        prior = produced
    return prior


def run_chains(
    ctx: BuildContext, chains: Sequence[Sequence[PostProcessorLike]], artifacts: list[Artifact]
) -> list[Artifact]:
    """Run every chain on the build's artifacts; the artifacts to list at the end of the build."""
    if not chains:
        return list(artifacts)
    results: list[Artifact] = []
    kept: list[bool] = []
    try:
        for chain in chains:
            produced = _run_chain(ctx, chain, artifacts, lambda: kept.append(True))
            results += [a for a in produced if a not in results]
    except (BuildCancelled, KeyboardInterrupt):
        if not kept:
            for artifact in artifacts:
                ctx.ui.say(f"Deleting original artifact for build '{ctx.name}': {artifact.path}")
                destroy(artifact, results)
        raise
    if kept:
        return list(artifacts) + [a for a in results if a not in artifacts]
    for artifact in artifacts:
        ctx.ui.say(f"Deleting original artifact for build '{ctx.name}': {artifact.path}")
        destroy(artifact, results)
    return [a for a in results if a not in artifacts]
