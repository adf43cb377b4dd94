"""Test helpers for the installer-without-typing features: a netinst-like ISO, a signed Debian archive on
loopback made with a throwaway GPG key, and a marker HTTP server the guest's early_command calls.

Everything here is real: xorriso makes the ISO, gpg signs InRelease, the stdlib serves HTTP. Nothing is faked.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from vmbake import procs

NETBOOT_PACKAGE = "debian-installer-12-netboot-amd64"
NETBOOT_DIR = "usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64"

ISOLINUX_CFG = """\
default vesamenu.c32
prompt 0
timeout 0
include menu.cfg
"""
MENU_CFG = """\
menu hshift 4
include stdmenu.cfg
include gtk.cfg
include txt.cfg
"""
TXT_CFG = """\
label install
\tmenu label ^Install
\tkernel /install.amd/vmlinuz
\tappend vga=788 initrd=/install.amd/initrd.gz --- quiet
label expert
\tmenu label E^xpert install
\tkernel /install.amd/vmlinuz
\tappend priority=low vga=788 initrd=/install.amd/initrd.gz ---
"""
GTK_CFG = """\
label installgui
\tmenu label ^Graphical install
\tkernel /install.amd/vmlinuz
\tappend vga=788 initrd=/install.amd/gtk/initrd.gz --- quiet
"""
GRUB_CFG = """\
menuentry --hotkey=i 'Install' {
    set background_color=black
    linux    /install.amd/vmlinuz vga=788 --- quiet
    initrd   /install.amd/initrd.gz
}
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_netinst_iso(dest: Path, kernel: Path, initrd: Path, *, layout: str = "isolinux") -> Path:
    """A bootable ISO laid out like Debian's netinst: install.amd/{vmlinuz,initrd.gz} named by isolinux menus
    (layout 'isolinux'), by GRUB only ('grub'), by nothing ('bare'), or at unusual paths ('custom')."""
    root = dest.parent / (dest.stem + "-tree")
    (root / "isolinux").mkdir(parents=True)
    kdir = root / ("d-i" if layout == "custom" else "install.amd")
    kdir.mkdir()
    _place(kernel, kdir / "vmlinuz")
    _place(initrd, kdir / "initrd.gz")
    if layout in ("isolinux", "custom"):
        txt = TXT_CFG.replace("/install.amd/", "/d-i/") if layout == "custom" else TXT_CFG
        (kdir / "gtk").mkdir()
        (kdir / "gtk" / "initrd.gz").write_bytes(b"not the text-mode initrd")
        (root / "isolinux" / "isolinux.cfg").write_text(ISOLINUX_CFG)
        (root / "isolinux" / "menu.cfg").write_text(MENU_CFG)
        (root / "isolinux" / "stdmenu.cfg").write_text("menu background splash.png\n")
        (root / "isolinux" / "gtk.cfg").write_text(GTK_CFG.replace("/install.amd/", f"/{kdir.name}/"))
        (root / "isolinux" / "txt.cfg").write_text(txt)
    if layout == "grub":
        (root / "boot" / "grub").mkdir(parents=True)
        (root / "boot" / "grub" / "grub.cfg").write_text(GRUB_CFG)
    isolinux_bin = Path("/usr/lib/ISOLINUX/isolinux.bin")
    boot = []
    if isolinux_bin.is_file():
        (root / "isolinux" / "isolinux.bin").write_bytes(isolinux_bin.read_bytes())
        modules = Path("/usr/lib/syslinux/modules/bios")
        for module in ("ldlinux.c32", "vesamenu.c32", "libcom32.c32", "libutil.c32"):
            if (modules / module).is_file():
                (root / "isolinux" / module).write_bytes((modules / module).read_bytes())
        boot = [
            "-b",
            "isolinux/isolinux.bin",
            "-c",
            "isolinux/boot.cat",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
        ]
        boot += ["-boot-info-table"]
    procs.run(
        [
            "xorriso",
            "-as",
            "mkisofs",
            "-quiet",
            "-r",
            "-J",
            "-V",
            "Debian test netinst",
            *boot,
            "-o",
            str(dest),
            str(root),
        ]
    )
    return dest


