"""Checks of a booted guest, for `vmbake verify`: system state, root mounted read-write, fstab vs disks.

The parsers and judges are pure (recorded command output in, problems out); `check_guest` runs the
commands over a communicator.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vmbake.comm import DISCONNECTED, Communicator

GOOD_STATES = ("running", "degraded")
STATE_WAIT = 180  # seconds `systemctl is-system-running --wait` may wait for the boot to settle
LSBLK_CMD = "LC_ALL=C lsblk -J -o NAME,PATH,UUID,PARTUUID,LABEL,PARTLABEL,FSTYPE,MOUNTPOINT"
BLKID_CMD = "LC_ALL=C blkid -o export 2>/dev/null || true"
# fstab sources that name no block device: pseudo and network filesystems are not checked.
_NO_DEVICE_TYPES = frozenset(
    {"proc", "sysfs", "tmpfs", "devpts", "devtmpfs", "nfs", "nfs4", "cifs", "smb3", "9p", "virtiofs",
     "fuse", "cgroup", "cgroup2", "securityfs", "debugfs", "hugetlbfs", "mqueue", "efivarfs", "bpf",
     "overlay", "ramfs", "none"}
)  # fmt: skip
_TAGS = {"UUID": "uuid", "LABEL": "label", "PARTUUID": "partuuid", "PARTLABEL": "partlabel"}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class FstabEntry:
    line: int
    source: str
    mountpoint: str
    fstype: str
    options: str


def parse_fstab(text: str) -> list[FstabEntry]:
    entries: list[FstabEntry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 2:
            continue
        fstype = fields[2] if len(fields) > 2 else "auto"
        options = fields[3] if len(fields) > 3 else "defaults"
        source = fields[0].replace('"', "")
        entries.append(FstabEntry(number, source, fields[1].replace("\\040", " "), fstype, options))
    return entries


def block_devices(lsblk_json: str, blkid_export: str = "") -> list[dict[str, str]]:
    """Every block device as a flat dict (path, uuid, label, partuuid, partlabel, mountpoint)."""
    flat: list[dict[str, str]] = []

    def walk(nodes: list[dict[str, Any]]) -> None:
        for node in nodes:
            flat.append({k: str(v) for k, v in node.items() if v is not None and k != "children"})
            walk(node.get("children") or [])

    if lsblk_json.strip():
        walk(json.loads(lsblk_json).get("blockdevices") or [])
    # blkid fills in what lsblk could not read (no udev database, for example).
    device: dict[str, str] = {}
    for line in [*blkid_export.splitlines(), ""]:
        key, _, value = line.partition("=")
        if not line.strip():
            if device.get("devname"):
                known = next((d for d in flat if d.get("path") == device["devname"]), None)
                if known is None:
                    flat.append({"path": device["devname"], **device})
                else:
                    for k, v in device.items():
                        known.setdefault(k, v)
            device = {}
            continue
        device[key.lower()] = value
    return flat


def resolve(source: str, devices: list[dict[str, str]]) -> dict[str, str] | None:
    """The device an fstab source names (UUID=, LABEL=, PARTUUID=, PARTLABEL= or a /dev path)."""
    tag, sep, value = source.partition("=")
    if sep and tag.upper() in _TAGS:
        key = _TAGS[tag.upper()]
        wanted = value.lower() if key in ("uuid", "partuuid") else value
        for device in devices:
            have = device.get(key, "")
            if (have.lower() if key in ("uuid", "partuuid") else have) == wanted and have:
                return device
        return None
    return next((d for d in devices if d.get("path") == source or d.get("name") == source), None)


def fstab_problems(
    entries: list[FstabEntry], devices: list[dict[str, str]], existing: set[str] | None = None
) -> list[str]:
    """What in fstab does not match the disks: sources that name no device, or another device than
    the one mounted at that place. `existing` holds /dev paths that exist in the guest (symlinks too)."""
    problems: list[str] = []
    existing = existing or set()
    for entry in entries:
        if (
            entry.fstype in _NO_DEVICE_TYPES
            or ":" in entry.source.split("=", 1)[0]
            or entry.source.startswith("//")
        ):
            continue
        tagged = entry.source.partition("=")[0].upper() in _TAGS and "=" in entry.source
        if not tagged and not entry.source.startswith("/dev/"):
            continue
        device = resolve(entry.source, devices)
        if device is None and not tagged and entry.source in existing:
            continue  # a /dev/disk/by-* link or a device lsblk does not list
        where = f"/etc/fstab line {entry.line}: {entry.source} ({entry.mountpoint})"
        if device is None:
            problems.append(f"{where} matches no partition on the disk")
            continue
        mounted = next((d for d in devices if d.get("mountpoint") == entry.mountpoint), None)
        if mounted is not None and mounted.get("path") != device.get("path") and entry.mountpoint != "none":
            problems.append(f"{where} names {device.get('path')}, but {mounted.get('path')} is mounted there")
    return problems


def root_options(proc_mounts: str) -> list[str]:
    """The options of the last mount on / in /proc/self/mounts (the one in effect)."""
    options: list[str] = []
    for line in proc_mounts.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[1] == "/":
            options = fields[3].split(",")
    return options


def _capture(comm: Communicator, command: str, timeout: float) -> tuple[int, str]:
    out: list[str] = []
    status = comm.run(command, on_stdout=out.append, on_stderr=lambda _line: None, timeout=timeout)
    return status, "\n".join(out)


# Everything the checks read, in one command: each command to a guest under TCG costs a round trip and a
# session. The sections follow systemd's wait for the boot to settle, so they see the settled system.
_MARK = "--vmbake-check--"
CHECK_CMD = (
    f"; echo {_MARK}; ".join(
        [
            f"timeout {STATE_WAIT} systemctl is-system-running --wait 2>/dev/null",
            "systemctl list-units --failed --plain --no-legend --no-pager 2>/dev/null",
            "cat /proc/self/mounts",
            "cat /etc/fstab",
            LSBLK_CMD + " 2>/dev/null",
            BLKID_CMD,
        ]
    )
    + "; true"
)


def check_sections(output: str) -> list[str]:
    """CHECK_CMD's output cut into its six sections (missing ones empty: the connection dropped)."""
    sections = [part.removeprefix("\n").removesuffix("\n") for part in output.split(_MARK)]
    return [*sections, *[""] * 6][:6]


