"""Several vmbake processes on one cache directory: the locks and the .deb cache, with real processes.

Each test starts separate Python processes (not threads: flock is per open file, and the point is two
processes) that use vmbake.locks and vmbake.bootstrap.cache the way builds do. No guest, no network;
the .debs are small files with known content, standing in for what mmdebstrap's sync-out hands over.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from vmbake.bootstrap import cache as debcache
from vmbake.errors import BuildCancelled
from vmbake.locks import FileLock, wait_saying

pytestmark = pytest.mark.timeout(120)

HOLDER = """
import sys
from pathlib import Path
from vmbake.locks import FileLock
lock = FileLock(Path(sys.argv[1]), owner="build 'a'")
assert lock.try_acquire()
print("held", flush=True)
sys.stdin.readline()
lock.release()
print("released", flush=True)
"""

WAITER = """
import sys, time
from pathlib import Path
from vmbake.locks import FileLock, wait_saying
lock = FileLock(Path(sys.argv[1]), owner="build 'b'")
wait_saying(lock, lambda line: print(line, flush=True), "Waiting for the test lock")
print("got", flush=True)
lock.release()
"""

# One build's use of the .deb cache: take it (waiting for the fill lock if the cache is empty), "download"
# the .debs named on the command line into a private used dir while holding it a moment, then absorb.
BUILD = """
import sys, time
from pathlib import Path
from vmbake.bootstrap import cache as debcache
from vmbake.errors import BuildCancelled
from vmbake.locks import FileLock, wait_saying
cache_dir, used, owner, hold = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])
names = sys.argv[5:]
used.mkdir(parents=True)
with debcache.use_cache(cache_dir, lambda line: print(line, flush=True), owner=owner, suite="bookworm") as view:
    print("start", len(view.before), flush=True)
    for name in names:
        (used / name).write_bytes(name.encode() * 1000)
    time.sleep(hold)
    stats = debcache.absorb(used, cache_dir, view.before)