def _place(src: Path, dest: Path) -> None:
    """Hard-link `src` to `dest` (the big d-i files), or copy it across filesystems."""
    try:
        os.link(src, dest)
    except OSError:
        dest.write_bytes(src.read_bytes())


# -- a Debian archive ------------------------------------------------------------------------------------


def _ar_member(name: str, data: bytes) -> bytes:
    header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()
    return header + data + (b"\n" if len(data) % 2 else b"")


def _tar(files: dict[str, bytes], mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_deb(
    dest: Path, package: str, version: str, files: dict[str, bytes], compression: str = "xz"
) -> Path:
    """A Debian binary package written by hand: ar of debian-binary, control.tar.gz, data.tar.<compression>."""
    control = f"Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.org>\n"
    control += "Description: test\n"
    suffix = {"xz": ".xz", "gz": ".gz", "none": ""}[compression]
    tar_mode = {"xz": "w:xz", "gz": "w:gz", "none": "w"}[compression]
    blob = b"!<arch>\n" + _ar_member("debian-binary", b"2.0\n")
    blob += _ar_member("control.tar.gz", _tar({"control": control.encode()}, "w:gz"))
    blob += _ar_member("data.tar" + suffix, _tar(files, tar_mode))
    dest.write_bytes(blob)
    return dest


@dataclass
class GpgKey:
    """A throwaway signing key in its own GNUPGHOME, and its public keyring for the verifier."""

    home: Path
    keyring: Path
    fingerprint: str = ""


def make_gpg_key(home: Path, name: str = "vmbake test archive") -> GpgKey:
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {"GNUPGHOME": str(home)}
    params = f"%no-protection\nKey-Type: eddsa\nKey-Curve: ed25519\nKey-Usage: sign\nName-Real: {name}\n"
    params += "Expire-Date: 0\n%commit\n"
    procs.run(["gpg", "--batch", "--gen-key"], input=params, env=env)
    keyring = home / "public.gpg"
    procs.run(["gpg", "--batch", "--yes", "--output", str(keyring), "--export"], env=env)
    stop_gpg_agent(home)
    return GpgKey(home, keyring)


def stop_gpg_agent(home: Path) -> None:
    """gpg starts an agent that outlives it; stop it so that no test leaves a process behind."""
    procs.run(["gpgconf", "--kill", "gpg-agent"], env={"GNUPGHOME": str(home)}, check=False)


@dataclass
class LoopArchive:
    root: Path
    suite: str
    key: GpgKey
    deb_path: Path | None = None
    packages_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def inrelease(self) -> Path:
        return self.root / "dists" / self.suite / "InRelease"


def make_archive(
    root: Path, suite: str, key: GpgKey, deb: Path, package: str = NETBOOT_PACKAGE, version: str = "1.0"
) -> LoopArchive:
    """dists/SUITE/{InRelease,main/binary-amd64/Packages.xz} and the .deb in pool/, signed with `key`."""
    pool = root / "pool" / "main" / "d" / "debian-installer-netboot-images"
    pool.mkdir(parents=True, exist_ok=True)
    deb_path = pool / f"{package}_{version}_all.deb"
    if deb.resolve() != deb_path.resolve():
        _place(deb, deb_path)
    data = deb_path.read_bytes()
    stanza = (
        f"Package: other-package\nVersion: 1\nFilename: pool/main/o/other.deb\nSize: 3\nSHA256: {'0' * 64}\n\n"
        f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
        f"Filename: {deb_path.relative_to(root)}\nSize: {len(data)}\nSHA256: {hashlib.sha256(data).hexdigest()}\n\n"
    )
    binary = root / "dists" / suite / "main" / "binary-amd64"
    binary.mkdir(parents=True, exist_ok=True)
    packages = binary / "Packages.xz"
    packages.write_bytes(lzma.compress(stanza.encode()))
    (binary / "Packages.gz").write_bytes(gzip.compress(stanza.encode()))
    archive = LoopArchive(root, suite, key, deb_path, packages)
    sign_release(archive)
    return archive


def sign_release(archive: LoopArchive, key: GpgKey | None = None) -> None:
    """(Re)write Release listing the current Packages files, and sign it as InRelease with `key`."""
    dists = archive.root / "dists" / archive.suite
    lines = []
    for path in sorted(dists.glob("main/binary-amd64/Packages*")):
        data = path.read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data):>8} {path.relative_to(dists)}")
    release = f"Origin: Test\nSuite: stable\nCodename: {archive.suite}\nDate: Sat, 01 Jan 2026 00:00:00 UTC\n"
    release += "Architectures: amd64\nComponents: main\nSHA256:\n" + "\n".join(lines) + "\n"
    (dists / "Release").write_text(release)
    signer = key or archive.key
    procs.run(
        [
            "gpg",
            "--batch",
            "--yes",
            "--clearsign",
            "--output",
            str(archive.inrelease),
            str(dists / "Release"),
        ],
        env={"GNUPGHOME": str(signer.home)},
    )
    stop_gpg_agent(signer.home)


