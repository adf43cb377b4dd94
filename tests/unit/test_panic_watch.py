"""The console watch that fails a build at the guest kernel's panic (vmbake.vmwatch.PanicWatch).

A real panicking guest is in tests/integration/test_qemu_build.py; these feed the console log by hand."""

from __future__ import annotations

from pathlib import Path

from vmbake.vmwatch import PanicWatch, panic_failure

PANIC = b"[    2.07] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\r\n"


def feed(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def test_a_panic_line_is_seen_with_its_reason(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    watch = PanicWatch(log)
    assert watch.poll() is None  # no log yet
    feed(log, b"[    1.00] Run /init as init process\r\n" * 50)
    assert watch.poll() is None
    feed(log, PANIC)
    assert watch.poll() == "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"


def test_a_panic_line_split_across_polls_keeps_its_reason(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    watch = PanicWatch(log)
    feed(log, b"boot\r\n" + PANIC[:30])
    assert watch.poll() is None  # "Kernel panic - no" is not the line yet
    feed(log, PANIC[30:50])
    assert watch.poll() is None  # the line has begun: its reason may still come
    feed(log, PANIC[50:])
    assert watch.poll() == "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"


def test_a_panic_line_whose_end_never_comes_is_reported_at_the_next_poll(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    watch = PanicWatch(log)
    feed(log, b"Kernel panic - not syncing: Attempted to kill init!")
    assert watch.poll() is None
    assert watch.poll() == "Kernel panic - not syncing: Attempted to kill init!"


def test_other_mentions_of_panic_are_not_a_panic(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    watch = PanicWatch(log)
    feed(
        log,
        b"kernel.panic = 10\r\nsysctl: kernel panic on oops set\r\n[ OK ] Started panic-notify.service\r\n",
    )
    assert watch.poll() is None
    assert watch.poll() is None


def test_the_failure_quotes_the_console_before_the_panic(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    feed(log, b"".join(b"line %d\r\n" % i for i in range(20)) + PANIC + b"[    2.08]  dump_stack+0x44\r\n")
    message, hint = panic_failure("Kernel panic - not syncing: VFS", log)
    assert message == "the guest's kernel panicked: Kernel panic - not syncing: VFS"
    assert hint.endswith("\n".join(f"line {i}" for i in range(12, 20)))
    assert "dump_stack" not in hint
    assert panic_failure("Kernel panic", None)[1] == "the VM will not boot on from there"