def check_guest(comm: Communicator, say: Callable[[str], None] = lambda _t: None) -> list[Check]:
    """Run the three checks in the guest; each result says what was seen."""
    checks: list[Check] = []
    status, output = _capture(comm, CHECK_CMD, STATE_WAIT + 60)
    state, failed, mounts, fstab, lsblk, blkid = check_sections(output)
    state = (state.strip().splitlines() or ["(no answer)"])[-1]
    detail = f"systemctl is-system-running: {state}"
    if state == "degraded":
        units = [line.split()[0] for line in failed.splitlines() if line.strip()]
        detail += " (failed units: " + (", ".join(units) or "none listed") + ")"
    if status == DISCONNECTED:
        detail = "the connection dropped while asking systemd for the system state"
    checks.append(Check("system state", state in GOOD_STATES and status != DISCONNECTED, detail))
    say(("ok    " if checks[-1].ok else "FAIL  ") + detail)

    options = root_options(mounts)
    rw = "rw" in options
    detail = "the root filesystem is mounted " + (
        "read-write" if rw else f"read-only ({','.join(options)})" if options else "nowhere?"
    )
    checks.append(Check("root read-write", rw, detail))
    say(("ok    " if rw else "FAIL  ") + detail)

    entries = parse_fstab(fstab)
    paths = sorted({e.source for e in entries if e.source.startswith("/dev/")})
    existing: set[str] = set()
    if paths:
        probe = (
            "for p in "
            + " ".join(shlex.quote(p) for p in paths)
            + '; do [ -e "$p" ] && echo "$p"; done; true'
        )
        existing = set(_capture(comm, probe, 60)[1].split())
    try:
        devices = block_devices(lsblk, blkid)
    except ValueError:
        devices = block_devices("", blkid)
    problems = fstab_problems(entries, devices, existing)
    detail = (
        "; ".join(problems) if problems else f"{len(entries)} fstab entries agree with the disk's partitions"
    )
    checks.append(Check("fstab", not problems, detail))
    say(("ok    " if not problems else "FAIL  ") + detail)
    return checks