print("stats", stats.hits, stats.downloaded, flush=True)
"""


def python(code: str, *args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def finish(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


def test_a_waiter_names_the_holder_and_gets_the_lock_once_it_is_released(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = python(HOLDER, str(path), stdin=subprocess.PIPE)
    assert read_line(holder) == "held"
    waiter = python(WAITER, str(path))
    line = read_line(waiter)
    assert line.startswith(
        f"Waiting for the test lock: the lock is held by vmbake process {holder.pid} (build 'a'), for "
    )
    assert line.endswith("; waiting...")
    time.sleep(0.5)
    assert waiter.poll() is None  # still waiting: the holder has not let go
    assert holder.stdin is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert finish(holder).strip() == "released"
    rest = finish(waiter, timeout=10).splitlines()
    assert rest[0].startswith("Got the lock after ") and rest[1] == "got"
    assert not path.exists()  # the last holder removes the lock file


def test_a_killed_holder_lets_the_waiter_through(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = python(HOLDER, str(path), stdin=subprocess.PIPE)
    assert read_line(holder) == "held"
    waiter = python(WAITER, str(path))
    assert f"vmbake process {holder.pid}" in read_line(waiter)
    holder.send_signal(signal.SIGKILL)  # no release: the kernel drops the flock with the process
    holder.wait(10)
    assert finish(waiter, timeout=10).splitlines()[-1] == "got"


def test_two_builds_on_an_empty_cache_download_each_deb_once(tmp_path: Path) -> None:
    cache_dir = debcache.deb_cache_dir("bookworm", "http://deb.debian.org/debian", tmp_path / "cache")
    names = [f"pkg{i}_1.0_amd64.deb" for i in range(40)]
    first = python(BUILD, str(cache_dir), str(tmp_path / "used-a"), "build 'a'", "1.5", *names)
    assert read_line(first) == "start 0"  # the fill lock is held from here to the end of the block
    second = python(BUILD, str(cache_dir), str(tmp_path / "used-b"), "build 'b'", "0", *names)
    waited = read_line(second)
    assert waited.startswith(
        "The .deb cache of bookworm (amd64) is empty and another build is filling it: "
        f"the lock is held by vmbake process {first.pid} (build 'a'), for "
    )
    assert finish(first).splitlines()[-1] == "stats 0 40"
    out = finish(second).splitlines()
    assert out[-2:] == ["start 40", "stats 40 0"]  # every package from the cache, none downloaded
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted(names)
    assert all((cache_dir / n).read_bytes() == n.encode() * 1000 for n in names)
    assert [p.name for p in cache_dir.parent.iterdir() if p != cache_dir] == [".scratch"]
    assert list(debcache.scratch_dir(cache_dir).iterdir()) == []


def test_builds_adding_debs_never_disturb_another_builds_read(tmp_path: Path) -> None:
    """The race that broke builds: mmdebstrap's sync-in runs tar over the directory it is given, and tar
    fails when a file in it is added, removed or replaced meanwhile. Two writers absorb overlapping sets
    of .debs into a warm cache while a reader, over and over, takes its snapshot and tars it as
    mmdebstrap does: every tar must succeed, and the cache ends with each .deb once, whole."""
    cache_dir = debcache.deb_cache_dir("bookworm", "http://deb.debian.org/debian", tmp_path / "cache")
    cache_dir.mkdir(parents=True)
    (cache_dir / "base_1_amd64.deb").write_bytes(b"base" * 1000)  # warm: no fill lock, all at once
    names = [f"pkg{i}_1.0_amd64.deb" for i in range(300)]
    writers = [
        python(
            BUILD,
            str(cache_dir),
            str(tmp_path / f"used-{i}"),
            f"build {i}",
            "0",
            *names[i * 100 : i * 100 + 200],
        )
        for i in range(2)
    ]
    tars = 0
    while any(w.poll() is None for w in writers) or tars < 5:
        with debcache.use_cache(cache_dir, None) as view:
            # mmdebstrap's own tar command for sync-in (its listener's "mktac")
            tar = subprocess.run(
                ["tar", "--numeric-owner", "--xattrs", "--format=pax",
                 "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
                 "--directory", str(view.snapshot), "--create", "--file", "-", "."],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
            )  # fmt: skip
            assert tar.returncode == 0, tar.stderr
        tars += 1
    for writer in writers:
        finish(writer)
    cached = sorted(p.name for p in cache_dir.iterdir())
    assert cached == sorted(["base_1_amd64.deb", *names])
    assert all((cache_dir / n).read_bytes() == n.encode() * 1000 for n in names)
    assert list(debcache.scratch_dir(cache_dir).iterdir()) == []
    assert not any(p.name.endswith(".lock") for p in cache_dir.parent.iterdir())


def test_scratch_left_by_a_killed_build_is_swept(tmp_path: Path) -> None:
    cache_dir = debcache.deb_cache_dir("bookworm", "http://deb.debian.org/debian", tmp_path / "cache")
    scratch = debcache.scratch_dir(cache_dir)
    (scratch / "snapshot-old").mkdir(parents=True)
    (scratch / "incoming-x.deb-old").write_bytes(b"half")
    (scratch / "snapshot-young").mkdir()
    day_ago = time.time() - debcache.STALE_SCRATCH_SECONDS - 60
    for name in ("snapshot-old", "incoming-x.deb-old"):
        os.utime(scratch / name, (day_ago, day_ago))
    debcache.sweep_scratch(cache_dir)
    assert sorted(p.name for p in scratch.iterdir()) == ["snapshot-young"]  # a running build's stays


def test_a_cancelled_wait_ends_at_once_and_an_unreadable_record_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = python(HOLDER, str(path), stdin=subprocess.PIPE)
    assert read_line(holder) == "held"
    path.write_text("not a record")  # as an older vmbake left it: the waiter still says something
    said: list[str] = []
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(BuildCancelled):
        wait_saying(FileLock(path), said.append, "Waiting", cancel=cancel)
    assert time.monotonic() - started < 3
    assert said == ["Waiting: the lock is held by another vmbake process; waiting..."]
    holder.kill()
    holder.communicate(timeout=10)


def test_a_build_of_another_architecture_does_not_wait_for_the_fill(tmp_path: Path) -> None:
    cache_dir = debcache.deb_cache_dir("trixie", "http://deb.debian.org/debian", tmp_path / "cache")
    cache_dir.mkdir(parents=True)
    (cache_dir / "tzdata_1_all.deb").write_bytes(b"all")  # shared by both, but no amd64 or arm64 package
    holder = python(BUILD, str(cache_dir), str(tmp_path / "used-a"), "build 'a'", "30", "x_1_amd64.deb")
    assert read_line(holder) == "start 1"  # holds the amd64 fill lock for 30 seconds
    said: list[str] = []
    started = time.monotonic()
    with debcache.use_cache(cache_dir, said.append, architecture="arm64") as view:
        assert view.before == {"tzdata_1_all.deb": 3}
    assert said == [] and time.monotonic() - started < 10
    holder.kill()
    holder.communicate(timeout=10)