# -- HTTP on loopback ------------------------------------------------------------------------------------


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        server: Any = self.server
        server.requests.append((time.monotonic(), self.path))


@contextmanager
def serve_directory(root: Path) -> Iterator[tuple[str, list[tuple[float, str]]]]:
    """Serve `root` on 127.0.0.1 (a free port); yields the base URL and the (time, path) requests seen."""

    def handler(*args: Any, **kwargs: Any) -> _QuietFiles:
        return _QuietFiles(*args, directory=str(root), **kwargs)

    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def gpg_available() -> bool:
    return subprocess.run(["sh", "-c", "command -v gpg"], capture_output=True, check=False).returncode == 0


# -- booting the installer through vmbake's steps ----------------------------------------------------------


def early_command_preseed(marker_url: str, *, bring_up_network: bool = False, poweroff: bool = False) -> str:
    """A preseed whose early_command fetches `marker_url`. From an initrd, d-i reads the preseed before
    it configures the network, so the command first brings up eth0 with SLIRP's fixed guest address."""
    command = f"wget -q -O /dev/null {marker_url}"
    if bring_up_network:
        command = (
            "modprobe virtio_pci; modprobe virtio_net;"
            " for i in 1 2 3 4 5 6 7 8 9 10; do ip link show eth0 >/dev/null 2>&1 && break; sleep 1; done;"
            " ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; " + command
        )
    if poweroff:  # stands for the end of an installation, which this archive cannot reach
        command += "; poweroff -f"
    return (
        "d-i debian-installer/locale string en_US\n"
        "d-i keyboard-configuration/xkb-keymap select us\n"
        f"d-i preseed/early_command string {command}\n"
        "d-i debian-installer/exit/poweroff boolean true\n"
    )


@dataclass
class InstallerRun:
    """What a boot through the steps showed: when the marker came, how the build ended, what it printed."""

    marker_after: float | None
    outcome: BaseException | None
    output: str
    argvs: list[list[str]]  # each QEMU command line the build used, in order
    requests: list[str]
    console: str = ""  # the end of the guest's serial console when Ctrl-C was pressed
    qemu_pids: list[int] = field(default_factory=list)  # every QEMU the build started

    def explain(self) -> str:
        """Everything a failed assertion should show."""
        return f"{self.output}\nrequests: {self.requests}\nconsole:\n{self.console}"


