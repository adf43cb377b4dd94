"""Shared fixtures: free ports, a guard against leaked QEMU processes, the d-i netboot files."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.bootstrap_disk import BootstrappedDisk, build_bootstrapped_disk
from vmbake.procs import TOOL_PACKAGES

REPO = Path(__file__).resolve().parents[1]
DI_NETBOOT = Path("/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64")


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago; tests that start servers bind it right away."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# Every process this test session starts inherits this mark, so the leak check below sees only this
# session's QEMUs (orphans included: they keep their environment) and not other QEMUs on the machine.
SESSION_MARK = f"VMBAKE_TEST_SESSION={uuid.uuid4().hex}"
os.environ["VMBAKE_TEST_SESSION"] = SESSION_MARK.split("=", 1)[1]


def qemu_pids() -> set[int]:
    """This session's running qemu-system processes."""
    out = subprocess.run(["pgrep", "-f", "qemu-system"], capture_output=True, text=True, check=False).stdout
    mine = set()
    for pid in (int(p) for p in out.split()):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue  # gone already
        if SESSION_MARK.encode() in environ and "State:\tZ" not in status:
            mine.add(pid)
    return mine


@pytest.fixture
def no_qemu_left() -> Iterator[None]:
    """Fails the test if a qemu process started during it is still running at its end."""
    before = qemu_pids()
    yield
    left = qemu_pids() - before
    assert not left, f"qemu processes left behind: {sorted(left)}"


@pytest.fixture(autouse=True)
def fresh_secrets() -> Iterator[None]:
    """Each test starts with no registered secrets, as each vmbake command does: a value one test's
    template marked sensitive must not be masked in another test's output."""
    from vmbake.ui import forget_secrets

    forget_secrets()
    yield
    forget_secrets()


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    """Fails the test if a non-daemon thread started during it is still alive at its end.

    Python joins such threads before it exits, so one left serving would hang the whole test run after
    its last test (as a second HTTP serving thread once did)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2
    while True:
        left = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"threads left running: {sorted(t.name for t in left)}"


@pytest.fixture(scope="session")
def di_netboot() -> Path:
    """The Debian installer's netboot kernel, initrd and syslinux menus (package debian-installer-12-netboot-amd64)."""
    if not (DI_NETBOOT / "linux").exists():
        pytest.fail("debian-installer-12-netboot-amd64 is not installed: run .ci/run's apt-get step")
    return DI_NETBOOT


@pytest.fixture
def vmbake_cmd() -> list[str]:
    """The vmbake command line, run from this checkout's interpreter."""
    return [sys.executable, "-m", "vmbake"]


@pytest.fixture
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cache")
    os.environ.setdefault("VMBAKE_TEST", "1")
    return path


@pytest.fixture(scope="session")
def bootstrapped_disk(tmp_path_factory: pytest.TempPathFactory) -> BootstrappedDisk:
    """A bookworm cloud-kernel qcow2 that boots by itself; root logs in with `.private_key` (built once).

    Boot it with tests.helpers.bootstrap_disk.booted() (which uses -snapshot, so the image stays clean)."""
    if os.geteuid() != 0:
        pytest.skip("building a bootable Debian disk needs root (loop devices, mount, chroot)")
    return build_bootstrapped_disk(tmp_path_factory.mktemp("bootstrapped-disk"))


# -- order and time budget ----------------------------------------------------------------------------
# Fast tiers first, so a broken build shows in seconds. Among the guests, the cheap ones first.
_TIER = {"unit": 0, "reliability": 1, "integration": 2}
_GUEST_ORDER = [
    "test_qemu_run", "test_qemu_build", "test_installer_kernel_archive", "test_bootstrap", "test_ssh_e2e",
    "test_provision_templates", "test_report_verify", "test_boot_command", "test_installer_kernel",
    "test_provision_chroot", "test_provision", "test_login", "test_vagrant_box", "test_run_image",
    "test_ansible_guest", "test_tree_stage", "test_install_debian", "test_installer_end_to_end", "test_apt_proxy",
    "test_arm64", "test_concurrent_builds",
]  # fmt: skip
# CI stops a run after 90 minutes. Past this many minutes no further guest test starts; each one that
# would have is reported as skipped with this reason, so an overrun shows instead of a lost run.
SUITE_BUDGET = float(os.environ.get("VMBAKE_TEST_BUDGET_MINUTES", "55")) * 60
_STARTED = time.monotonic()


_DEFINED = pytest.StashKey[int]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Iterator[None]:
    """Tiers in turn, and the guest modules in _GUEST_ORDER, each module's tests as written.

    An outer wrapper: it notes the order as written before any plugin reorders, and sorts after every
    plugin; so pytest-randomly shuffles the unit and
    reliability tests (order dependence shows there), but not tests/integration, whose guests share
    disks and a time budget and run cheapest first."""
    for index, item in enumerate(items):
        item.stash[_DEFINED] = index  # before any plugin reorders them
    yield

    def key(item: pytest.Item) -> tuple[int, int, int]:
        path = Path(str(item.fspath))
        module = path.stem
        order = _GUEST_ORDER.index(module) if module in _GUEST_ORDER else len(_GUEST_ORDER)
        tier = _TIER.get(path.parent.name, 1)
        return tier, order, item.stash[_DEFINED] if tier == _TIER["integration"] else 0

    items.sort(key=key)  # stable: other tests keep the order they have (pytest-randomly's, if it runs)


# -- host tools -----------------------------------------------------------------------------------------
# The Debian package of each tool that only the tests run (vmbake's own are in procs.TOOL_PACKAGES).
_TEST_TOOL_PACKAGES = {"shellcheck": "shellcheck", "groff": "groff-base"}


def missing_tools(item: pytest.Item) -> list[str]:
    """The tools named by the item's `host_tools` marks that are not on PATH, each with its package."""
    missing = []
    for mark in item.iter_markers("host_tools"):
        for tool in mark.args:
            if shutil.which(tool) is None:
                package = TOOL_PACKAGES.get(tool) or _TEST_TOOL_PACKAGES.get(tool, tool)
                missing.append(f"{tool} (apt-get install {package})")
    return missing


def pytest_runtest_setup(item: pytest.Item) -> None:
    missing = missing_tools(item)
    if missing:
        # In CI a missing tool is a gap in scripts/install-deps.sh, which a skip would hide.
        if os.environ.get("CI") == "true":
            pytest.fail(f"not installed: {', '.join(missing)}; add it to scripts/install-deps.sh")
        pytest.skip(f"not installed: {', '.join(missing)}")
    spent = time.monotonic() - _STARTED
    if item.get_closest_marker("integration") and spent > SUITE_BUDGET:
        pytest.skip(f"the suite's time budget is spent ({spent / 60:.0f} min; VMBAKE_TEST_BUDGET_MINUTES)")
