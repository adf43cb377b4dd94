"""The part of loading shared by JSON and HCL2: gathered blocks to the model, in Packer's order.

The loaders hand over every build, provisioner and post-processor block with a way to produce its body
(variables filled in) for one build. `Assembler.resolve` then does what Packer does: it reads the common
keys of every block and checks `only`/`except` the way the template's format does, applies
-only/-except, and only then decodes and checks, once per selected build, the builder config and the
provisioners and post-processors that apply to it. A block that only excluded builds use is never
decoded, and neither is a builder of a type vmbake does not run.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vmbake import arch, registry
from vmbake.config.bootstrap import BootstrapConfig, with_arch_defaults, with_stage_defaults
from vmbake.config.fields import Decoder, measure, suggest
from vmbake.config.qemu import MachineConfig
from vmbake.errors import Problem
from vmbake.template.model import BuildSpec, PostProcessorSpec, ProvisionerSpec
from vmbake.template.validate import check_builder, check_post_processor, check_provisioner

PROVISIONER_COMMON = frozenset(
    {"type", "only", "except", "override", "pause_before", "max_retries", "timeout"}
)
POST_PROCESSOR_COMMON = frozenset({"type", "only", "except", "keep_input_artifact", "name"})


@dataclass(frozen=True)
class Target:
    """A build as the blocks bound to it see it."""

    name: str  # "qemu.deb", "installer"
    type: str
    source_name: str  # HCL2: the source's name label; JSON: the build name
    # JSON: the name as written ("{{user `n`}}"): a block's only/except/override match it, where
    # -only/-except and {{build_name}} see the name filled in (Packer's core.go, Core.Build: rawName).
    raw_name: str = ""


@dataclass
class GatheredBuild:
    target: Target
    path: str  # key path of the builder block, for errors
    file: str
    body: Callable[[], dict[str, Any]]  # its keys, variables filled in; called only if it is selected
    aliases: tuple[str, ...] = ()  # more names -only/-except match
    type_path: str = ""


# body(target, override) -> the block's own keys for that build, override merged in, variables filled in.
BlockBody = Callable[[Target, dict[str, Any]], dict[str, Any]]


@dataclass
class GatheredBlock:
    """A provisioner or post-processor block with its common keys read."""

    type: str
    path: str
    file: str
    body: BlockBody
    only: tuple[str, ...] = ()
    except_: tuple[str, ...] = ()
    scope: tuple[str, ...] | None = None  # HCL2: the builds of its build block; None: every build
    override: dict[str, dict[str, Any]] = field(default_factory=dict)
    pause_before: float = 0.0
    max_retries: int = 0
    timeout: float | None = None
    keep_input_artifact: bool | None = None
    name: str = ""  # a post-processor's name (its type unless set): -except may name it
    type_path: str = ""  # where its type is written, for an unknown type


@dataclass
class Assembler:
    """Collects blocks and problems (with file and line) while a loader reads a template."""

    file: str
    locate: Callable[[str], int | None] = field(default=lambda _p: None)
    format: str = "json"  # "json" or "hcl2": how only/except/override name a build
    check: bool = True  # False for `inspect`: the template only has to parse, nothing is decoded
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    builds: list[GatheredBuild] = field(default_factory=list)
    provisioners: list[GatheredBlock] = field(default_factory=list)
    cleanups: list[GatheredBlock] = field(default_factory=list)  # HCL2: one per build block at most
    chains: list[list[GatheredBlock]] = field(default_factory=list)

    def problem(self, path: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.file, path, message, hint, self.locate(path)))

    def _problem_in(self, file: str, path: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(file, path, message, hint, self.locate(path)))

    # -- gathering ---------------------------------------------------------------------------------
    def add_build(
        self,
        target: Target,
        path: str,
        body: Callable[[], dict[str, Any]],
        *,
        aliases: tuple[str, ...] = (),
        type_path: str = "",
    ) -> None:
        if registry.builder_class(target.type) is None:
            close = suggest(target.type, registry.builder_types())
            if close:  # a slip of the pen, not another hypervisor's builder
                self.problem(
                    type_path or f"{path}.type",
                    f"unknown builder type {target.type!r}",
                    close + " supported: " + ", ".join(registry.builder_types()),
                )
                return
        if any(b.target.name == target.name for b in self.builds):
            self.problem(path, f"duplicate build name {target.name!r}", 'give each builder a distinct "name"')
            return
        self.builds.append(GatheredBuild(target, path, self.file, body, aliases, type_path))

    def build_names(self) -> list[str]:
        return [b.target.name for b in self.builds]

    def _bound_names(self) -> list[str]:
        return [self._bound_name(b.target) for b in self.builds]

    def _names(self, raw: Any, path: str) -> tuple[str, ...]:
        if raw is None:
            return ()
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            self.problem(path, "expected a list of build names", 'for example ["qemu"]')
            return ()
        if self.format == "json" and self.check:
            # Packer's template.OnlyExcept.Validate: each name is a builder's exact name.
            for i, name in enumerate(raw):
                if name not in self._bound_names():
                    self.problem(
                        f"{path}[{i}]",
                        f"no build named {name!r}",
                        "builds: " + ", ".join(self._bound_names()),
                    )
        return tuple(raw)

    def _only_except(self, raw: dict[str, Any], path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        only = self._names(raw.get("only"), f"{path}.only")
        except_ = self._names(raw.get("except"), f"{path}.except")
        if only and except_ and self.check:
            self.problem(
                f"{path}.except", "only one of 'only' or 'except' may be specified", "remove one of them"
            )
        return only, except_

    def _duration(self, raw: Any, path: str) -> float | None:
        """pause_before or timeout in seconds. A JSON number is nanoseconds, as mapstructure decodes it
        into a time.Duration (Packer 1.6.6 template/parse.go); HCL2 reads the key as a string, so there
        a bare number has no unit and is refused, as by time.ParseDuration."""
        if raw is None or raw == "":
            return None
        try:
            if isinstance(raw, int | float) and not isinstance(raw, bool) and self.format == "json":
                return float(measure("duration", f"{int(raw)}ns"))
            return float(measure("duration", str(raw)))
        except ValueError as exc:
            self.problem(path, str(exc), "use a duration such as 10s or 1m30s")
            return None

    def provisioner(
        self,
        common: dict[str, Any],
        path: str,
        body: BlockBody,
        *,
        type_name: str | None = None,
        scope: tuple[str, ...] | None = None,
    ) -> GatheredBlock | None:
        """Read a provisioner block's common keys (`common` holds them, variables filled in)."""
        kind = type_name if type_name is not None else common.get("type")
        if not isinstance(kind, str) or not kind:
            self.problem(
                path, 'a provisioner needs a "type"', "supported: " + ", ".join(registry.PROVISIONERS)
            )
            return None
        only, except_ = self._only_except(common, path)
        override: dict[str, dict[str, Any]] = {}
        raw_override = common.get("override", {})
        if not isinstance(raw_override, dict):
            self.problem(f"{path}.override", "expected a map of build name to keys", "")
        else:
            for name, keys in raw_override.items():
                if not isinstance(keys, dict):
                    self.problem(f"{path}.override.{name}", "expected a map of keys", "")
                    continue
                if self.format == "json" and self.check and name not in self._bound_names():
                    # Packer's template.Validate; HCL2 does not check the names of an override.
                    self.problem(
                        f"{path}.override.{name}",
                        f"no build named {name!r}",
                        "builds: " + ", ".join(self._bound_names()),
                    )
                override[name] = keys
        max_retries = common.get("max_retries", 0)
        if isinstance(max_retries, str) and max_retries.strip().isdigit():
            max_retries = int(max_retries)
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            self.problem(f"{path}.max_retries", "expected a whole number of retries", "for example 3")
            max_retries = 0
        return GatheredBlock(
            kind,
            path,
            self.file,
            body,
            only,
            except_,
            scope,
            override,
            pause_before=self._duration(common.get("pause_before"), f"{path}.pause_before") or 0.0,
            max_retries=max_retries,
            timeout=self._duration(common.get("timeout"), f"{path}.timeout"),
            type_path=f"{path}.type" if type_name is None else path,
        )

    def post_processor(
        self,
        common: Any,
        path: str,
        body: BlockBody,
        *,
        type_name: str | None = None,
        scope: tuple[str, ...] | None = None,
    ) -> GatheredBlock | None:
        if isinstance(common, str):
            common = {"type": common}
        if not isinstance(common, dict):
            self.problem(
                path, "a post-processor is a type name or an object", 'for example {"type": "checksum"}'
            )
            return None
        kind = type_name if type_name is not None else common.get("type")
        if not isinstance(kind, str) or not kind:
            self.problem(
                path, 'a post-processor needs a "type"', "supported: " + ", ".join(registry.POST_PROCESSORS)
            )
            return None
        only, except_ = self._only_except(common, path)
        keep = common.get("keep_input_artifact")
        if keep is not None and not isinstance(keep, bool):
            if isinstance(keep, str) and keep.lower() in ("true", "false"):
                keep = keep.lower() == "true"
            else:
                self.problem(f"{path}.keep_input_artifact", "expected a boolean (true or false)", "")
                keep = None
        name = common.get("name")
        return GatheredBlock(
            kind,
            path,
            self.file,
            body,
            only,
            except_,
            scope,
            keep_input_artifact=keep,
            name=name if isinstance(name, str) and name else kind,
            type_path=f"{path}.type" if type_name is None else path,
        )

    # -- selection ---------------------------------------------------------------------------------
    def _bound_name(self, target: Target) -> str:
        """The name a block's only/except and override see: Packer matches them exactly, against the
        build's name in JSON and against TYPE.NAME of the source in HCL2 (never the bare NAME)."""
        if self.format == "json":
            return target.raw_name or target.name
        return f"{target.type}.{target.source_name}"

    def _applies(self, block: GatheredBlock, target: Target) -> bool:
        if block.scope is not None and target.name not in block.scope:
            return False
        name = self._bound_name(target)
        if block.only:
            return name in block.only
        return name not in block.except_

    def _override(self, block: GatheredBlock, target: Target) -> dict[str, Any]:
        key = self._bound_name(target) if self.format == "json" else target.source_name
        return block.override.get(key, {})

    def _select(self, only: Sequence[str], except_: Sequence[str]) -> list[GatheredBuild]:
        def names(build: GatheredBuild) -> tuple[str, ...]:
            t = build.target
            return (t.name, f"{t.type}.{t.name}", *build.aliases)

        def hit(build: GatheredBuild, pattern: str) -> bool:
            return any(fnmatch.fnmatchcase(n, pattern) for n in names(build))

        chosen = [
            b
            for b in self.builds
            if (not only or any(hit(b, p) for p in only)) and not any(hit(b, p) for p in except_)
        ]
        post_names = {block.name for chain in self.chains for block in chain}
        for flag, patterns in (("-only", only), ("-except", except_)):
            for pattern in patterns:
                if not any(hit(b, pattern) for b in self.builds) and not (
                    flag == "-except" and any(self._pp_hit(n, pattern) for n in post_names)
                ):
                    self.warnings.append(
                        Problem(
                            self.file,
                            flag,
                            f"{flag}={pattern} matches no build",
                            "builds in this template: " + ", ".join(self.build_names()),
                        )
                    )
        # Nothing left is not a template error (Packer's validate accepts it); `build` refuses to run nothing.
        return chosen

    def _pp_hit(self, name: str, pattern: str) -> bool:
        """-except also names post-processors: exactly in JSON (core.go), as a glob in HCL2."""
        return name == pattern if self.format == "json" else fnmatch.fnmatchcase(name, pattern)

    # -- resolving ---------------------------------------------------------------------------------
    def resolve(self, only: Sequence[str], except_: Sequence[str]) -> list[BuildSpec]:
        """The selected builds, each with its own decoded config, provisioners and post-processors.

        With `check` False (`inspect`) nothing is decoded: the specs carry types and names only."""
        check = self.check
        chosen = self._select(only, except_)
        runnable = [b for b in chosen if registry.builder_class(b.target.type) is not None]
        if check and chosen and not runnable:
            first = chosen[0]
            foreign = ", ".join(f"{b.target.name} ({b.target.type})" for b in chosen)
            others = len(self.builds) > len(chosen)
            self._problem_in(
                first.file,
                first.type_path or f"{first.path}.type",
                f"vmbake runs none of the selected builds: {foreign}",
                "vmbake runs the builder types "
                + ", ".join(registry.builder_types())
                + ("; select such a build with -only" if others else ""),
            )
        specs: list[BuildSpec] = []
        for build in chosen:
            t = build.target
            runs = registry.builder_class(t.type) is not None
            if not runs and check:
                # Its keys are not checked, and nothing bound to it is decoded: vmbake will not run it.
                specs.append(BuildSpec(t.name, t.type, None, t.source_name, runs=False))
                continue
            provisioners = tuple(
                p for block in self.provisioners if self._applies(block, t)
                if (p := self._provisioner(block, t, check)) is not None
            )  # fmt: skip
            cleanup = next(
                (self._provisioner(c, t, check) for c in self.cleanups if self._applies(c, t)), None
            )
            config = self._builder(build, check)
            if getattr(config, "communicator", "") == "none":
                blocks = [b for b in [*self.provisioners, *self.cleanups] if self._applies(b, t)]
                self._no_guest(blocks, t.name)
            if isinstance(config, BootstrapConfig) and config.provision_stage == "tree":
                blocks = [b for b in [*self.provisioners, *self.cleanups] if self._applies(b, t)]
                self._no_ssh_in_tree(blocks, t.name)
            specs.append(
                BuildSpec(
                    t.name,
                    t.type,
                    config,
                    t.source_name,
                    provisioners,
                    cleanup,
                    self._chains(t, except_, check),
                    runs,
                )
            )
        self.problems[:] = list(dict.fromkeys(self.problems))  # a block shared by builds: report once
        self.warnings[:] = list(dict.fromkeys(self.warnings))
        return specs

    def _decoder(self, file: str) -> Decoder:
        return Decoder(file, self.locate)

    def _flush(self, decoder: Decoder) -> None:
        self.problems.extend(decoder.problems)
        self.warnings.extend(decoder.warnings)

    def _builder(self, build: GatheredBuild, check: bool) -> Any:
        if not check:
            return None
        cls = registry.builder_class(build.target.type)
        assert cls is not None  # resolve() keeps other types aside
        decoder = self._decoder(build.file)
        body = build.body()
        config: Any = decoder.decode(cls, body, build.path, ignore=frozenset({"type", "name"}))
        # aarch64's machine and firmware (debian-bootstrap: also its kernel and console) for the keys not given
        given = {key for key, value in body.items() if value is not None}
        if isinstance(config, BootstrapConfig):
            config = with_stage_defaults(with_arch_defaults(config, given), given)
        elif isinstance(config, MachineConfig):
            config = arch.machine_defaults(config, given)
        check_builder(build.target.type, config, decoder, build.path)
        self._flush(decoder)
        return config

    def _no_guest(self, blocks: Sequence[GatheredBlock], build: str) -> None:
        """A build with communicator "none" has no guest to run shell or file provisioners in."""
        for block in blocks:
            if block.type in registry.NEEDS_GUEST:
                self._problem_in(
                    block.file,
                    block.type_path or f"{block.path}.type",
                    f'the {block.type} provisioner needs a guest, but build {build!r} has communicator "none"',
                    'set the build\'s communicator to "ssh", or bind the provisioner to other builds with '
                    'only/except (with "none" only shell-local and breakpoint run)',
                )

    def _no_ssh_in_tree(self, blocks: Sequence[GatheredBlock], build: str) -> None:
        """provision_stage "tree" runs the provisioners in a chroot before the first boot: there is no SSH
        server yet for the ansible provisioner's ansible-playbook on the host to log in to."""
        for block in blocks:
            if block.type == "ansible":
                self._problem_in(
                    block.file,
                    block.type_path or f"{block.path}.type",
                    f"the ansible provisioner logs in to the guest over SSH, but build {build!r} provisions "
                    'in a chroot before the first boot (provision_stage "tree")',
                    'set provision_stage = "vm"; or use ansible-local, which runs in the chroot once the '
                    'builder\'s "include" has ansible-core',
                )

    def _provisioner(self, block: GatheredBlock, target: Target, check: bool) -> ProvisionerSpec | None:
        spec = ProvisionerSpec(block.type, None, block.pause_before, block.max_retries, block.timeout)
        if not check:
            return spec
        cls = registry.PROVISIONERS.get(block.type)
        if cls is None:
            hint = suggest(block.type, list(registry.PROVISIONERS))
            self._problem_in(
                block.file,
                block.type_path,
                f"unknown provisioner type {block.type!r}",
                (hint + " " if hint else "") + "supported: " + ", ".join(registry.PROVISIONERS),
            )
            return None
        decoder = self._decoder(block.file)
        config: Any = decoder.decode(cls, block.body(target, self._override(block, target)), block.path)
        check_provisioner(config, decoder, block.path)
        self._flush(decoder)
        return ProvisionerSpec(block.type, config, block.pause_before, block.max_retries, block.timeout)

    def _chains(
        self, target: Target, except_: Sequence[str], check: bool
    ) -> tuple[tuple[PostProcessorSpec, ...], ...]:
        chains: list[tuple[PostProcessorSpec, ...]] = []
        for chain in self.chains:
            current: list[PostProcessorSpec] = []
            for block in chain:
                if not self._applies(block, target):
                    continue
                if any(self._pp_hit(block.name, p) for p in except_):
                    break  # as Packer: -except naming a post-processor drops it and the rest of its chain
                spec = self._post_processor(block, target, check)
                if spec is not None:
                    current.append(spec)
            if current:
                chains.append(tuple(current))
        return tuple(chains)

    def _post_processor(self, block: GatheredBlock, target: Target, check: bool) -> PostProcessorSpec | None:
        if not check:
            return PostProcessorSpec(block.type, None, block.keep_input_artifact)
        cls = registry.POST_PROCESSORS.get(block.type)
        reason = registry.NOT_RUN_POST_PROCESSORS.get(block.type)
        if reason is not None:
            self._problem_in(
                block.file,
                block.type_path,
                f"post-processor {block.type!r} is not supported: {reason}",
                f"skip it with -except={block.name or block.type}, or remove it from the template",
            )
            return None
        if cls is None:
            hint = suggest(block.type, list(registry.POST_PROCESSORS))
            self._problem_in(
                block.file,
                block.type_path,
                f"unknown post-processor type {block.type!r}",
                (hint + " " if hint else "") + "supported: " + ", ".join(registry.POST_PROCESSORS),
            )
            return None
        decoder = self._decoder(block.file)
        config: Any = decoder.decode(cls, block.body(target, {}), block.path)
        check_post_processor(config, decoder, block.path)
        self._flush(decoder)
        return PostProcessorSpec(block.type, config, block.keep_input_artifact)
