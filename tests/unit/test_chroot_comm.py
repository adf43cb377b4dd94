"""The chroot communicator on a real chroot: the host's own root ("/"), with files under tmp_path.

chroot needs root; the image trees it serves in builds are covered by the bootstrap integration tests.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from vmbake import procs
from vmbake.comm.chroot import BASE_ENV, ChrootCommunicator, chroot_argv
from vmbake.errors import BuildCancelled, VmbakeError

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")


def test_argv_runs_sh_in_the_chroot_with_a_clean_environment() -> None:
    argv = chroot_argv(Path("/mnt/t"), {"VMBAKE_STAGE": "tree"}, "echo hi")
    assert argv[:2] == ["env", "-i"]
    assert "VMBAKE_STAGE=tree" in argv and f"PATH={BASE_ENV['PATH']}" in argv
    at = argv.index("chroot")
    assert argv[at : at + 3] == ["chroot", "/mnt/t", "/bin/sh"]
    assert argv[-1] == "echo hi"


@pytest.fixture
def comm() -> ChrootCommunicator:
    if os.geteuid() != 0:
        pytest.skip("chroot needs root")
    return ChrootCommunicator(Path("/"), {"VMBAKE_STAGE": "tree"})


def run(comm: ChrootCommunicator, command: str, **kw: float) -> tuple[int, list[str], list[str]]:
    out: list[str] = []
    err: list[str] = []
    status = comm.run(command, on_stdout=out.append, on_stderr=err.append, **kw)  # type: ignore[arg-type]
    return status, out, err


@needs_root
def test_run_streams_stdout_and_stderr_apart_and_returns_the_status(comm: ChrootCommunicator) -> None:
    status, out, err = run(comm, 'echo one; echo two >&2; printf "no newline"; exit 3')
    assert status == 3
    assert out == ["one", "no newline"]
    assert err == ["two"]


@needs_root
def test_run_gives_the_builder_variables_and_not_the_hosts(comm: ChrootCommunicator) -> None:
    os.environ["VMBAKE_TEST_LEAK"] = "1"
    try:
        status, out, _ = run(comm, 'echo "$VMBAKE_STAGE ${VMBAKE_TEST_LEAK:-none} $HOME $(pwd)"')
    finally:
        del os.environ["VMBAKE_TEST_LEAK"]
    assert status == 0
    assert out == ["tree none /root /root"]


@needs_root
def test_lines_arrive_while_the_command_runs(comm: ChrootCommunicator) -> None:
    seen: list[float] = []
    started = time.monotonic()
    comm.run("echo a; sleep 1; echo b", on_stdout=lambda _l: seen.append(time.monotonic() - started),
             on_stderr=lambda _l: None)  # fmt: skip
    assert len(seen) == 2 and seen[0] < 0.8 <= seen[1]


@needs_root
def test_a_background_child_holding_the_pipes_does_not_hang_the_run(comm: ChrootCommunicator) -> None:
    started = time.monotonic()
    status, out, _ = run(comm, "sleep 30 & echo started")
    assert status == 0 and out == ["started"]
    assert time.monotonic() - started < 5


@needs_root
def test_timeout_and_cancel_end_the_command(comm: ChrootCommunicator) -> None:
    with pytest.raises(VmbakeError, match="did not finish within 1s"):
        run(comm, "sleep 30", timeout=1)
    comm.cancel = threading.Event()
    threading.Timer(0.5, comm.cancel.set).start()
    with pytest.raises(BuildCancelled):
        run(comm, "sleep 30")


@needs_root
def test_files_go_both_ways(comm: ChrootCommunicator, tmp_path: Path) -> None:
    guest = tmp_path / "guest"
    comm.mkdir_p(str(guest / "a" / "b"))
    assert (guest / "a" / "b").is_dir()
    comm.upload_bytes(b"#!/bin/sh\necho hi\n", str(guest / "a" / "s.sh"), mode=0o755)
    assert (guest / "a" / "s.sh").stat().st_mode & 0o777 == 0o755
    local = tmp_path / "local.txt"
    local.write_text("data\n")
    local.chmod(0o640)
    comm.upload(local, str(guest / "copy.txt"))
    assert (guest / "copy.txt").read_text() == "data\n"
    assert (guest / "copy.txt").stat().st_mode & 0o777 == 0o640
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_text("f\n")
    comm.upload_dir(tree, str(guest / "up"))
    assert (guest / "up" / "sub" / "f").read_text() == "f\n"
    back = tmp_path / "back"
    comm.download_dir(str(guest / "up"), back)
    assert (back / "sub" / "f").read_text() == "f\n"
    comm.download(str(guest / "copy.txt"), tmp_path / "got.txt")
    assert (tmp_path / "got.txt").read_text() == "data\n"
    comm.remove([str(guest / "copy.txt"), str(guest / "missing")])
    assert not (guest / "copy.txt").exists()
    with pytest.raises(VmbakeError, match=r"download of .*/nope failed"):
        comm.download(str(guest / "nope"), tmp_path / "x")


@needs_root
def test_paths_resolve_inside_the_chroot(tmp_path: Path) -> None:
    """An absolute symlink in the tree points into the tree, not at the host's file of that name. The tree
    is the host's /usr (read-only, bound) with merged-/usr links, and an etc/ of its own."""
    if not Path("/bin").is_symlink():
        pytest.skip("needs a host with merged /usr")
    root = tmp_path / "root"
    (root / "usr").mkdir(parents=True)
    (root / "etc").mkdir()
    for link in ("bin", "lib", "lib64", "sbin"):
        (root / link).symlink_to(os.readlink(f"/{link}"))
    (root / "etc" / "vmbake-link").symlink_to("/etc/vmbake-target")
    procs.run(["mount", "--bind", "-o", "ro", "/usr", str(root / "usr")])
    try:
        comm = ChrootCommunicator(root, {})
        comm.upload_bytes(b"inside\n", "/etc/vmbake-link")
        status, out, _ = run(comm, "cat /etc/vmbake-target")
    finally:
        procs.run(["umount", str(root / "usr")])
    assert (root / "etc" / "vmbake-target").read_text() == "inside\n"
    assert not Path("/etc/vmbake-target").exists()
    assert (status, out) == (0, ["inside"])
