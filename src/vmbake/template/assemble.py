"""The part of loading shared by JSON and HCL2: raw blocks (variables already filled in) to the model.

Each loader hands over builds, provisioners and post-processor chains as plain mappings with their key
paths; this module looks their types up, reads the common keys, decodes, runs the cross-key checks and
applies -only/-except.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vmbake import registry
from vmbake.config.fields import Decoder, suggest
from vmbake.errors import Problem
from vmbake.template.decode import decode_block
from vmbake.template.model import BuildSpec, PostProcessorSpec, ProvisionerSpec
from vmbake.template.validate import check_builder, check_post_processor, check_provisioner
from vmbake.units import parse_duration

PROVISIONER_COMMON = frozenset(
    {"type", "only", "except", "override", "pause_before", "max_retries", "timeout"}
)
POST_PROCESSOR_COMMON = frozenset({"type", "only", "except", "keep_input_artifact", "name"})


@dataclass
class Assembler:
    """Collects problems (with file and line) while turning raw blocks into specs."""

    file: str
    locate: Callable[[str], int | None] = field(default=lambda _p: None)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    builds: list[BuildSpec] = field(default_factory=list)
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)  # build name -> other names for it

    def problem(self, path: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.file, path, message, hint, self.locate(path)))

    def _decoder(self) -> Decoder:
        return Decoder(self.file, self.locate)

    def _flush(self, decoder: Decoder) -> None:
        self.problems.extend(decoder.problems)
        self.warnings.extend(decoder.warnings)

    # -- builds ------------------------------------------------------------------------------------
    def add_build(
        self,
        name: str,
        type_name: str,
        raw: dict[str, Any],
        path: str,
        *,
        source_name: str = "",
        aliases: tuple[str, ...] = (),
        type_path: str = "",
    ) -> None:
        cls = registry.builder_class(type_name)
        if cls is None:
            hint = suggest(type_name, registry.builder_types())
            self.problem(
                type_path or f"{path}.type",
                f"unknown builder type {type_name!r}",
                (hint + " " if hint else "") + "supported: " + ", ".join(registry.builder_types()),
            )
            return
        if any(b.name == name for b in self.builds):
            self.problem(path, f"duplicate build name {name!r}", 'give each builder a distinct "name"')
            return
        decoder = self._decoder()
        raw = _fix_legacy_checksum(raw, path, decoder)
        config: Any = decoder.decode(cls, raw, path, ignore=frozenset({"type", "name"}))
        check_builder(type_name, config, decoder, path)
        self._flush(decoder)
        self.builds.append(BuildSpec(name, type_name, config, source_name or name))
        if aliases:
            self.aliases[name] = aliases

    def build_names(self) -> list[str]:
        return [b.name for b in self.builds]

    def _known(self, name: str) -> bool:
        return any(
            name == b or name in self.aliases.get(b, ()) or fnmatch.fnmatchcase(b, name)
            for b in self.build_names()
        )

    def _names(self, raw: Any, path: str) -> tuple[str, ...]:
        if raw is None:
            return ()
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            self.problem(path, "expected a list of build names", 'for example ["qemu"]')
            return ()
        for i, name in enumerate(raw):
            if not self._known(name):
                self.problem(
                    f"{path}[{i}]", f"no build named {name!r}", "builds: " + ", ".join(self.build_names())
                )
        return tuple(raw)

    def _duration(self, raw: Any, path: str) -> float | None:
        if raw is None or raw == "":
            return None
        try:
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                return float(raw)  # a bare number is nanoseconds in Go; Packer users write "10s"
            return parse_duration(str(raw))
        except ValueError as exc:
            self.problem(path, str(exc), "use a duration such as 10s or 1m30s")
            return None

    # -- provisioners ------------------------------------------------------------------------------
    def provisioner(
        self, raw: dict[str, Any], path: str, *, type_name: str | None = None, scope: tuple[str, ...] = ()
    ) -> ProvisionerSpec | None:
        """A ProvisionerSpec from a raw block (common keys included); `scope` limits it to some builds."""
        kind = type_name if type_name is not None else raw.get("type")
        if not isinstance(kind, str) or not kind:
            self.problem(
                path, 'a provisioner needs a "type"', "supported: " + ", ".join(registry.PROVISIONERS)
            )
            return None
        if kind not in registry.PROVISIONERS:
            hint = suggest(kind, list(registry.PROVISIONERS))
            self.problem(
                f"{path}.type" if type_name is None else path,
                f"unknown provisioner type {kind!r}",
                (hint + " " if hint else "") + "supported: " + ", ".join(registry.PROVISIONERS),
            )
            return None
        only = self._names(raw.get("only"), f"{path}.only") or scope
        except_ = self._names(raw.get("except"), f"{path}.except")
        override: dict[str, dict[str, Any]] = {}
        raw_override = raw.get("override", {})
        if not isinstance(raw_override, dict):
            self.problem(f"{path}.override", "expected a map of build name to keys", "")
        else:
            for name, keys in raw_override.items():
                if not isinstance(keys, dict):
                    self.problem(f"{path}.override.{name}", "expected a map of keys", "")
                    continue
                if not self._known(name) and not any(b.source_name == name for b in self.builds):
                    self.problem(
                        f"{path}.override.{name}",
                        f"no build named {name!r}",
                        "builds: " + ", ".join(self.build_names()),
                    )
                override[name] = keys
        max_retries = raw.get("max_retries", 0)
        if isinstance(max_retries, str) and max_retries.strip().isdigit():
            max_retries = int(max_retries)
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            self.problem(f"{path}.max_retries", "expected a whole number of retries", "for example 3")
            max_retries = 0
        pause = self._duration(raw.get("pause_before"), f"{path}.pause_before") or 0.0
        timeout = self._duration(raw.get("timeout"), f"{path}.timeout")
        body = {k: v for k, v in raw.items() if k not in PROVISIONER_COMMON and not k.startswith("_")}
        cls = registry.provisioner_class(kind)
        decoder = self._decoder()
        config: Any = decoder.decode(cls, body, path)
        for name, keys in override.items():
            decoder.decode(cls, {**body, **keys}, f"{path}.override.{name}")
        check_provisioner(config, decoder, path)
        self._flush(decoder)
        return ProvisionerSpec(
            kind,
            config,
            only,
            except_,
            override,
            pause,
            max_retries,
            timeout,
            body,
            f"{self.file}:{path}",
            self.aliases,
        )

    # -- post-processors ---------------------------------------------------------------------------
    def post_processor(
        self, raw: Any, path: str, *, type_name: str | None = None, scope: tuple[str, ...] = ()
    ) -> PostProcessorSpec | None:
        if isinstance(raw, str):
            raw = {"type": raw}
        if not isinstance(raw, dict):
            self.problem(
                path, "a post-processor is a type name or an object", 'for example {"type": "checksum"}'
            )
            return None
        kind = type_name if type_name is not None else raw.get("type")
        supported = ", ".join(registry.POST_PROCESSORS)
        if not isinstance(kind, str) or not kind:
            self.problem(path, 'a post-processor needs a "type"', "supported: " + supported)
            return None
        if kind not in registry.POST_PROCESSORS:
            hint = suggest(kind, list(registry.POST_PROCESSORS))
            self.problem(
                f"{path}.type" if type_name is None else path,
                f"unknown post-processor type {kind!r}",
                (hint + " " if hint else "") + "supported: " + supported,
            )
            return None
        only = self._names(raw.get("only"), f"{path}.only") or scope
        except_ = self._names(raw.get("except"), f"{path}.except")
        keep = raw.get("keep_input_artifact")
        if keep is not None and not isinstance(keep, bool):
            if isinstance(keep, str) and keep.lower() in ("true", "false"):
                keep = keep.lower() == "true"
            else:
                self.problem(f"{path}.keep_input_artifact", "expected a boolean (true or false)", "")
                keep = None
        body = {k: v for k, v in raw.items() if k not in POST_PROCESSOR_COMMON and not k.startswith("_")}
        decoder = self._decoder()
        config: Any = decoder.decode(registry.post_processor_class(kind), body, path)
        check_post_processor(config, decoder, path)
        self._flush(decoder)
        return PostProcessorSpec(kind, config, only, except_, keep, self.aliases)

    # -- -only / -except ---------------------------------------------------------------------------
    def select(self, only: list[str], except_: list[str]) -> list[BuildSpec]:
        def hit(build: BuildSpec, patterns: list[str]) -> bool:
            names = (build.name, build.source_name, *self.aliases.get(build.name, ()))
            return any(fnmatch.fnmatchcase(n, p) for p in patterns for n in names)

        chosen = [b for b in self.builds if (not only or hit(b, only)) and not hit(b, except_)]
        if self.builds and not chosen and not self.problems:
            self.problems.append(
                Problem(
                    self.file,
                    "-only" if only else "-except",
                    "no build is left to run",
                    "builds in this template: " + ", ".join(self.build_names()),
                )
            )
        return chosen


def _fix_legacy_checksum(raw: dict[str, Any], path: str, decoder: Decoder) -> dict[str, Any]:
    """Packer before 1.6 split the checksum in iso_checksum_type and iso_checksum_url; join them as
    `packer fix` does, and say so."""
    kind = raw.get("iso_checksum_type")
    url = raw.get("iso_checksum_url")
    if kind is None and url is None:
        return raw
    out = {k: v for k, v in raw.items() if k not in ("iso_checksum_type", "iso_checksum_url")}
    if isinstance(url, str) and url:
        out["iso_checksum"] = f"file:{url}"
    elif isinstance(kind, str) and kind.lower() == "none":
        out["iso_checksum"] = "none"
    elif (
        isinstance(kind, str) and isinstance(out.get("iso_checksum"), str) and ":" not in out["iso_checksum"]
    ):
        out["iso_checksum"] = f"{kind.lower()}:{out['iso_checksum']}"
    decoder.warning(
        f"{path}.iso_checksum_type" if kind is not None else f"{path}.iso_checksum_url",
        "iso_checksum_type and iso_checksum_url were removed in Packer 1.6; read as iso_checksum "
        f"{out.get('iso_checksum', '')!r}",
        "write iso_checksum as 'sha256:HEX' or 'file:URL' ('packer fix' does it too)",
    )
    return out


def decode_for_build(spec: ProvisionerSpec, build: BuildSpec, problems: list[Problem]) -> Any:
    """Provisioner config for one build (used by ProvisionerSpec.config_for; exposed for tests)."""
    file, _, path = spec.origin.partition(":")
    return decode_block(
        registry.provisioner_class(spec.type),
        spec.raw,
        file,
        path,
        problems,
        build=(build.name, build.type, build.source_name),
    )
