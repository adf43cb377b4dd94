"""`vmbake fix`: rewrite the deprecated keys of a JSON template, as `packer fix` does.

The fixers are Packer 1.6.6's (hashicorp/packer v1.6.6 `fix/`), in its order (`fix.FixerOrder`), limited
to those that touch what vmbake reads: the qemu builder, the communicator keys every builder shares, the
manifest post-processor, and three that rename keys of other plugins' blocks without needing them
(vagrant overrides, ansible-local's galaxy_command, virtualbox's host ports). Fixers of builders vmbake
does not run (amazon, azure, hyperv, parallels, vmware, vsphere, docker, scaleway, proxmox) are left out.
The output is Packer's: Go's encoding/json with sorted keys, two-space indent, `<` and `>` unescaped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmbake.config.weak import format_float
from vmbake.errors import TemplateError, VmbakeError
from vmbake.files import read_regular_text
from vmbake.template.jsonpos import JsonSyntaxError, parse

Template = dict[str, Any]


def _builders(tpl: Template) -> list[dict[str, Any]]:
    raw = tpl.get("builders")
    return [b for b in raw if isinstance(b, dict)] if isinstance(raw, list) else []


def _post_processors(tpl: Template) -> list[dict[str, Any]]:
    """Every post-processor object, chains included (fix/helpers.go, PP.ppList)."""
    out: list[dict[str, Any]] = []
    for item in tpl.get("post-processors") or []:
        if isinstance(item, dict):
            out.append(item)
        elif isinstance(item, list):
            out.extend(x for x in item if isinstance(x, dict))
    return out


def _rename(block: dict[str, Any], old: str, new: str, *, kind: type | None = None) -> None:
    """`old` becomes `new` unless `new` is already set, in which case `old` is dropped."""
    if old not in block:
        return
    if new in block:
        del block[old]
    elif kind is None or isinstance(block[old], kind):
        block[new] = block.pop(old)


def fix_iso_md5(tpl: Template) -> None:
    """iso-md5: iso_md5 becomes iso_checksum with iso_checksum_type md5 (joined by a later fixer)."""
    for b in _builders(tpl):
        if isinstance(b.get("iso_md5"), str):
            b["iso_checksum"] = b.pop("iso_md5")
            b["iso_checksum_type"] = "md5"


_CREATE_TIME = re.compile(r"{{\s*\.CreateTime\s*}}")


def fix_createtime(tpl: Template) -> None:
    """createtime: {{.CreateTime}} becomes {{timestamp}} in ami_name, bundle_prefix and snapshot_name."""
    for b in _builders(tpl):
        for key in ("ami_name", "bundle_prefix", "snapshot_name"):
            if isinstance(b.get(key), str):
                b[key] = _CREATE_TIME.sub("{{timestamp}}", b[key])


def fix_pp_vagrant_override(tpl: Template) -> None:
    """pp-vagrant-override: the vagrant post-processor's per-provider keys move under "override"."""
    for pp in _post_processors(tpl):
        if pp.get("type") != "vagrant":
            continue
        overrides = {
            name: pp.pop(name) for name in ("aws", "digitalocean", "virtualbox", "vmware") if name in pp
        }
        if overrides:
            pp["override"] = overrides


def fix_sshkeypath(tpl: Template) -> None:
    """sshkeypath: ssh_key_path becomes ssh_private_key_file."""
    for b in _builders(tpl):
        if isinstance(b.get("ssh_key_path"), str):
            path = b.pop("ssh_key_path")
            b.setdefault("ssh_private_key_file", path)


def fix_sshdisableagent(tpl: Template) -> None:
    """sshdisableagent: ssh_disable_agent (a boolean) becomes ssh_disable_agent_forwarding."""
    for b in _builders(tpl):
        if isinstance(b.get("ssh_disable_agent"), bool):
            value = b.pop("ssh_disable_agent")
            b.setdefault("ssh_disable_agent_forwarding", value)


def fix_manifest_filename(tpl: Template) -> None:
    """manifest-filename: the manifest post-processor's filename becomes output."""
    for pp in _post_processors(tpl):
        if pp.get("type") == "manifest" and isinstance(pp.get("filename"), str):
            pp["output"] = pp.pop("filename")


def fix_qemu_disk_size(tpl: Template) -> None:
    """qemu-disk-size: a number of megabytes becomes the string "NM"."""
    for b in _builders(tpl):
        size = b.get("disk_size")
        if b.get("type") == "qemu" and isinstance(size, int | float) and not isinstance(size, bool):
            b["disk_size"] = f"{int(size)}M"


def fix_galaxy_command(tpl: Template) -> None:
    """galaxy-command: ansible-local's galaxycommand becomes galaxy_command."""
    for p in tpl.get("provisioners") or []:
        if isinstance(p, dict) and p.get("type") == "ansible-local":
            _rename(p, "galaxycommand", "galaxy_command", kind=str)


def fix_comm_config(tpl: Template) -> None:
    """comm-config: virtualbox builders' ssh_host_port_min/max and ssh_skip_nat_mapping lose "ssh_"."""
    for b in _builders(tpl):
        if str(b.get("type", "")).startswith("virtualbox"):
            _rename(b, "ssh_host_port_min", "host_port_min")
            _rename(b, "ssh_host_port_max", "host_port_max")
            _rename(b, "ssh_skip_nat_mapping", "skip_nat_mapping", kind=bool)


