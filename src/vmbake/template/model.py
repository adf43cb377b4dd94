"""The typed model of a loaded template: what every other part of vmbake reads.

A JSON template and its HCL2 translation load to the same model. All user variables are already filled
in; only run-time placeholders (`{{ .HTTPIP }}`, `{{ .Path }}`, ...) remain, for `render_runtime`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmbake.errors import Problem, TemplateError


@dataclass(frozen=True)
class Variable:
    """A user variable: `default` is None for a required variable."""

    name: str
    default: Any = None
    required: bool = False
    sensitive: bool = False
    description: str = ""


@dataclass(frozen=True)
class BuildSpec:
    """One build: its name as printed ("==> NAME: ..."), its builder type and decoded configuration."""

    name: str
    type: str
    config: Any  # QemuConfig for "qemu", BootstrapConfig for "debian-bootstrap"
    source_name: str = ""  # HCL2: the source block's name label; JSON: the build name


def _matches(name: str, patterns: tuple[str, ...], aliases: tuple[str, ...] = ()) -> bool:
    candidates = (name, *aliases)
    return any(fnmatch.fnmatchcase(c, p) for p in patterns for c in candidates)


@dataclass(frozen=True)
class ProvisionerSpec:
    """One provisioner with Packer's common keys read out of its block."""

    type: str
    config: Any  # ShellConfig, FileConfig or ShellLocalConfig
    only: tuple[str, ...] = ()
    except_: tuple[str, ...] = ()
    override: dict[str, dict[str, Any]] = field(default_factory=dict)
    pause_before: float = 0.0
    max_retries: int = 0
    timeout: float | None = None
    # How to re-decode for a build: the raw (rendered) block and where it came from.
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    origin: str = field(default="", compare=False, repr=False)  # file and key path, for errors
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)
    per_build: dict[str, dict[str, Any]] = field(
        default_factory=dict, compare=False, repr=False
    )  # HCL2 source.*

    def applies_to(self, build_name: str) -> bool:
        aliases = self.aliases.get(build_name, ())
        if self.only and not _matches(build_name, self.only, aliases):
            return False
        return not (self.except_ and _matches(build_name, self.except_, aliases))

    def config_for(self, build_name: str, build_type: str = "", source_name: str = "") -> Any:
        """The configuration for one build: `override` for it applied, {{ build_name }} filled in."""
        from vmbake.registry import provisioner_class
        from vmbake.template.decode import decode_block

        aliases = self.aliases.get(build_name, ())
        if not source_name:
            source_name = aliases[-1] if aliases else build_name
        names = (build_name, source_name, *aliases)
        patch: dict[str, Any] = {}
        for key in names:
            if key and key in self.override:
                patch = self.override[key]
                break
        raw = self.per_build.get(build_name, self.raw)
        needs_render = "{{" in repr(raw) or "{{" in repr(patch)
        if not patch and not needs_render and build_name not in self.per_build:
            return self.config
        merged = {**raw, **patch}
        file, _, path = self.origin.partition(":")
        problems: list[Problem] = []
        config: Any = decode_block(
            provisioner_class(self.type),
            merged,
            file,
            path,
            problems,
            build=(build_name, build_type, source_name),
        )
        if problems:
            raise TemplateError(problems)
        return config


@dataclass(frozen=True)
class PostProcessorSpec:
    """One post-processor of a chain, with Packer's common keys."""

    type: str
    config: Any  # ChecksumConfig, ManifestConfig or CompressConfig
    only: tuple[str, ...] = ()
    except_: tuple[str, ...] = ()
    keep_input_artifact: bool | None = None
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)

    def applies_to(self, build_name: str) -> bool:
        aliases = self.aliases.get(build_name, ())
        if self.only and not _matches(build_name, self.only, aliases):
            return False
        return not (self.except_ and _matches(build_name, self.except_, aliases))


@dataclass(frozen=True)
class Template:
    """A loaded, checked template."""

    path: Path  # the template file, or the directory of an HCL2 template made of several files
    directory: Path  # {{ template_dir }} / path.root
    format: str  # "json" or "hcl2"
    description: str = ""
    variables: dict[str, Variable] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)  # resolved variable values
    builds: list[BuildSpec] = field(default_factory=list)
    provisioners: list[ProvisionerSpec] = field(default_factory=list)
    error_cleanup_provisioner: ProvisionerSpec | None = None
    post_processors: list[list[PostProcessorSpec]] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    all_builds: list[str] = field(default_factory=list)  # every build name, before -only/-except

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

    def provisioners_for(self, build_name: str) -> list[ProvisionerSpec]:
        return [p for p in self.provisioners if p.applies_to(build_name)]

    def post_processors_for(self, build_name: str) -> list[list[PostProcessorSpec]]:
        chains = [[p for p in chain if p.applies_to(build_name)] for chain in self.post_processors]
        return [c for c in chains if c]

    def replace(self, **changes: Any) -> Template:
        return dataclasses.replace(self, **changes)
