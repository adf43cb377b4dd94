"""`vmbake matrix TEMPLATE...`: the selected builds as JSON, one entry per CI job.

Each entry holds what a job needs to run one build and find its result: a name for the job and its
artifact, the template as given, the build
name (`vmbake build -only=BUILD TEMPLATE` selects it alone), the builder type, the guest architecture and
the output directory. Each template is loaded and checked as `build` would load it, with the same
-only/-except/-var flags, so a broken template fails the job that makes the matrix, before any runner
starts. Builds of builder types vmbake does not run are left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from vmbake import arch
from vmbake.config.bootstrap import BootstrapConfig
from vmbake.config.qemu import MachineConfig
from vmbake.template import load_template
from vmbake.template.model import Template


def architecture_of(config: object) -> str:
    """The guest's Debian architecture: debian-bootstrap's `architecture`, else from `qemu_binary`."""
    if isinstance(config, BootstrapConfig):
        return config.architecture
    if isinstance(config, MachineConfig):
        found = arch.of_binary(config.qemu_binary)
        return found.name if found is not None else config.qemu_binary.rsplit("-", 1)[-1]
    return arch.host_arch()  # the null builder: the machine it runs on


@dataclass(frozen=True)
class MatrixEntry:
    name: str  # the template's directory and the build, for job and artifact names: "trixie-bootstrap"
    template: str
    build: str
    type: str
    architecture: str
    output_directory: str


def entries(template_arg: str, template: Template) -> list[MatrixEntry]:
    """The runnable builds of a loaded template, as matrix entries naming it as `template_arg`."""
    return [
        MatrixEntry(
            _slug(f"{template.directory.resolve().name}-{build.source_name or build.name}"),
            template_arg,
            build.name,
            build.type,
            architecture_of(build.config),
            str(build.config.output_directory),
        )
        for build in template.runnable
    ]


def _slug(text: str) -> str:
    """Letters, digits, '.', '_' and '-' only: a name every CI system takes for a job or an artifact."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def build_matrix(
    templates: Sequence[str],
    *,
    vars: Mapping[str, str] | None = None,
    var_files: Sequence[Path] = (),
    only: Sequence[str] = (),
    except_: Sequence[str] = (),
) -> list[MatrixEntry]:
    """Every selected build of every template, in the order given."""
    out: list[MatrixEntry] = []
    for arg in templates:
        template = load_template(arg, vars=vars, var_files=var_files, only=only, except_=except_)
        out += entries(arg, template)
    return out


def render(matrix: Sequence[MatrixEntry]) -> str:
    """One line of JSON (a CI system reads it from a step output such as GITHUB_OUTPUT)."""
    return json.dumps([asdict(e) for e in matrix], separators=(",", ":"))
