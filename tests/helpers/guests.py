"""A tiny guest for tests: the Debian installer's netboot kernel plus a one-program initramfs.

The program (`/init`) is a hand-made static x86-64 ELF of about 200 bytes: it writes a marker line to
the console (the serial port, with console=ttyS0), syncs and powers the machine off. It needs no compiler,
no busybox and no root: the initramfs is a newc cpio archive written here, /dev/console node included.
Boot it with `-kernel LINUX -initrd INITRD -append "console=ttyS0 ..."`; QEMU exits when it powers off.
"""

from __future__ import annotations

import struct
from pathlib import Path

DI_KERNEL = Path("/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/linux")
DEFAULT_MARKER = "VMBAKE-TINY-GUEST-OK"
KERNEL_APPEND = "console=ttyS0 panic=-1 quiet loglevel=3"

_LOAD_ADDR = 0x400000
_ELF_HEADER_SIZE = 64
_PROGRAM_HEADER_SIZE = 56


def _init_code(message: bytes) -> bytes:
    """Machine code: write(1, message), sync(), reboot(POWER_OFF), then spin."""
    code = bytearray()
    code += b"\xb8\x01\x00\x00\x00"  # mov eax, 1 (write)
    code += b"\xbf\x01\x00\x00\x00"  # mov edi, 1 (stdout: /dev/console)
    code += b"\x48\x8d\x35\x26\x00\x00\x00"  # lea rsi, [rip+0x26] (the message after the code)
    code += b"\xba" + struct.pack("<I", len(message))  # mov edx, len
    code += b"\x0f\x05"  # syscall
    code += b"\xb8\xa2\x00\x00\x00\x0f\x05"  # mov eax, 162 (sync); syscall
    code += b"\xb8\xa9\x00\x00\x00"  # mov eax, 169 (reboot)
    code += b"\xbf\xad\xde\xe1\xfe"  # mov edi, LINUX_REBOOT_MAGIC1
    code += b"\xbe\x69\x19\x12\x28"  # mov esi, LINUX_REBOOT_MAGIC2
    code += b"\xba\xdc\xfe\x21\x43"  # mov edx, LINUX_REBOOT_CMD_POWER_OFF
    code += b"\x0f\x05"  # syscall
    code += b"\xeb\xfe"  # jmp . (if power-off failed, the test's timeout reports it)
    assert len(code) == 0x37, "the lea offset above assumes 0x37 bytes of code"
    return bytes(code) + message


def init_elf(marker: str = DEFAULT_MARKER) -> bytes:
    """A static x86-64 Linux ELF that prints `marker` on its own line and powers off."""
    body = _init_code(f"\n{marker}\n".encode())
    offset = _ELF_HEADER_SIZE + _PROGRAM_HEADER_SIZE
    entry = _LOAD_ADDR + offset
    size = offset + len(body)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, version 1, SysV
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        2,  # ET_EXEC
        0x3E,  # EM_X86_64
        1,
        entry,
        _ELF_HEADER_SIZE,  # program headers right after this header
        0,  # no section headers
        0,
        _ELF_HEADER_SIZE,
        _PROGRAM_HEADER_SIZE,
        1,
        0,
        0,
        0,
    )
    program = struct.pack("<IIQQQQQQ", 1, 5, 0, _LOAD_ADDR, _LOAD_ADDR, size, size, 0x1000)  # PT_LOAD, R+X
    return header + program + body


def _newc_entry(
    name: str, mode: int, data: bytes = b"", ino: int = 1, rdev: tuple[int, int] = (0, 0)
) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
    header = b"070701" + b"".join(f"{v:08x}".encode() for v in fields)
    out = header + encoded
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def initramfs(marker: str = DEFAULT_MARKER) -> bytes:
    """A newc cpio archive with /dev/console and /init (uncompressed; the kernel accepts that)."""
    archive = _newc_entry("dev", 0o040755, ino=1)
    archive += _newc_entry("dev/console", 0o020600, ino=2, rdev=(5, 1))
    archive += _newc_entry("init", 0o100755, init_elf(marker), ino=3)
    archive += _newc_entry("TRAILER!!!", 0, ino=0)
    return archive + b"\0" * (-len(archive) % 512)


def write_initramfs(path: Path, marker: str = DEFAULT_MARKER) -> Path:
    path.write_bytes(initramfs(marker))
    return path


def tiny_guest_qemuargs(
    initrd: Path, *, kernel: Path = DI_KERNEL, append: str = KERNEL_APPEND
) -> list[list[str]]:
    """qemuargs that boot the tiny guest directly (no bootloader on the disk image is needed)."""
    return [["-kernel", str(kernel)], ["-initrd", str(initrd)], ["-append", append]]


def make_data_disk(path: Path, *, text_mib: int = 2, zero_mib: int = 6) -> Path:
    """A qcow2 whose clusters are all allocated: compressible text, then zeros written out (-S 0).

    Compaction drops the zero clusters and compression shrinks the text, so a test can see both."""
    from vmbake import procs

    raw = path.with_suffix(".raw")
    text = b"".join(b"line %d of a very compressible log file\n" % i for i in range(text_mib * 30_000))
    raw.write_bytes(text[: text_mib << 20].ljust(text_mib << 20, b".") + bytes(zero_mib << 20))
    procs.run(["qemu-img", "convert", "-S", "0", "-f", "raw", "-O", "qcow2", str(raw), str(path)])
    raw.unlink()
    return path


def tiny_guest_template(
    disk_image: Path, initrd: Path, output_dir: Path, **extra: object
) -> dict[str, object]:
    """A Packer JSON template: boot the tiny guest from a disk_image with no communicator."""
    builder: dict[str, object] = {
        "type": "qemu",
        "iso_url": str(disk_image),
        "iso_checksum": "none",
        "disk_image": True,
        "communicator": "none",
        "headless": True,
        "accelerator": "tcg",
        "memory": 256,
        "disk_size": "64M",
        "vm_name": "tiny.qcow2",
        "output_directory": str(output_dir),
        "shutdown_timeout": "3m",
        "disk_compression": True,
        "qemuargs": tiny_guest_qemuargs(initrd),
    }
    builder.update(extra)
    return {"builders": [builder]}