def fix_ssh_wait_timeout(tpl: Template) -> None:
    """ssh-wait-timeout: ssh_wait_timeout becomes ssh_timeout (dropped when ssh_timeout is set)."""
    for b in _builders(tpl):
        _rename(b, "ssh_wait_timeout", "ssh_timeout", kind=str)


def fix_iso_checksum_type_and_url(tpl: Template) -> None:
    """iso-checksum-type-and-url: iso_checksum_type and iso_checksum_url join iso_checksum as
    "TYPE:VALUE" or "file:URL"."""
    for b in _builders(tpl):
        url = _text(b.pop("iso_checksum_url", None))
        kind = _text(b.pop("iso_checksum_type", None))
        checksum = _text(b.get("iso_checksum"))
        if not checksum and not url:
            continue
        if url:
            checksum = "file:" + url
        elif kind:
            checksum = f"{kind}:{checksum}"
        b["iso_checksum"] = checksum


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def fix_qemu_host_port(tpl: Template) -> None:
    """qemu-host-port: the qemu builder's ssh_host_port_min/max become host_port_min/max."""
    for b in _builders(tpl):
        if b.get("type") == "qemu":
            for end in ("min", "max"):
                if f"ssh_host_port_{end}" in b:
                    b[f"host_port_{end}"] = b.pop(f"ssh_host_port_{end}")


FIXERS: list[tuple[str, Callable[[Template], None]]] = [
    ("iso-md5", fix_iso_md5),
    ("createtime", fix_createtime),
    ("pp-vagrant-override", fix_pp_vagrant_override),
    ("sshkeypath", fix_sshkeypath),
    ("sshdisableagent", fix_sshdisableagent),
    ("manifest-filename", fix_manifest_filename),
    ("qemu-disk-size", fix_qemu_disk_size),
    ("galaxy-command", fix_galaxy_command),
    ("comm-config", fix_comm_config),
    ("ssh-wait-timeout", fix_ssh_wait_timeout),
    ("iso-checksum-type-and-url", fix_iso_checksum_type_and_url),
    ("qemu-host-port", fix_qemu_host_port),
]


def fix(tpl: Template) -> Template:
    """`tpl` (changed in place) after every fixer, in Packer's order."""
    for _name, fixer in FIXERS:
        fixer(tpl)
    # Packer's builder fixers write their (decoded) builder list back: a template without one gets
    # "builders": null (fix/fixer_iso_md5.go and others: input["builders"] = tpl.Builders).
    tpl.setdefault("builders", None)
    return tpl


# -- Go's encoding/json, as `packer fix` prints -------------------------------------------------------

_GO_ESCAPES = {"\b": "\\u0008", "\f": "\\u000c", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _go_string(text: str) -> str:
    out = []
    for c in text:
        if c in _GO_ESCAPES:
            out.append(_GO_ESCAPES[c])
        elif c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)  # Go leaves other characters as UTF-8, and `packer fix` unescapes < and >
    return '"' + "".join(out) + '"'


def _go_number(value: float) -> str:
    """A float64 as encoding/json writes it: 'f' form between 1e-6 and 1e21, else 'e' with a short
    exponent (1e+21, 1e-07 becomes 1e-7)."""
    if value == 0 or (1e-6 <= abs(value) < 1e21):
        return format_float(value)
    text = repr(value)
    if "e" not in text:
        text = f"{value:e}"
    mantissa, exp = text.split("e")
    mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    sign = "-" if exp.startswith("-") else "+"
    return f"{mantissa}e{sign}{exp.lstrip('+-').lstrip('0') or '0'}"


def go_json(value: Any, indent: str = "") -> str:
    """`value` as json.Indent(json.Marshal(value), "", "  ") writes it (map keys sorted)."""
    inner = indent + "  "
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{_go_string(str(k))}: {go_json(value[k], inner)}" for k in sorted(value)]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(inner + go_json(v, inner) for v in value) + "\n" + indent + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return _go_number(float(value))
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            raise ValueError(f"json: unsupported value: {value}")
        return _go_number(value)
    return _go_string(str(value))


def fix_file(path: Path) -> str:
    """The fixed template of `path`, as `packer fix` prints it. Raises VmbakeError."""
    if path.name.endswith(".hcl"):
        raise VmbakeError(f"{path}: vmbake fix rewrites JSON templates only", hint="as Packer's fix does")
    text = read_regular_text(path, "template")
    try:
        data, _lines = parse(text)
    except (JsonSyntaxError, RecursionError) as exc:
        line = f" at line {exc.line}" if isinstance(exc, JsonSyntaxError) else ""
        reason = exc.reason if isinstance(exc, JsonSyntaxError) else "nested too deeply"
        raise VmbakeError(
            f"{path}: error parsing template{line}: {reason}", hint="fix the JSON first"
        ) from None
    if not isinstance(data, dict):
        raise VmbakeError(f"{path}: a template is a JSON object", hint="start the file with '{'")
    return go_json(fix(data)) + "\n"


def validate_fixed(path: Path, fixed: str) -> None:
    """Load the fixed text as `vmbake validate` would, except that required variables may stay unset
    (Packer's fix -validate checks the template, not a run of it). Raises TemplateError."""
    from vmbake.template.json_loader import load_json
    from vmbake.template.variables import Inputs

    try:
        load_json(path, Inputs(), [], [], text=fixed)
    except TemplateError as exc:
        left = [p for p in exc.problems if not p.message.startswith("required variable")]
        if left:
            raise TemplateError(left) from None
