"""ISO retrieval: real HTTP servers on loopback (tests/helpers/origin.py), real files, real locks."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from tests.helpers.origin import Route, origin_server
from vmbake.checksums import Checksum, find_in_sums, parse_checksum, parse_sums
from vmbake.config.qemu import QemuConfig
from vmbake.errors import StepError, VmbakeError
from vmbake.locks import FileLock
from vmbake.state import BuildContext, Options
from vmbake.steps.download_iso import StepDownload
from vmbake.ui import BuildUi, Ui

DATA = bytes(range(256)) * 1024  # 256 KiB
SHA256 = hashlib.sha256(DATA).hexdigest()
CHECKSUM = f"sha256:{SHA256}"


class Bars:
    """Records progress bars instead of drawing them (the Ui draws nothing when not on a terminal)."""

    def __init__(self) -> None:
        self.done: list[tuple[str, float | None, float]] = []

    @contextlib.contextmanager
    def __call__(self, name: str, total: float | None) -> Iterator[Any]:
        bar = _Bar()
        yield bar
        self.done.append((name, total, bar.completed))


class _Bar:
    completed = 0.0

    def advance(self, amount: float) -> None:
        self.completed += amount

    def update(self, completed: float, total: float | None = None) -> None:
        self.completed = completed


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("PACKER_CACHE_DIR", str(path))
    monkeypatch.setenv("VMBAKE_DOWNLOAD_TIMEOUT", "5s")
    return path


def _ui() -> tuple[BuildUi, io.StringIO]:
    out = io.StringIO()
    return BuildUi(Ui(out=out, err=out, color=False), "qemu"), out


def _retrieve(urls: list[str], checksum: str = CHECKSUM, **kw: Any) -> tuple[Path, str, Bars]:
    from vmbake.iso import retrieve

    ui, out = _ui()
    bars = Bars()
    path = retrieve(urls, checksum, ui, progress=bars, **kw)
    return path, out.getvalue(), bars


# -- checksum forms --------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "algorithm"),
    [
        (f"sha256:{SHA256}", "sha256"),
        (f"SHA256:{SHA256.upper()}", "sha256"),
        (SHA256, "sha256"),
        ("md5:" + "a" * 32, "md5"),
        ("b" * 32, "md5"),
        ("sha1:" + "c" * 40, "sha1"),
        ("d" * 40, "sha1"),
        ("sha512:" + "e" * 128, "sha512"),
        ("f" * 128, "sha512"),
    ],
)
def test_parse_checksum_digests(text: str, algorithm: str) -> None:
    spec = parse_checksum(text)
    assert spec.checksum is not None and spec.checksum.algorithm == algorithm
    assert spec.checksum.digest == text.rpartition(":")[2].lower()


def test_parse_checksum_file_and_none() -> None:
    assert parse_checksum("file:https://x/SHA256SUMS").sums_source == "https://x/SHA256SUMS"
    assert parse_checksum("file:./SHA256SUMS").sums_source == "./SHA256SUMS"
    assert parse_checksum("none").is_none and parse_checksum("None").is_none


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "iso_checksum is empty"),
        ("sha257:" + "a" * 64, "unknown checksum type 'sha257'"),
        ("sha256:" + "a" * 40, "a sha256 checksum has 64 hex digits, not 40"),
        ("abc", "matches no known type"),
        ("sha256:" + "z" * 64, "not a hexadecimal checksum"),
        ("file:", "must be followed by"),
    ],
)
def test_parse_checksum_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_checksum(text)


def test_sums_files_gnu_bsd_and_lookup() -> None:
    text = (
        "-----BEGIN PGP SIGNED MESSAGE-----\n"
        f"{'1' * 64}  debian-12.5.0-amd64-netinst.iso\n"
        f"{'2' * 64} *./other.iso\n"
        f"SHA512 (bsd.iso) = {'3' * 128}\n"
        f"{'4' * 64}  sub/dir/nested.iso\n"
        "garbage line\n"
    )
    names = [name for name, _ in parse_sums(text)]
    assert names == ["debian-12.5.0-amd64-netinst.iso", "other.iso", "bsd.iso", "sub/dir/nested.iso"]
    assert find_in_sums(text, "other.iso", "S") == Checksum("sha256", "2" * 64)
    assert find_in_sums(text, "bsd.iso", "S") == Checksum("sha512", "3" * 128)
    assert find_in_sums(text, "nested.iso", "S") == Checksum("sha256", "4" * 64)
    with pytest.raises(ValueError, match=r"the checksum file S has no entry for 'missing\.iso'"):
        find_in_sums(text, "missing.iso", "S")


# -- downloads -------------------------------------------------------------------
def test_download_into_cache_with_packer_lines_and_progress(cache: Path) -> None:
    with origin_server({"/d/netinst.iso": Route(DATA)}) as origin:
        url = origin.url("/d/netinst.iso")
        path, out, bars = _retrieve([url])
        assert path == cache / (hashlib.sha1(CHECKSUM.encode()).hexdigest() + ".iso")
        assert path.read_bytes() == DATA
        assert out.splitlines() == [
            "==> qemu: Retrieving ISO",
            f"==> qemu: Trying {url}",
            f"==> qemu: Trying {url}?checksum=sha256%3A{SHA256}",
        ]
        assert bars.done == [("netinst.iso", len(DATA), len(DATA))]
        assert sorted(p.name for p in cache.iterdir()) == [path.name]  # no .part, .lock or .json left
        # A second build uses the cache (checked again, not downloaded again).
        again, _, bars2 = _retrieve([url])
        assert again == path and len(origin.gets("/d/netinst.iso")) == 1
        assert bars2.done == [("Checking netinst.iso", len(DATA), len(DATA))]


def test_resume_of_a_part_file(cache: Path) -> None:
    with origin_server({"/x.iso": Route(DATA)}) as origin:
        target = cache / (hashlib.sha1(CHECKSUM.encode()).hexdigest() + ".iso")
        cache.mkdir()
        (cache / (target.name + ".part")).write_bytes(DATA[:100_000])
        path, out, _ = _retrieve([origin.url("/x.iso")])
        assert path.read_bytes() == DATA
        assert [s.range for s in origin.gets("/x.iso")] == ["bytes=100000-"]
        assert "Resuming download at 97.7 KiB" in out


def test_part_is_restarted_when_server_cannot_resume(cache: Path) -> None:
    with origin_server({"/x.iso": Route(DATA, ranges=False)}) as origin:
        target = cache / (hashlib.sha1(CHECKSUM.encode()).hexdigest() + ".iso")
        cache.mkdir()
        (cache / (target.name + ".part")).write_bytes(b"garbage" * 1000)
        path, out, _ = _retrieve([origin.url("/x.iso")])
        assert path.read_bytes() == DATA
        assert "starting the download again" in out


def test_interrupted_download_keeps_a_resumable_part_then_resumes(cache: Path) -> None:
    route = Route(DATA, cut_after=50_000)
    with origin_server({"/x.iso": route}) as origin:
        with pytest.raises(VmbakeError, match=r"connection closed after 48\.8 KiB of 256\.0 KiB") as info:
            _retrieve([origin.url("/x.iso")])
        assert "resumes" in (info.value.hint or "")
        parts = list(cache.glob("*.part"))
        assert len(parts) == 1 and parts[0].stat().st_size == 50_000
        assert not list(cache.glob("*.iso"))  # never a finished-looking file
        route.cut_after = None
        path, _, _ = _retrieve([origin.url("/x.iso")])
        assert path.read_bytes() == DATA
        assert origin.gets("/x.iso")[-1].range == "bytes=50000-"
        assert sorted(p.name for p in cache.iterdir()) == [path.name]


def test_interrupted_download_without_ranges_removes_the_part(cache: Path) -> None:
    with origin_server({"/x.iso": Route(DATA, ranges=False, cut_after=1000)}) as origin:
        with pytest.raises(VmbakeError, match="connection closed"):
            _retrieve([origin.url("/x.iso")])
        assert list(cache.iterdir()) == []


def test_mismatch_removes_file_and_shows_both_sums(cache: Path) -> None:
    wrong = "sha256:" + "0" * 64
    with origin_server({"/x.iso": Route(DATA)}) as origin:
        with pytest.raises(VmbakeError) as info:
            _retrieve([origin.url("/x.iso")], wrong)
        message = str(info.value)
        assert f"expected sha256:{'0' * 64}" in message and f"found sha256:{SHA256}" in message
        assert list(cache.iterdir()) == []


def test_404_then_next_url(cache: Path) -> None:
    with origin_server({"/good.iso": Route(DATA)}) as origin:
        bad, good = origin.url("/gone.iso"), origin.url("/good.iso")
        path, out, _ = _retrieve([bad, good])
        assert path.read_bytes() == DATA
        assert f"==> qemu: Download failed {bad}: HTTP 404 Not Found" in out.splitlines()
        assert f"==> qemu: Trying {good}" in out


def test_all_urls_failing_lists_each(cache: Path) -> None:
    with (
        origin_server({}) as origin,
        pytest.raises(VmbakeError, match=r"all 2 URLs failed:\n  \* http://.*/a.iso: HTTP 404"),
    ):
        _retrieve([origin.url("/a.iso"), origin.url("/b.iso")])
    with pytest.raises(VmbakeError, match="HTTP 404") as one, origin_server({}) as origin:
        _retrieve([origin.url("/a.iso")])
    assert "check the URL" in (one.value.hint or "")


@pytest.mark.parametrize(
    "route", [Route(DATA, stall_after=1000), Route(DATA, trickle=0.05), Route(DATA, hang=True)]
)
def test_stalled_or_trickling_server_times_out(
    cache: Path, monkeypatch: pytest.MonkeyPatch, route: Route
) -> None:
    monkeypatch.setenv("VMBAKE_DOWNLOAD_TIMEOUT", "300ms")
    with origin_server({"/x.iso": route}) as origin:
        started = time.monotonic()
        with pytest.raises(
            VmbakeError,
            match=r"no data received for 0.3s|less than 1 KiB received in 0.3s|no (complete )?answer .*within 0.3s",
        ):
            _retrieve([origin.url("/x.iso")])
        assert time.monotonic() - started < 2


def test_checksum_from_sums_file_over_http_and_local(cache: Path, tmp_path: Path) -> None:
    sums = f"{'9' * 64}  other.iso\n{SHA256}  netinst.iso\n".encode()
    (tmp_path / "SHA256SUMS").write_bytes(sums)
    with origin_server(
        {"/r/netinst.iso": Route(DATA), "/r/SHA256SUMS": Route(sums), "/r/OTHERSUMS": Route(sums[:80])}
    ) as origin:
        spec = f"file:{origin.url('/r/SHA256SUMS')}"
        path, out, _ = _retrieve([origin.url("/r/netinst.iso")], spec)
        assert path.read_bytes() == DATA
        assert path.name == hashlib.sha1(spec.encode()).hexdigest() + ".iso"
        assert "?checksum=file%3Ahttp%3A%2F%2F127.0.0.1" in out
        path2, _, _ = _retrieve([origin.url("/r/netinst.iso")], f"file:{tmp_path / 'SHA256SUMS'}")
        assert path2.read_bytes() == DATA
        with pytest.raises(VmbakeError, match=r"cannot read the checksum file: .*/r/NOSUMS: HTTP 404"):
            _retrieve([origin.url("/r/netinst.iso")], f"file:{origin.url('/r/NOSUMS')}")
        with pytest.raises(VmbakeError, match=r"has no entry for 'netinst\.iso'"):
            _retrieve([origin.url("/r/netinst.iso")], f"file:{origin.url('/r/OTHERSUMS')}")


def test_local_path_is_checked_and_used_in_place(tmp_path: Path, cache: Path) -> None:
    iso = tmp_path / "local.iso"
    iso.write_bytes(DATA)
    path, out, bars = _retrieve([str(iso)])
    assert path == iso and not cache.exists()
    assert f"==> qemu: Trying {iso}?checksum=sha256%3A{SHA256}" in out
    assert bars.done == [("Checking local.iso", len(DATA), len(DATA))]
    assert _retrieve([f"file://{iso}"])[0] == iso
    with pytest.raises(VmbakeError, match=f"expected sha256:{'0' * 64}, found sha256:{SHA256}"):
        _retrieve([str(iso)], "sha256:" + "0" * 64)
    assert iso.exists()  # a user's own file is never deleted
    with pytest.raises(VmbakeError, match="no such file"):
        _retrieve([str(tmp_path / "missing.iso")])


def test_checksum_none_warns_and_names_cache_by_url(cache: Path) -> None:
    with origin_server({"/x.iso": Route(DATA)}) as origin:
        url = origin.url("/x.iso")
        path, out, _ = _retrieve([url], "none")
        assert path.name == hashlib.sha1(url.encode()).hexdigest() + ".iso"
        assert "==> qemu: Warning: iso_checksum is 'none'" in out
        assert out.splitlines().count(f"==> qemu: Trying {url}") == 2


def test_target_path_file_and_directory(cache: Path, tmp_path: Path) -> None:
    with origin_server({"/x.iso": Route(DATA)}) as origin:
        exact = tmp_path / "isos" / "debian.iso"
        assert _retrieve([origin.url("/x.iso")], target_path=str(exact))[0] == exact
        folder = tmp_path / "isodir"
        path = _retrieve([origin.url("/x.iso")], target_path=str(folder), extension="img")[0]
        assert path.parent == folder and path.suffix == ".img"


def test_lock_makes_a_second_writer_wait(cache: Path) -> None:
    with origin_server({"/x.iso": Route(DATA)}) as origin:
        cache.mkdir()
        target = cache / (hashlib.sha1(CHECKSUM.encode()).hexdigest() + ".iso")
        held = FileLock(target.with_name(target.name + ".lock"))
        assert held.try_acquire()
        result: list[Path] = []
        ui, out = _ui()

        def build() -> None:
            from vmbake.iso import retrieve

            result.append(retrieve([origin.url("/x.iso")], CHECKSUM, ui, progress=Bars()))

        worker = threading.Thread(target=build)
        worker.start()
        deadline = time.monotonic() + 5
        while "Another vmbake is fetching" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        said = f"Another vmbake is fetching {target.name}: the lock is held by vmbake process {os.getpid()}, for "
        assert said in out.getvalue()
        assert origin.gets("/x.iso") == []  # nothing written while the lock is held
        held.release()
        worker.join(5)
        assert result == [target] and target.read_bytes() == DATA


def test_concurrent_builds_download_once(cache: Path) -> None:
    with origin_server({"/x.iso": Route(DATA)}) as origin:
        results: list[Path] = []
        threads = [
            threading.Thread(target=lambda: results.append(_retrieve([origin.url("/x.iso")])[0]))
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert len(results) == 3 and len(set(results)) == 1
        assert len(origin.gets("/x.iso")) == 1


# -- the step ----------------------------------------------------------------------
def _ctx(config: QemuConfig) -> tuple[BuildContext, io.StringIO]:
    ui, out = _ui()
    return BuildContext("qemu", "qemu", config, cast(Any, None), ui, Options()), out


def test_step_sets_iso_path_and_names_itself_on_error(cache: Path, tmp_path: Path) -> None:
    iso = tmp_path / "a.iso"
    iso.write_bytes(DATA)
    ctx, _ = _ctx(QemuConfig(iso_urls=[str(tmp_path / "missing.iso"), str(iso)], iso_checksum=CHECKSUM))
    StepDownload().run(ctx)
    assert ctx.state.iso_path == iso
    bad, _ = _ctx(QemuConfig(iso_url=str(iso), iso_checksum="md5:" + "0" * 32))
    with pytest.raises(StepError, match=r"^StepDownload: error downloading ISO: checksum mismatch"):
        StepDownload().run(bad)


def test_step_skips_debian_netboot() -> None:
    ctx, out = _ctx(QemuConfig(iso_source="debian-netboot", suite="bookworm"))
    StepDownload().run(ctx)
    assert ctx.state.iso_path is None and out.getvalue() == ""


# -- helpers for other downloads (the netboot installer files) ---------------------------
def test_fetch_checked_with_a_bare_sha256_and_fetch_bytes(tmp_path: Path) -> None:
    from vmbake.fetch import fetch_bytes, fetch_checked

    with origin_server({"/linux": Route(DATA), "/SHA256SUMS": Route(b"abc\n")}) as origin:
        dest = tmp_path / "netboot" / "linux"
        assert fetch_checked(origin.url("/linux"), dest, SHA256) == dest
        assert dest.read_bytes() == DATA
        assert fetch_checked(origin.url("/linux"), dest, SHA256) == dest  # cached: no second GET
        assert len(origin.gets("/linux")) == 1
        with pytest.raises(VmbakeError, match="bad checksum"):
            fetch_checked(origin.url("/linux"), dest, "xyz")
        assert fetch_bytes(origin.url("/SHA256SUMS")) == b"abc\n"
        with pytest.raises(VmbakeError, match="larger than"):
            fetch_bytes(origin.url("/linux"), max_bytes=1000)
        with pytest.raises(VmbakeError, match="HTTP 404"):
            fetch_bytes(origin.url("/nope"))
    (tmp_path / "local").write_bytes(b"x")
    assert fetch_bytes(str(tmp_path / "local")) == b"x" == fetch_bytes(f"file://{tmp_path / 'local'}")


def test_complete_part_is_used_when_server_says_range_not_satisfiable(cache: Path) -> None:
    with origin_server({"/x.iso": Route(DATA)}) as origin:
        cache.mkdir()
        target = cache / (hashlib.sha1(CHECKSUM.encode()).hexdigest() + ".iso")
        (cache / (target.name + ".part")).write_bytes(DATA)
        (cache / (target.name + ".part.json")).write_text('{"url": "x", "validator": ""}')
        path, _, _ = _retrieve([origin.url("/x.iso")])
        assert path == target and path.read_bytes() == DATA
        assert sorted(p.name for p in cache.iterdir()) == [target.name]
        assert [s.range for s in origin.gets("/x.iso")] == [f"bytes={len(DATA)}-"]


def test_cancel_mid_download_keeps_a_resumable_part_and_frees_the_lock(cache: Path) -> None:
    from vmbake.errors import BuildCancelled
    from vmbake.iso import retrieve

    cancel = threading.Event()

    class CancellingBar(_Bar):
        def advance(self, amount: float) -> None:
            super().advance(amount)
            cancel.set()  # as Ctrl-C would, after the first block

    @contextlib.contextmanager
    def progress(name: str, total: float | None) -> Iterator[Any]:
        yield CancellingBar()

    with origin_server({"/x.iso": Route(DATA)}) as origin:
        ui, _ = _ui()
        with pytest.raises(BuildCancelled):
            retrieve([origin.url("/x.iso")], CHECKSUM, ui, progress=progress, cancel=cancel)
        names = sorted(p.name for p in cache.iterdir())
        assert [n.rsplit(".", 1)[-1] for n in names] == ["part", "json"]  # resumable, no lock, no .iso
        path, _, _ = _retrieve([origin.url("/x.iso")])
        assert path.read_bytes() == DATA
