"""The `manifest` post-processor: a JSON record of each build's files, appended to as builds finish.

Packer's fields (builds[].name, builder_type, build_time, files[].name/size, artifact_id, packer_run_uuid,
custom_data, and last_run_uuid), plus vmbake's: each file's sha256 and the seconds spent in each step
(`step_times`). The file is rewritten atomically, under a lock, so parallel builds can share it.
A sensitive value, or one built on it, is written as <sensitive> (Packer writes custom_data in clear).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from vmbake.config.postprocessors import ManifestConfig
from vmbake.errors import VmbakeError
from vmbake.locks import FileLock
from vmbake.placeholders import RUN_UUID
from vmbake.postprocessors import CancellableFile, files_of, render_output
from vmbake.state import Artifact, BuildContext
from vmbake.ui import mask_logged_secrets

_IDS = {"packer.post-processor.compress": "COMPRESS", "packer.post-processor.checksum": ""}


def _shown(path: Path, strip: bool) -> str:
    if strip:
        return path.name
    try:
        return (
            os.path.relpath(path)
            if path.is_absolute() and path.resolve().is_relative_to(Path.cwd())
            else str(path)
        )
    except ValueError:
        return str(path)


def entry(ctx: BuildContext, cfg: ManifestConfig, artifacts: list[Artifact]) -> dict[str, Any]:
    """The manifest record of one build."""
    files = []
    for f in files_of(artifacts):
        with CancellableFile(f, ctx.cancel) as fh:
            sha = hashlib.file_digest(fh, "sha256").hexdigest()
        files.append({"name": _shown(f, cfg.strip_path), "size": f.stat().st_size, "sha256": sha})
    record: dict[str, Any] = {"name": ctx.name, "builder_type": ctx.builder_type}
    if not cfg.strip_time:
        record["build_time"] = int(time.time())
    record["files"] = files
    record["artifact_id"] = _IDS.get(artifacts[0].builder_id, "VM") if artifacts else ""
    record["packer_run_uuid"] = RUN_UUID
    record["custom_data"] = _masked(dict(cfg.custom_data)) or None
    record["step_times"] = [{"step": name, "seconds": round(sec, 3)} for name, sec in ctx.state.step_times]
    return record


def _masked(value: Any) -> Any:
    """`value` with every registered secret in its strings (keys included) replaced by <sensitive>."""
    if isinstance(value, str):
        return mask_logged_secrets(value)
    if isinstance(value, dict):
        return {_masked(k): _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def run(ctx: BuildContext, config: Any, artifacts: list[Artifact]) -> tuple[list[Artifact], bool, bool]:
    cfg: ManifestConfig = config if isinstance(config, ManifestConfig) else ManifestConfig()
    out = render_output(ctx, cfg.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = entry(ctx, cfg, artifacts)
    with FileLock(out.with_name(out.name + ".lock")):
        manifest: dict[str, Any] = {"builds": [], "last_run_uuid": ""}
        if out.exists() and out.stat().st_size:
            try:
                manifest = json.loads(out.read_text(encoding="utf-8"))
                if not isinstance(manifest, dict) or not isinstance(manifest.get("builds", []), list):
                    raise ValueError("not a manifest")
            except ValueError as exc:
                raise VmbakeError(
                    f"cannot add to the manifest {out}: {exc}",
                    hint="remove the file or choose another output",
                ) from None
        manifest.setdefault("builds", []).append(record)
        manifest["last_run_uuid"] = RUN_UUID
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, out)
    return artifacts, True, True
