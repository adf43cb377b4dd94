"""What each `type` in a template means: builder, provisioner and post-processor config classes.

Also finds shipped templates: a bare name such as `bookworm` is a directory of the `templates` folder.
"""

from __future__ import annotations

from pathlib import Path

from vmbake.config.ansible import AnsibleConfig, AnsibleLocalConfig
from vmbake.config.bootstrap import BootstrapConfig
from vmbake.config.null import NullConfig
from vmbake.config.postprocessors import (
    ArtificeConfig,
    ChecksumConfig,
    CompressConfig,
    ConvertConfig,
    ManifestConfig,
    ShellLocalPostConfig,
    VagrantConfig,
)
from vmbake.config.provisioners import BreakpointConfig, FileConfig, ShellConfig, ShellLocalConfig
from vmbake.config.qemu import QemuConfig

BUILDERS: dict[str, type] = {
    "qemu": QemuConfig,
    "debian-bootstrap": BootstrapConfig,
    "null": NullConfig,
}

PROVISIONERS: dict[str, type] = {
    "shell": ShellConfig,
    "file": FileConfig,
    "shell-local": ShellLocalConfig,
    "breakpoint": BreakpointConfig,
    "ansible": AnsibleConfig,
    "ansible-local": AnsibleLocalConfig,
}

# Provisioners that work through the build's communicator: a build with communicator "none" cannot run them.
NEEDS_GUEST = frozenset({"shell", "file", "ansible", "ansible-local"})

POST_PROCESSORS: dict[str, type] = {
    "checksum": ChecksumConfig,
    "manifest": ManifestConfig,
    "compress": CompressConfig,
    "shell-local": ShellLocalPostConfig,
    "artifice": ArtificeConfig,
    "vagrant": VagrantConfig,
    "convert": ConvertConfig,
}

# Post-processors of Packer's plugins that vmbake names rather than runs, with the reason.
NOT_RUN_POST_PROCESSORS = {
    "vagrant-cloud": "it uploads the box to HashiCorp's Vagrant Cloud (HCP), which needs the network and an "
    "account; vmbake does not upload",
    "vagrant-registry": "it uploads the box to HCP Vagrant Registry, which needs the network and an "
    "account; vmbake does not upload",
}


def builder_types() -> list[str]:
    """The builder types vmbake runs."""
    return list(BUILDERS)


def builder_class(type_name: str) -> type | None:
    """The config class of a builder type, or None when vmbake does not run that type."""
    return BUILDERS.get(type_name)


def provisioner_class(type_name: str) -> type:
    return PROVISIONERS[type_name]


def post_processor_class(type_name: str) -> type:
    return POST_PROCESSORS[type_name]


def templates_dirs() -> list[Path]:
    """Where shipped templates live: inside the installed package, or at the top of a source checkout."""
    here = Path(__file__).resolve().parent
    return [here / "templates", here.parents[1] / "templates"]


def shipped_templates() -> list[str]:
    names: set[str] = set()
    for base in templates_dirs():
        if base.is_dir():
            names.update(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    return sorted(names)


def find_shipped(name: str) -> Path | None:
    """The directory of the shipped template `name`, or None."""
    if not name or "/" in name or name.startswith("."):
        return None
    for base in templates_dirs():
        candidate = base / name
        if candidate.is_dir():
            return candidate
    return None
