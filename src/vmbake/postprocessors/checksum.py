"""The `checksum` post-processor: one file per checksum type, one "HEX<TAB>FILENAME" line per artifact file.

As Packer's: lines are appended when the file exists, the file name is the artifact file's base name,
and the input artifacts are always kept. The artifact files are read once, whatever the number of types.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

from vmbake.config.postprocessors import CHECKSUM_TYPES, ChecksumConfig
from vmbake.errors import VmbakeError
from vmbake.postprocessors import CancellableFile, files_of, render_output
from vmbake.state import Artifact, BuildContext

BUILDER_ID = "packer.post-processor.checksum"


def digests(path: Path, types: list[str], cancel: threading.Event) -> dict[str, str]:
    """The hex digests of `path` for each type, reading it once (stopped by `cancel`)."""
    hashers = {t: hashlib.new(t) for t in types}
    with CancellableFile(path, cancel) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            for h in hashers.values():
                h.update(block)
    return {t: h.hexdigest() for t, h in hashers.items()}


def run(ctx: BuildContext, config: Any, artifacts: list[Artifact]) -> tuple[list[Artifact], bool, bool]:
    cfg: ChecksumConfig = config if isinstance(config, ChecksumConfig) else ChecksumConfig()
    types = [t.lower() for t in cfg.checksum_types] or ["md5"]
    unknown = [t for t in types if t not in CHECKSUM_TYPES]
    if unknown:
        raise VmbakeError(
            f"unknown checksum type {unknown[0]!r}", hint=f"checksum_types takes: {', '.join(CHECKSUM_TYPES)}"
        )
    files = files_of(artifacts)
    sums = [(f, digests(f, types, ctx.cancel)) for f in files]
    outputs: list[Path] = []
    for t in types:
        out = render_output(ctx, cfg.output, ChecksumType=t)
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a", encoding="utf-8") as w:
            for f, d in sums:
                w.write(f"{d[t]}\t{f.name}\n")
        if out not in outputs:
            outputs.append(out)
    produced = [Artifact(BUILDER_ID, p, f"Created artifact from files: {p}") for p in outputs]
    return produced, True, True