def boot_until_marker(
    tmp: Path,
    marker: str,
    *,
    timeout: float = 1500.0,
    iso_path: Path | None = None,
    until_restart: bool = False,
    **config: Any,
) -> InstallerRun:
    """Run vmbake's steps for a qemu build with `config` (installer keys, http_content ...) until the guest
    requests `marker` from the build's HTTP server, then press Ctrl-C (SIGINT to this process), as a user
    would, and let the steps unwind. With `until_restart`, Ctrl-C waits until the installer's QEMU has
    exited and vmbake has started the VM again from its disk. A watcher presses Ctrl-C at `timeout` too, so a guest that never calls
    back still ends the build; the caller asserts on `marker_after`."""
    import io as _io
    import signal

    from vmbake.config.qemu import QemuConfig
    from vmbake.errors import BuildCancelled
    from vmbake.state import BuildContext, Options
    from vmbake.steps import Step, run_steps
    from vmbake.steps.create_disk import StepCreateDisk
    from vmbake.steps.http_server import StepHTTPServer
    from vmbake.steps.installer_extract_kernel import StepExtractInstallerKernel
    from vmbake.steps.installer_fetch_netboot import StepFetchNetboot
    from vmbake.steps.installer_inject_preseed import StepInjectPreseed
    from vmbake.steps.installer_reboot import StepInstallerReboot
    from vmbake.steps.prepare_output_dir import StepPrepareOutputDir
    from vmbake.steps.run_qemu import StepRun
    from vmbake.ui import BuildUi, Ui

    class _Given(Step):
        """Stands for the build's setup (work dir) and StepDownload (the ISO is made by the test)."""

        name = "testSetup"

        def run(self, ctx: BuildContext) -> None:
            ctx.state.work_dir = tmp / "work"
            ctx.state.work_dir.mkdir(mode=0o700)
            ctx.state.iso_path = iso_path

    out = _io.StringIO()
    defaults: dict[str, Any] = {
        "accelerator": "tcg",
        "headless": True,
        "memory": 1024,
        "disk_size": 64 << 20,
        "communicator": "none",
        "output_directory": str(tmp / "output"),
        "ssh_timeout": 1200.0,
    }
    cfg = QemuConfig(**{**defaults, **config})
    ctx = BuildContext(
        name="qemu",
        builder_type="qemu",
        config=cfg,
        template=None,  # type: ignore[arg-type]
        ui=BuildUi(Ui(out=out, err=out), "qemu"),
        options=Options(),
    )
    started = time.monotonic()
    seen: dict[str, float] = {}
    servers: list[Any] = []
    console: dict[str, str] = {}
    done = threading.Event()

    argvs: list[list[str]] = []
    pids: list[int] = []

    def watch() -> None:
        while not done.wait(0.2):
            state = ctx.state
            if state.http_server is not None and not servers:
                servers.append(state.http_server)
            if state.qemu_argv and (not argvs or argvs[-1] is not state.qemu_argv):
                argvs.append(state.qemu_argv)
            if state.qemu is not None and state.qemu.pid not in pids:
                pids.append(state.qemu.pid)
            if "at" not in seen and marker in [r.path for s in servers for r in s.requests]:
                seen["at"] = time.monotonic() - started
            restarted = len(argvs) > 1 and state.qmp is not None
            if "at" in seen and (restarted or not until_restart):
                break
            if time.monotonic() - started > timeout:
                break
        if not done.is_set():
            console["tail"] = _console_tail(ctx.state.console_log)
            os.kill(os.getpid(), signal.SIGINT)

    class _Hold(Step):
        """Keeps the build running until the watcher presses Ctrl-C (a build would go on to SSH here)."""

        name = "testHold"

        def run(self, ctx: BuildContext) -> None:
            while not ctx.cancel.wait(0.2) and not done.is_set():
                pass

    watcher = threading.Thread(target=watch, daemon=True)
    typed: list[Step] = []
    if cfg.boot_command:
        from vmbake.steps.configure_vnc import StepConfigureVNC
        from vmbake.steps.type_boot_command import StepTypeBootCommand

        typed = [StepConfigureVNC(), StepTypeBootCommand()]
    steps: list[Step] = [
        _Given(),
        StepFetchNetboot(),
        StepExtractInstallerKernel(),
        StepInjectPreseed(),
        StepPrepareOutputDir(),
        StepCreateDisk(),
        StepHTTPServer(),
        *typed[:1],
        StepRun(),
        *typed[1:],
        StepInstallerReboot(),
        _Hold(),
    ]
    outcome: BaseException | None = None
    # A process started in the background by a non-interactive shell inherits SIGINT ignored, and Python
    # then installs no KeyboardInterrupt handler: the watcher's Ctrl-C would be lost and the build held.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    watcher.start()
    try:
        run_steps(ctx, steps)
    except (BuildCancelled, KeyboardInterrupt) as err:
        outcome = err
    finally:
        done.set()
        watcher.join(timeout=5)
        signal.signal(signal.SIGINT, previous)
    requests = [r.path for server in servers for r in server.requests]
    return InstallerRun(
        seen.get("at"), outcome, out.getvalue(), argvs, requests, console.get("tail", ""), pids
    )


