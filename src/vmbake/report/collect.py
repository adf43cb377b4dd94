"""Facts about a running guest, gathered over the communicator: packages, filesystems, big directories.

The commands are read-only and quiet (their output is kept, not shown), run with LC_ALL=C so that the
parsers below see one format. The parsers are pure functions, so tests feed them recorded output.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from vmbake.comm import DISCONNECTED, Communicator
from vmbake.errors import VmbakeError

REPORT_VERSION = 1
DU_DEPTH = 3  # directories deeper than this are folded into their parents
DU_TIMEOUT = 300  # seconds for du inside the guest (TCG guests are slow); a partial result is kept
TOP_DIRECTORIES = 30
# Filesystems that hold no image data: the report leaves them out.
_SKIP_FSTYPES = ("tmpfs", "devtmpfs", "efivarfs", "overlay", "squashfs", "ramfs")

PACKAGES_CMD = (
    "LC_ALL=C dpkg-query -W -f='${binary:Package}\\t${Version}\\t${Installed-Size}\\t${db:Status-Abbrev}\\n'"
)
DF_CMD = "LC_ALL=C df -B1 --local --output=source,fstype,size,used,avail,target " + " ".join(
    f"-x {t}" for t in _SKIP_FSTYPES
)
KERNEL_CMD = "uname -r"
OS_CMD = '. /etc/os-release 2>/dev/null && printf "%s\\n" "${PRETTY_NAME:-$NAME}"'
STATE_CMD = "systemctl is-system-running 2>/dev/null || true"
FAILED_CMD = "LC_ALL=C systemctl list-units --failed --plain --no-legend --no-pager 2>/dev/null || true"


def du_command(mountpoints: list[str]) -> str:
    """du of each filesystem (-x keeps it on one), bounded in depth and time."""
    paths = " ".join(shlex.quote(p) for p in mountpoints) or "/"
    return f"LC_ALL=C timeout {DU_TIMEOUT} du -x -B1 -d {DU_DEPTH} {paths} 2>/dev/null || true"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    installed_bytes: int  # dpkg's Installed-Size (KiB) in bytes: what the package's files take


@dataclass(frozen=True)
class Filesystem:
    source: str
    fstype: str
    mountpoint: str
    size_bytes: int
    used_bytes: int
    avail_bytes: int
    du_bytes: int = 0  # what du counts on it (0 when du gave nothing)


@dataclass(frozen=True)
class Directory:
    path: str
    bytes: int
    depth: int  # 1 for /usr, 2 for /usr/share, ... (relative to its filesystem's mount point)


@dataclass
class ImageFacts:
    """Everything the report shows about the guest; `to_json`/`from_json` round-trip it."""

    kernel: str = ""
    os: str = ""
    system_state: str = ""
    failed_units: list[str] = field(default_factory=list)
    packages: list[Package] = field(default_factory=list)  # biggest first
    filesystems: list[Filesystem] = field(default_factory=list)
    directories: list[Directory] = field(default_factory=list)  # biggest first
    collected_at: str = ""
    collect_seconds: float = 0.0

    @property
    def packages_bytes(self) -> int:
        return sum(p.installed_bytes for p in self.packages)

    @property
    def used_bytes(self) -> int:
        """Data in the guest's filesystems as du counts it (df's figure where du gave nothing)."""
        return sum(fs.du_bytes or fs.used_bytes for fs in self.filesystems)

    def biggest_packages(self, count: int = 10) -> list[Package]:
        return self.packages[:count]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["version"] = REPORT_VERSION
        data["packages_bytes"] = self.packages_bytes
        data["used_bytes"] = self.used_bytes
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageFacts:
        return cls(
            kernel=str(data.get("kernel", "")),
            os=str(data.get("os", "")),
            system_state=str(data.get("system_state", "")),
            failed_units=[str(u) for u in data.get("failed_units", [])],
            packages=[Package(**p) for p in data.get("packages", [])],
            filesystems=[Filesystem(**f) for f in data.get("filesystems", [])],
            directories=[Directory(**d) for d in data.get("directories", [])],
            collected_at=str(data.get("collected_at", "")),
            collect_seconds=float(data.get("collect_seconds", 0.0)),
        )


def parse_packages(text: str) -> list[Package]:
    """dpkg-query lines (name, version, Installed-Size KiB, status) -> installed packages, biggest first."""
    found: list[Package] = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 4 or len(parts[3]) < 2 or parts[3][1] not in "iU":
            continue  # not installed (removed with its config left, or half-purged)
        size = int(parts[2]) * 1024 if parts[2].strip().isdigit() else 0
        found.append(Package(parts[0], parts[1], size))
    found.sort(key=lambda p: (-p.installed_bytes, p.name))
    return found


def parse_df(text: str) -> list[Filesystem]:
    """`df -B1 --output=source,fstype,size,used,avail,target` -> filesystems (header skipped)."""
    found: list[Filesystem] = []
    seen: set[str] = set()
    for line in text.splitlines()[1:]:
        parts = line.split(None, 5)
        if len(parts) != 6 or not parts[2].isdigit() or parts[5] in seen:
            continue
        seen.add(parts[5])
        found.append(Filesystem(parts[0], parts[1], parts[5], int(parts[2]), int(parts[3]), int(parts[4])))
    return found


def _depth(path: str, mountpoint: str) -> int:
    if path == mountpoint:
        return 0
    rest = path[len(mountpoint) :] if mountpoint != "/" else path
    return len([p for p in rest.split("/") if p])


def parse_du(text: str, filesystems: list[Filesystem]) -> tuple[list[Filesystem], list[Directory]]:
    """du output (bytes, TAB, path) -> each filesystem with its du total, and directories biggest first."""
    sizes: dict[str, int] = {}
    for line in text.splitlines():
        number, _, path = line.partition("\t")
        if number.isdigit() and path.startswith("/"):
            sizes[path] = int(number)
    totals = [Filesystem(**{**asdict(fs), "du_bytes": sizes.get(fs.mountpoint, 0)}) for fs in filesystems]
    mounts = sorted((fs.mountpoint for fs in filesystems), key=len, reverse=True) or ["/"]
    directories: list[Directory] = []
    for path, used in sizes.items():
        mount = next((m for m in mounts if path == m or path.startswith(m.rstrip("/") + "/")), "/")
        depth = _depth(path, mount)
        if depth > 0:
            directories.append(Directory(path, used, depth))
    directories.sort(key=lambda d: (-d.bytes, d.path))
    return totals, directories


def parse_failed_units(text: str) -> list[str]:
    return [line.split()[0] for line in text.splitlines() if line.strip() and not line.startswith(" ")]


def _run_quiet(comm: Communicator, command: str, *, timeout: float = 120.0) -> str:
    out: list[str] = []
    err: list[str] = []
    status = comm.run(command, on_stdout=out.append, on_stderr=err.append, timeout=timeout)
    if status == DISCONNECTED:
        raise VmbakeError(
            f"the connection to the guest dropped while running: {command}",
            hint="the guest must stay up until the report is collected; run with -report=false to skip it",
        )
    if status != 0:
        detail = "; ".join(err[-3:]) or f"exit status {status}"
        raise VmbakeError(
            f"{command.split()[1] if command.startswith('LC_ALL') else command.split()[0]} failed in the "
            f"guest: {detail}",
            hint="the report needs dpkg-query, df and du in the guest; run with -report=false to skip it",
        )
    return "\n".join(out)


def collect(comm: Communicator) -> ImageFacts:
    """Ask the guest for its facts (about 10 s under TCG for a minimal Debian)."""
    started = time.monotonic()
    facts = collect_files(comm)
    facts.kernel = _run_quiet(comm, KERNEL_CMD).strip()
    facts.system_state = _run_quiet(comm, STATE_CMD).strip()
    facts.failed_units = parse_failed_units(_run_quiet(comm, FAILED_CMD))
    facts.collect_seconds = round(time.monotonic() - started, 2)
    return facts


def collect_files(comm: Communicator) -> ImageFacts:
    """The facts that the image's files alone give (packages, filesystems, directories, the OS's name):
    the same from a running guest as from the image tree in a chroot, where they cost no guest time."""
    started = time.monotonic()
    facts = ImageFacts(collected_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    facts.packages = parse_packages(_run_quiet(comm, PACKAGES_CMD))
    filesystems = parse_df(_run_quiet(comm, DF_CMD))
    du_text = _run_quiet(comm, du_command([fs.mountpoint for fs in filesystems]), timeout=DU_TIMEOUT + 30)
    facts.filesystems, directories = parse_du(du_text, filesystems)
    # Every top-level directory (the chart shows them), then the biggest deeper ones.
    top = [d for d in directories if d.depth == 1]
    deeper = [d for d in directories if d.depth > 1][:TOP_DIRECTORIES]
    facts.directories = sorted(top + deeper, key=lambda d: (-d.bytes, d.path))
    facts.os = _run_quiet(comm, OS_CMD).strip()
    facts.collect_seconds = round(time.monotonic() - started, 2)
    return facts


# The running system's facts in one command (one round trip to a slow guest), in sections.
_LIVE_MARK = "--vmbake--"
LIVE_CMD = f"{KERNEL_CMD}; echo {_LIVE_MARK}; {STATE_CMD}; echo {_LIVE_MARK}; {FAILED_CMD}"


def parse_live(text: str) -> tuple[str, str, list[str]]:
    """LIVE_CMD's output -> (kernel release, systemd's state, failed units)."""
    sections = [*text.split(_LIVE_MARK), "", ""][:3]
    return sections[0].strip(), sections[1].strip(), parse_failed_units(sections[2].strip("\n"))


def add_live_facts(comm: Communicator, facts: ImageFacts) -> None:
    """Complete `facts` (from collect_files) with the running guest's kernel, state and failed units."""
    started = time.monotonic()
    facts.kernel, facts.system_state, facts.failed_units = parse_live(_run_quiet(comm, LIVE_CMD))
    facts.collect_seconds = round(facts.collect_seconds + time.monotonic() - started, 2)


def rename_sources(facts: ImageFacts, names: dict[str, str]) -> None:
    """Give each filesystem the device name the guest sees (`names`: mount point -> device), where the
    facts came from the image tree on the build host's loop device."""
    facts.filesystems = [
        Filesystem(**{**asdict(fs), "source": names.get(fs.mountpoint, fs.source)})
        for fs in facts.filesystems
    ]
