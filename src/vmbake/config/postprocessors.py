"""Keys of the `checksum`, `manifest` and `compress` post-processors, with Packer 1.6.6's defaults, and of
vmbake's own `convert`.

`keep_input_artifact`, `only` and `except` are shared by all post-processors and live in the template's
`PostProcessorSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vmbake.config.fields import opt
from vmbake.config.provisioners import ShellLocalConfig

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


@dataclass(frozen=True)
class ShellLocalPostConfig(ShellLocalConfig):
    """A `shell-local` post-processor: runs a command on the host after the build; the artifact passes
    through unchanged (use `artifice` to make the command's files the artifact)."""


@dataclass(frozen=True)
class ArtificeConfig:
    """An `artifice` post-processor: the listed files become the build's artifact."""

    files: list[str] = opt(
        factory=list, doc="Paths of the files that make the new artifact (each must exist; no globs)"
    )


VAGRANT_PROVIDERS = ("libvirt",)


def unsupported_provider(provider: str) -> str:
    """Why vmbake makes no box for `provider` (an empty string for libvirt)."""
    if provider in VAGRANT_PROVIDERS:
        return ""
    return (
        f"vmbake makes Vagrant boxes for the libvirt provider only, not {provider}: a {provider} box holds "
        "that platform's own disk and machine files, which a QEMU build does not make"
    )


@dataclass(frozen=True)
class VagrantConfig:
    """A `vagrant` post-processor: packs a qcow2 artifact into a Vagrant box for the libvirt provider."""

    output: str = opt(
        "packer_{{.BuildName}}_{{.Provider}}.box",
        "Box path; {{.BuildName}}, {{.BuilderType}}, {{.Provider}} and {{.ArtifactId}} are filled in",
        runtime=True,
    )
    compression_level: int = opt(
        6, "gzip level of the box, 0 (none) to 9 (small); -1 is gzip's default (6)", minimum=-1, maximum=9
    )
    include: list[str] = opt(factory=list, doc="Extra files put at the top of the box")
    vagrantfile_template: str = opt("", "File whose text is added to the box's Vagrantfile")
    vagrantfile_template_generated: bool = opt(
        False, "The Vagrantfile template is made during the build: do not check it at validate time"
    )
    provider_override: str = opt(
        "", "Make a box for this provider whatever the artifact (only libvirt is supported)"
    )
    override: dict[str, Any] = opt(
        factory=dict, doc="Keys per provider name, used when the box is for that provider"
    )
    architecture: str = opt("", "Box architecture (Vagrant 2.4+ metadata)", supported=False)


# What `convert` makes: qemu-img formats, plus an OVA (an OVF descriptor and a streamOptimized vmdk in a tar).
CONVERT_FORMATS = ("qcow2", "raw", "vmdk", "vhdx", "vpc", "ova")


@dataclass(frozen=True)
class ConvertConfig:
    """A `convert` post-processor (vmbake's own): writes the build's disks in other formats with qemu-img.

    The input is kept unless keep_input_artifact is false; the outputs go on to the rest of the chain."""

    formats: list[str] = opt(
        factory=lambda: ["qcow2"],
        doc="Formats to write: qcow2, raw, vmdk (streamOptimized), vhdx (dynamic), vpc (fixed VHD, size "
        "rounded up to 1 MiB for Azure) and ova (OVF 1.0 descriptor, manifest and vmdk in a tar)",
        vmbake=True,
    )
    output_directory: str = opt(
        "",
        "Directory of the converted files; empty: beside each disk. {{.BuildName}} and {{.BuilderType}} "
        "are filled in",
        runtime=True,
        vmbake=True,
    )