def _console_tail(path: Path | None, size: int = 4000) -> str:
    """The last lines of a serial console log, without terminal escape sequences."""
    import re

    if path is None or not path.is_file():
        return ""
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - size))
        text = f.read().decode(errors="replace")
    text = re.sub(r"\x1b(\[[0-9;?]*[A-Za-z]|[()][0-9A-Za-z]|[=>])", "", text)
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines()]
    return "\n".join(line for line in lines if line)


@dataclass
class FailedInstall:
    """How a build through the installer steps ended by itself: its error, what it printed, and when."""

    outcome: BaseException | None
    output: str
    seconds: float  # from the start to the end of the build
    dialog_at: float | None  # when `dialog_text` first reached the console log, from the start
    qemu_pids: list[int] = field(default_factory=list)


def run_installer_until_it_ends(tmp: Path, iso_path: Path, dialog_text: str, **config: Any) -> FailedInstall:
    """Run the installer steps for a qemu build with `config` (StepRun, then StepInstallerReboot waiting
    for the installer) until the build ends by itself, and note when `dialog_text` reached the console."""
    import io as _io

    from vmbake.config.qemu import QemuConfig
    from vmbake.state import BuildContext, Options
    from vmbake.steps import Step, run_steps
    from vmbake.steps.create_disk import StepCreateDisk
    from vmbake.steps.http_server import StepHTTPServer
    from vmbake.steps.installer_extract_kernel import StepExtractInstallerKernel
    from vmbake.steps.installer_inject_preseed import StepInjectPreseed
    from vmbake.steps.installer_reboot import StepInstallerReboot
    from vmbake.steps.prepare_output_dir import StepPrepareOutputDir
    from vmbake.steps.run_qemu import StepRun
    from vmbake.ui import BuildUi, Ui

    class _Given(Step):
        name = "testSetup"

        def run(self, ctx: BuildContext) -> None:
            ctx.state.work_dir = tmp / "work"
            ctx.state.work_dir.mkdir(mode=0o700)
            ctx.state.iso_path = iso_path

    out = _io.StringIO()
    defaults: dict[str, Any] = {
        "accelerator": "tcg",
        "headless": True,
        "memory": 1024,
        "disk_size": 64 << 20,
        "communicator": "none",
        "output_directory": str(tmp / "output"),
        "ssh_timeout": 1200.0,
    }
    ctx = BuildContext(
        name="qemu",
        builder_type="qemu",
        config=QemuConfig(**{**defaults, **config}),
        template=None,  # type: ignore[arg-type]
        ui=BuildUi(Ui(out=out, err=out), "qemu"),
        options=Options(),
    )
    started = time.monotonic()
    seen: dict[str, float] = {}
    pids: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            state = ctx.state
            if state.qemu is not None and state.qemu.pid not in pids:
                pids.append(state.qemu.pid)
            log = state.console_log
            found = "at" not in seen and log is not None and log.is_file()
            if found and log is not None and dialog_text.encode() in log.read_bytes():
                seen["at"] = time.monotonic() - started

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    outcome: BaseException | None = None
    try:
        run_steps(
            ctx,
            [
                _Given(),
                StepExtractInstallerKernel(),
                StepInjectPreseed(),
                StepPrepareOutputDir(),
                StepCreateDisk(),
                StepHTTPServer(),
                StepRun(),
                StepInstallerReboot(),
            ],
        )
    except BaseException as err:  # the failure is what the test looks at
        outcome = err
    finally:
        done.set()
        watcher.join(timeout=5)
    return FailedInstall(outcome, out.getvalue(), time.monotonic() - started, seen.get("at"), pids)
