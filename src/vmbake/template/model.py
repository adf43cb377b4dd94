"""The typed model of a loaded template: what every other part of vmbake reads.

A JSON template and its HCL2 translation load to the same model. The loader has already chosen the builds
(-only/-except) and resolved each of them once: its builder config, and the provisioners and
post-processors that apply to it, decoded for it (`override` applied, {{ build_name }} filled in). Only
run-time placeholders (`{{ .HTTPIP }}`, `{{ .Path }}`, ...) remain, for `render_runtime`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmbake.errors import Problem


@dataclass(frozen=True)
class Variable:
    """A user variable: `default` is None for a required variable."""

    name: str
    default: Any = None
    required: bool = False
    sensitive: bool = False
    description: str = ""


@dataclass(frozen=True)
class ProvisionerSpec:
    """One provisioner of one build, with Packer's common keys read out of its block.

    `config` is None only in a template loaded for `inspect`, which decodes nothing."""

    type: str
    config: Any  # ShellConfig, FileConfig or ShellLocalConfig
    pause_before: float = 0.0
    max_retries: int = 0
    timeout: float | None = None


@dataclass(frozen=True)
class PostProcessorSpec:
    """One post-processor of a chain of one build, with Packer's common keys."""

    type: str
    config: Any  # ChecksumConfig, ManifestConfig or CompressConfig; None when loaded for inspect
    keep_input_artifact: bool | None = None


@dataclass(frozen=True)
class BuildSpec:
    """One selected build: its name as printed ("==> NAME: ..."), its builder type, its decoded builder
    configuration and what runs after it.

    A builder type vmbake does not run (virtualbox-iso, amazon-ebs, ...) is kept with `runs` False and
    `config` None: `inspect` lists it, `build` names it and skips it."""

    name: str
    type: str
    config: Any  # QemuConfig for "qemu", BootstrapConfig for "debian-bootstrap"
    source_name: str = ""  # HCL2: the source block's name label; JSON: the build name
    provisioners: tuple[ProvisionerSpec, ...] = ()
    error_cleanup_provisioner: ProvisionerSpec | None = None
    post_processors: tuple[tuple[PostProcessorSpec, ...], ...] = ()
    runs: bool = True


@dataclass(frozen=True)
class Template:
    """A loaded, checked template, holding the selected builds only."""

    path: Path  # the template file, or the directory of an HCL2 template made of several files
    directory: Path  # {{ template_dir }} / path.root
    format: str  # "json" or "hcl2"
    description: str = ""
    variables: dict[str, Variable] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)  # resolved variable values
    builds: list[BuildSpec] = field(default_factory=list)
    # The template's own provisioner types and post-processor chains, in order (JSON `inspect` lists them).
    provisioner_types: list[str] = field(default_factory=list)
    post_processor_types: list[list[str]] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def runnable(self) -> list[BuildSpec]:
        return [b for b in self.builds if b.runs]

    @property
    def skipped(self) -> list[BuildSpec]:
        """Selected builds of a builder type vmbake does not run."""
        return [b for b in self.builds if not b.runs]

    @property
    def sensitive_values(self) -> list[str]:
        """Values never to print (for Ui.add_secret): sensitive variables, then keys marked sensitive
        (ssh_password, vnc_password, ssh_key_passphrase, ...) of every build."""
        from vmbake.config.fields import meta_of

        found = [str(self.values[n]) for n, v in self.variables.items() if v.sensitive and self.values.get(n)]
        for build in self.builds:
            if dataclasses.is_dataclass(build.config):
                for f in dataclasses.fields(build.config):
                    value = getattr(build.config, f.name)
                    if meta_of(f).sensitive and isinstance(value, str) and value and value not in found:
                        found.append(value)
        return found

    def build(self, name: str) -> BuildSpec:
        for spec in self.builds:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def replace(self, **changes: Any) -> Template:
        return dataclasses.replace(self, **changes)
