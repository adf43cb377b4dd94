"""Keys of the `checksum`, `manifest` and `compress` post-processors, with Packer 1.6.6's defaults.

`keep_input_artifact`, `only` and `except` are shared by all post-processors and live in the template's
`PostProcessorSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vmbake.config.fields import opt

CHECKSUM_TYPES = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
COMPRESS_FORMATS = ("", "tar.gz", "tgz", "gz", "zip", "lz4", "tar.lz4", "bgzf", "xz", "tar.xz", "tar")


@dataclass(frozen=True)
class ChecksumConfig:
    """A `checksum` post-processor: writes a checksum file of each artifact file."""

    checksum_types: list[str] = opt(
        factory=lambda: ["md5"], doc="Hash types to compute: md5, sha1, sha224, sha256, ..."
    )
    output: str = opt(
        "packer_{{.BuildName}}_{{.BuilderType}}_{{.ChecksumType}}.checksum",
        "Checksum file path; {{.BuildName}}, {{.BuilderType}} and {{.ChecksumType}} are filled in",
        runtime=True,
    )


@dataclass(frozen=True)
class ManifestConfig:
    """A `manifest` post-processor: records each build's artifacts in a JSON file."""

    output: str = opt("packer-manifest.json", "Manifest file path (appended to when it exists)", runtime=True)
    strip_path: bool = opt(False, "Record file names without their directories")
    strip_time: bool = opt(False, "Leave out the build time, for reproducible manifests")
    custom_data: dict[str, Any] = opt(factory=dict, doc="Extra key/value pairs recorded with each build")


@dataclass(frozen=True)
class CompressConfig:
    """A `compress` post-processor: packs the artifact files into one archive."""

    output: str = opt(
        "packer_{{.BuildName}}_{{.BuilderType}}.tar.gz",
        "Archive path; the extension picks the format unless `format` is set",
        runtime=True,
    )
    format: str = opt(
        "", "Archive format; empty means the output's extension decides", choices=COMPRESS_FORMATS
    )
    compression_level: int = opt(
        6, "Compression level from 1 (fast) to 9 (small); -1 is the format's default", minimum=-1, maximum=9
    )
