"""The preseed appended to the initrd: a newc cpio writer checked by the real cpio tool, and the gzip members."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmbake import procs
from vmbake.errors import VmbakeError
from vmbake.installer.preseed_inject import append_preseed, newc_archive, read_newc

pytestmark = pytest.mark.host_tools("cpio")

PRESEED = b"d-i debian-installer/locale string en_US\nd-i debian-installer/exit/poweroff boolean true\n"


def test_cpio_tool_lists_and_extracts_our_archive(tmp_path: Path) -> None:
    archive = tmp_path / "a.cpio"
    archive.write_bytes(newc_archive([("preseed.cfg", PRESEED), ("/odd size.txt", b"x" * 5)]))
    listing = procs.run(["cpio", "-t", "--quiet", "-F", str(archive)]).stdout.split("\n")
    assert listing[:2] == ["preseed.cfg", "odd size.txt"]
    out = tmp_path / "out"
    out.mkdir()
    procs.run(["cpio", "-id", "--quiet", "-F", str(archive)], cwd=out)
    assert (out / "preseed.cfg").read_bytes() == PRESEED
    assert (out / "odd size.txt").read_bytes() == b"xxxxx"


def test_our_reader_reads_what_cpio_writes(tmp_path: Path) -> None:
    (tmp_path / "preseed.cfg").write_bytes(PRESEED)
    written = procs.run(
        ["sh", "-c", "printf 'preseed.cfg\\n' | cpio -o -H newc --quiet > out.cpio"], cwd=tmp_path
    )
    assert written.returncode == 0
    assert read_newc((tmp_path / "out.cpio").read_bytes()) == {"preseed.cfg": PRESEED}


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.text("abcxyz_.-", min_size=1, max_size=12).filter(lambda n: n not in ".."), st.binary()
    )
)
def test_round_trip(files: dict[str, bytes]) -> None:
    blob = newc_archive(files.items())
    assert len(blob) % 4 == 0
    assert read_newc(blob) == files


def _gzip_members(data: bytes) -> list[bytes]:
    members = []
    while data:
        d = zlib.decompressobj(wbits=31)
        members.append(d.decompress(data))
        data = d.unused_data.lstrip(b"\0")
    return members


def test_append_keeps_the_initrd_and_adds_one_member(tmp_path: Path) -> None:
    initrd = tmp_path / "initrd.gz"
    original = gzip.compress(newc_archive([("init", b"#!/bin/sh\n")]))
    initrd.write_bytes(original)
    preseed = tmp_path / "my.cfg"
    preseed.write_bytes(PRESEED)
    out = append_preseed(initrd, preseed, tmp_path / "initrd-preseed.gz")
    data = out.read_bytes()
    assert data.startswith(original)
    assert initrd.read_bytes() == original  # the source is never modified
    members = _gzip_members(data)
    assert len(members) == 2
    assert read_newc(members[1]) == {"preseed.cfg": PRESEED}


def test_missing_preseed_names_the_key(tmp_path: Path) -> None:
    initrd = tmp_path / "initrd.gz"
    initrd.write_bytes(b"x")
    with pytest.raises(VmbakeError) as err:
        append_preseed(initrd, tmp_path / "nope.cfg", tmp_path / "out.gz")
    assert "nope.cfg" in err.value.message
    assert "preseed_file" in (err.value.hint or "")
    assert not (tmp_path / "out.gz").exists()
