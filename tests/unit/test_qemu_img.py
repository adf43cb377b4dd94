"""qemu-img: exact argv for create/convert/resize, and real qemu-img runs on small image files."""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path

import pytest

from vmbake import procs, qemu_img
from vmbake.errors import VmbakeError
from vmbake.qmp import Qmp, QmpError
from vmbake.ui import BuildUi, Ui

pytestmark = pytest.mark.host_tools("qemu-img")


def test_create_argv() -> None:
    assert qemu_img.create_argv("out/vm", "5120M", extra=["-o", "preallocation=metadata"]) == [
        "qemu-img", "create", "-f", "qcow2", "-o", "preallocation=metadata", "out/vm", "5120M",
    ]  # fmt: skip


def test_create_argv_with_backing_file() -> None:
    assert qemu_img.create_argv("out/vm", "40960M", backing_file="/c/base.qcow2") == [
        "qemu-img", "create", "-f", "qcow2", "-b", "/c/base.qcow2", "-F", "qcow2", "out/vm", "40960M",
    ]  # fmt: skip


def test_convert_argv_follows_packers_order() -> None:
    assert qemu_img.convert_argv("a", "b", compress=True, compression_type="zstd", extra=["-m", "16"]) == [
        "qemu-img", "convert", "-c", "-m", "16", "-o", "compression_type=zstd", "-O", "qcow2", "a", "b",
    ]  # fmt: skip
    assert qemu_img.convert_argv("a", "b", fmt="raw", progress=True) == [
        "qemu-img", "convert", "-p", "-O", "raw", "a", "b",
    ]  # fmt: skip


def test_compression_type_needs_compression_and_qcow2() -> None:
    assert "-o" not in qemu_img.convert_argv("a", "b", compression_type="zstd")
    assert "-o" not in qemu_img.convert_argv("a", "b", fmt="raw", compress=True, compression_type="zstd")


def test_resize_argv() -> None:
    assert qemu_img.resize_argv("out/vm", "10G", extra=["--shrink"]) == [
        "qemu-img", "resize", "-f", "qcow2", "--shrink", "out/vm", "10G",
    ]  # fmt: skip


def info(path: Path) -> dict[str, object]:
    out = procs.run(["qemu-img", "info", "--output=json", "-U", str(path)]).stdout
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


@pytest.fixture
def data_image(tmp_path: Path) -> Path:
    """A qcow2 with 2 MiB of compressible text and 4 MiB of allocated zero clusters (-S 0)."""
    raw = tmp_path / "data.raw"
    text = b"".join(b"line %d of a very compressible log file\n" % i for i in range(50_000))
    raw.write_bytes(text[: 2 << 20].ljust(2 << 20, b".") + bytes(4 << 20))
    image = tmp_path / "data.qcow2"
    procs.run(["qemu-img", "convert", "-S", "0", "-O", "qcow2", str(raw), str(image)])
    return image


@pytest.mark.parametrize("kind", ["zstd", "zlib"])
def test_convert_in_place_compacts_and_compresses(data_image: Path, kind: str) -> None:
    if kind == "zstd" and not qemu_img.supports_zstd():
        pytest.skip("this qemu-img cannot write zstd clusters")
    before = data_image.stat().st_size
    qemu_img.convert(data_image, data_image, compress=True, compression_type=kind)
    after = data_image.stat().st_size
    assert after < before / 8, (before, after)
    assert info(data_image)["format-specific"]["data"]["compression-type"] == kind  # type: ignore[index]
    procs.run(["qemu-img", "check", str(data_image)])
    assert [p.name for p in data_image.parent.iterdir() if p.name.endswith(".convert")] == []
    assert data_image.stat().st_mode & 0o777 != 0o600  # not the temp file's private mode


def test_failed_convert_leaves_the_target_alone(tmp_path: Path) -> None:
    target = tmp_path / "disk.qcow2"
    target.write_bytes(b"keep me")
    with pytest.raises(VmbakeError):
        qemu_img.convert(tmp_path / "missing.qcow2", target)
    assert target.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk.qcow2"]


def test_supports_zstd_answers_and_is_cached() -> None:
    first = qemu_img.supports_zstd()
    started = time.monotonic()
    assert qemu_img.supports_zstd() is first
    assert time.monotonic() - started < 0.01


def test_resolve_compression() -> None:
    assert qemu_img.resolve_compression("zlib") == "zlib"
    assert qemu_img.resolve_compression("auto") == ("zstd" if qemu_img.supports_zstd() else "zlib")


class StopOnRetry(io.StringIO):
    """Build output that stops the lock holder once vmbake says it will retry: no timing guesses."""

    def __init__(self, holder: procs.Child) -> None:
        super().__init__()
        self.holder = holder

    def write(self, text: str) -> int:
        if "retrying" in text:
            self.holder.stop()
        return super().write(text)


def test_convert_retries_while_another_process_holds_the_write_lock(
    data_image: Path, tmp_path: Path, no_qemu_left: None
) -> None:
    """A QEMU with the image open (no guest: -machine none) holds the write lock; once it exits the
    conversion goes through. The retry pause is shortened for the test."""
    holder = lock_holder(data_image, tmp_path)
    out = StopOnRetry(holder)
    try:
        qemu_img.convert(
            data_image, tmp_path / "copy.qcow2", ui=BuildUi(Ui(out=out), "qemu"), retry_delay=0.2
        )
    finally:
        holder.stop()
    assert "==> qemu: Error getting file lock for conversion; retrying..." in out.getvalue()
    assert (tmp_path / "copy.qcow2").exists()


def test_lock_error_after_all_tries_says_so(data_image: Path, tmp_path: Path, no_qemu_left: None) -> None:
    holder = lock_holder(data_image, tmp_path)
    try:
        with pytest.raises(VmbakeError) as err:
            qemu_img.convert(data_image, tmp_path / "copy.qcow2", tries=1)
    finally:
        holder.stop()
    assert "exhausted retries" in str(err.value)
    assert not (tmp_path / "copy.qcow2").exists()


def lock_holder(image: Path, tmp_path: Path) -> procs.Child:
    """A QEMU with `image` open (no guest: -machine none), returned once it holds the image's write lock.

    QEMU greets on QMP only after it has opened its drives, so the wait does not touch the image: polling
    with qemu-img info instead could hold a lock at the moment QEMU starts and make it exit."""
    sock = tmp_path / "holder.qmp"
    holder = procs.spawn(
        ["qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none",
         "-drive", f"file={image},if=none,id=d0,format=qcow2", "-qmp", f"unix:{sock},server=on,wait=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        Qmp.connect(sock, timeout=60, alive=holder.running).close()
    except QmpError as err:
        holder.stop()
        said = holder.proc.stderr.read().decode(errors="replace") if holder.proc.stderr else ""
        raise AssertionError(f"the lock holder did not start: {err}: {said}") from None
    assert "lock" in procs.run(["qemu-img", "info", str(image)], check=False).stderr
    return holder
