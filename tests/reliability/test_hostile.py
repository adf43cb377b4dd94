"""Hostile input, round two: every class of the review with several cases of its own.

Everything runs against this machine only: FIFOs, /dev/zero, servers on 127.0.0.1 that trickle, lie or
speak another protocol, and a thread that swaps a symlink in while the HTTP server serves. Each case is
bounded in time and checks that the answer is vmbake's own message, never a traceback or a hang.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.faults import VmbakeRun
from vmbake.bootcommand import BootCommandError, parse
from vmbake.checksums import find_in_sums, parse_checksum
from vmbake.errors import BuildCancelled, VmbakeError
from vmbake.fetch import DownloadError, fetch_bytes, url_problem
from vmbake.files import read_regular_text
from vmbake.httpserver import HttpServer
from vmbake.ports import bind_in_range
from vmbake.template import load_template
from vmbake.ui import mask_secrets, secret_forms
from vmbake.units import parse_duration, parse_size

REPO = Path(__file__).resolve().parents[2]


def vmbake(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str]:
    full = {k: v for k, v in os.environ.items() if k not in ("PACKER_LOG", "VMBAKE_LOG")}
    full.update({"PYTHONPATH": str(REPO / "src"), **(env or {})})
    proc = subprocess.run([sys.executable, "-m", "vmbake", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


def assert_own_error(output: str) -> None:
    assert "Traceback" not in output and "internal error" not in output, output


def minimal_template(tmp_path: Path, **extra: object) -> Path:
    iso = tmp_path / "x.iso"
    iso.write_bytes(b"\0" * 4096)
    template = {"builders": [{"type": "qemu", "iso_url": str(iso), "iso_checksum": "none",
                              "communicator": "none", "output_directory": str(tmp_path / "out"), **extra}]}  # fmt: skip
    path = tmp_path / "t.json"
    path.write_text(json.dumps(template))
    return path


# 2. Nothing hangs: files that are not regular files ------------------------------------------------------
@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo.json"
    os.mkfifo(path)
    return path


def test_read_regular_refuses_fifo_devices_and_directories(fifo: Path, tmp_path: Path) -> None:
    for path, kind in (
        (fifo, "named pipe"),
        (Path("/dev/zero"), "character device"),
        (tmp_path, "directory"),
    ):
        started = time.monotonic()
        with pytest.raises(VmbakeError, match=kind) as info:
            read_regular_text(path, "template")
        assert time.monotonic() - started < 2
        assert str(path) in info.value.message and info.value.hint


@pytest.mark.parametrize("flag", ["template", "var-file", "hcl-template"])
def test_validate_refuses_non_regular_files_at_once(fifo: Path, tmp_path: Path, flag: str) -> None:
    good = minimal_template(tmp_path)
    args = {
        "template": ["validate", str(fifo)],
        "var-file": ["validate", "-var-file=/dev/zero", str(good)],
        "hcl-template": ["validate", str(tmp_path / "d")],
    }[flag]
    if flag == "hcl-template":
        (tmp_path / "d").mkdir()
        os.mkfifo(tmp_path / "d" / "build.pkr.hcl")
    started = time.monotonic()
    code, out = vmbake(*args, cwd=tmp_path, timeout=30)
    assert code == 1 and time.monotonic() - started < 20
    assert "not a regular file" in out
    assert_own_error(out)


@pytest.mark.parametrize(
    ("call", "kind"),
    [
        ('file("/dev/zero")', "character device"),
        ("filebase64(FIFO)", "named pipe"),
        ("filesha256(FIFO)", "named pipe"),
        ('filemd5("/dev/urandom")', "character device"),
        ("templatefile(DIR, {})", "directory"),
    ],
    ids=["file-dev-zero", "filebase64-fifo", "filesha256-fifo", "filemd5-urandom", "templatefile-dir"],
)
def test_hcl_file_functions_refuse_non_regular_files(
    fifo: Path, tmp_path: Path, call: str, kind: str
) -> None:
    """HCL2's file functions read files the template names: /dev/zero would fill memory, a FIFO block."""
    call = call.replace("FIFO", json.dumps(str(fifo))).replace("DIR", json.dumps(str(tmp_path)))
    template = tmp_path / "t.pkr.hcl"
    template.write_text(
        f'locals {{\n  d = {call}\n}}\nsource "qemu" "a" {{\n  iso_url = "x.iso"\n  iso_checksum = "none"\n'
        '  communicator = "none"\n  vm_name = substr(local.d, 0, 3)\n}\nbuild {\n  sources = ["source.qemu.a"]\n}\n'
    )
    started = time.monotonic()
    code, out = vmbake("validate", str(template), cwd=tmp_path, timeout=30)
    assert code == 1 and time.monotonic() - started < 20, out
    assert kind in out and "not a regular file" in out and "t.pkr.hcl:2: local.d" in out, out
    assert_own_error(out)


def test_checksum_file_that_is_a_device_is_refused() -> None:
    with pytest.raises(DownloadError, match="character device"):
        fetch_bytes("/dev/zero")
    with pytest.raises(DownloadError, match="character device"):
        fetch_bytes("file:///dev/urandom")


# 2. and 3. Downloads: a deadline on the headers, malformed answers named ----------------------------------
@contextlib.contextmanager
def raw_server(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A TCP server on 127.0.0.1 that runs `answer` on each connection; yields its base URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    conn.recv(65536)  # the request
                    answer(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(10)
        listener.close()


def _trickle_headers(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    for _ in range(100):  # one byte every 0.1 s: each read gets data, so no socket timeout fires
        conn.sendall(b"X")
        time.sleep(0.1)


def _ssh_banner(conn: socket.socket) -> None:
    conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    time.sleep(1)


def _broken_chunks(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n")


def _long_header(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n")


def _many_headers(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (_trickle_headers, "no complete answer"),
        (_ssh_banner, "not valid HTTP"),
        (_broken_chunks, "malformed"),
        (_long_header, "too long"),
        (_many_headers, "too many header lines"),
    ],
    ids=["trickled-headers", "ssh-banner", "broken-chunks", "long-header", "many-headers"],
)
def test_bad_http_answers_get_a_message(answer: Callable[[socket.socket], None], message: str) -> None:
    with raw_server(answer) as base:
        started = time.monotonic()
        with pytest.raises(DownloadError, match=message) as info:
            fetch_bytes(base + "/SHA256SUMS", timeout=0.5)
        assert time.monotonic() - started < 5
        assert info.value.hint
        assert "SSH-2.0" not in info.value.message  # the server's bytes are not echoed


def test_credentials_in_a_url_are_basic_auth_and_never_a_host_name() -> None:
    seen: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            seen.append(conn.recv(65536))
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert fetch_bytes(f"http://bob:p%40ss@127.0.0.1:{port}/SUMS", timeout=5) == b"ok"
    finally:
        thread.join(10)
        listener.close()
    request = seen[0].decode()
    assert f"Host: 127.0.0.1:{port}" in request
    assert "Authorization: Basic " + base64.b64encode(b"bob:p@ss").decode() in request
    assert "bob" not in request.split("\r\n")[0]  # not in the request line either


def test_url_passwords_are_masked_wherever_printed() -> None:
    assert mask_secrets("Trying https://bob:hunter2@mirror.test/x.iso", set()) == (
        "Trying https://bob:<sensitive>@mirror.test/x.iso"
    )


@pytest.mark.parametrize(
    "url",
    ["http://mirror.test:99999/x.iso", "http://[::1/x.iso", "http://mirror.test:port/x.iso", "http:///x.iso"],
)
def test_validate_refuses_urls_that_cannot_be_fetched(tmp_path: Path, url: str) -> None:
    assert url_problem(url)
    code, out = vmbake("validate", str(minimal_template(tmp_path, iso_url=url)), cwd=tmp_path)
    assert code == 1 and "iso_url" in out and ("invalid URL" in out or "no host" in out), out
    assert_own_error(out)


# 3. Numbers too large, unusable environment variables, a bad PACKER_LOG_PATH -------------------------------
def test_huge_numbers_are_refused_with_a_message() -> None:
    for size in (10**5000, "9" * 5000 + "M", "9" * 40 + "T"):
        with pytest.raises(ValueError, match="too"):
            parse_size(size)
    for duration in ("9" * 5000 + "s", "9" * 40 + "h"):
        with pytest.raises(ValueError, match="too long"):
            parse_duration(duration)
    for command in ("<wait" + "9" * 5000 + ">", "<wait999999999s>", "<wait9000h>"):
        with pytest.raises(BootCommandError, match=r"too long|longer than a year"):
            parse(command)


@pytest.mark.parametrize(
    "extra",
    [
        {"disk_size": "9" * 5000},
        {"memory": 10**400},
        {"boot_wait": "9" * 400 + "s"},
        {"boot_command": ["<wait" + "9" * 400 + ">"]},
        {"cpus": 1e308},
    ],
    ids=["disk_size", "memory", "boot_wait", "waitN", "cpus-float"],
)
def test_validate_huge_numbers(tmp_path: Path, extra: dict[str, object]) -> None:
    code, out = vmbake("validate", str(minimal_template(tmp_path, **extra)), cwd=tmp_path)
    assert code == 1, out
    assert next(iter(extra)) in out or "is out of range" in out  # a JSON number beyond float64
    assert_own_error(out)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PACKER_LOG": "1", "PACKER_LOG_PATH": "/"}, "PACKER_LOG_PATH"),
        ({"PACKER_LOG": "1", "PACKER_LOG_PATH": "/nonexistent-dir/sub/log.txt"}, "PACKER_LOG_PATH"),
    ],
)
def test_unusable_log_path(tmp_path: Path, env: dict[str, str], message: str) -> None:
    code, out = vmbake("validate", str(minimal_template(tmp_path)), cwd=tmp_path, env=env)
    assert code == 1 and message in out and "writable directory" in out
    assert_own_error(out)


def test_unusable_cache_dir_and_download_timeout(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    iso_dir = tmp_path / "www"
    iso_dir.mkdir()
    template = minimal_template(tmp_path, iso_url="http://127.0.0.1:9/x.iso")
    for env, message in (
        ({"VMBAKE_CACHE_DIR": str(tmp_path / "afile" / "cache")}, "is not a directory"),
        ({"VMBAKE_DOWNLOAD_TIMEOUT": "9" * 5000 + "s"}, "VMBAKE_DOWNLOAD_TIMEOUT"),
        ({"VMBAKE_DOWNLOAD_TIMEOUT": "soon"}, "VMBAKE_DOWNLOAD_TIMEOUT"),
    ):
        code, out = vmbake("build", str(template), cwd=tmp_path, env={"PACKER_CACHE_DIR": "", **env})
        assert code == 1 and message in out, out
        assert_own_error(out)


# 4. The HTTP server cannot be raced out of http_directory, and says nothing when a client resets ----------
def test_http_server_cannot_be_raced_out_by_a_symlink_swap(tmp_path: Path) -> None:
    root = tmp_path / "htdocs"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "preseed.cfg").write_text("TOP-SECRET")
    (root / "sub" / "preseed.cfg").write_text("public")
    stop = threading.Event()

    def swap() -> None:  # flips htdocs/sub between a real directory and a symlink out of the tree
        real, aside = root / "sub", root / "sub-real"
        while not stop.is_set():
            real.rename(aside)
            real.symlink_to(tmp_path / "secret")
            real.unlink()
            aside.rename(real)

    served: list[bytes] = []
    with HttpServer(bind_in_range("127.0.0.1", 0, 0), directory=root) as server:
        swapper = threading.Thread(target=swap, daemon=True)
        swapper.start()
        try:
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
                    s.sendall(b"GET /sub/preseed.cfg HTTP/1.0\r\n\r\n")
                    data = b""
                    while chunk := s.recv(65536):
                        data += chunk
                served.append(data)
        finally:
            stop.set()
            swapper.join(5)
    assert len(served) > 50
    assert not any(b"TOP-SECRET" in d for d in served)
    assert any(b"public" in d for d in served)  # the race was really run: the real file was served too


def test_http_server_is_quiet_when_clients_reset(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(4 << 20))
    with HttpServer(bind_in_range("127.0.0.1", 0, 0), directory=tmp_path) as server:
        for request in (b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /big.bin HTTP/1.1\r\nHo"):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(request)
            time.sleep(0.2)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()  # RST with unread data
        half = socket.create_connection(("127.0.0.1", server.port))
        half.sendall(b"GET /big.bin HTTP/1.1\r\n")
        half.shutdown(socket.SHUT_WR)
        half.close()
        time.sleep(0.5)
        assert len(server.requests) >= 1
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "Exception" not in captured.err, captured.err


# 1. Secrets in the request log, percent-encoded or base64 --------------------------------------------------
def test_secret_forms_are_masked() -> None:
    secret = "s3cr3t pass/word"
    forms = secret_forms(secret)
    for line in (
        f"http: GET /preseed.cfg?pw={urllib.parse.quote(secret, safe='')} 200",
        f"http: GET /x/{urllib.parse.quote(secret)} 404",
        f"http: GET /x?pw={urllib.parse.quote_plus(secret)} 404",
        "http: GET /x?pw=" + "".join(f"%{b:02X}" for b in secret.encode()) + " 404",
        "Authorization: Basic " + base64.b64encode(secret.encode()).decode(),
    ):
        masked = mask_secrets(line, forms)
        assert "<sensitive>" in masked and "s3cr3t" not in masked, masked


# 6. The contract: checksums, signals while loading --------------------------------------------------------
def test_sha512_sums_file_without_a_sha512_line_is_an_error() -> None:
    spec = parse_checksum("sha512:file:https://mirror.test/SUMS")
    assert spec.sums_algorithm == "sha512"
    sums = "d41d8cd98f00b204e9800998ecf8427e  debian.iso\n"
    with pytest.raises(ValueError, match="no sha512 entry"):
        find_in_sums(sums, "debian.iso", "SUMS", spec.sums_algorithm)
    line = "a" * 128 + "  debian.iso\n"
    assert find_in_sums(sums + line, "debian.iso", "SUMS", "sha512").digest == "a" * 128


@pytest.mark.parametrize("command", ["validate", "build", "inspect"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_while_the_template_loads_exits_130(tmp_path: Path, sig: int, command: str) -> None:
    # Loading a real template takes milliseconds, too short to land a signal in; so the loader is
    # replaced by one that sleeps (the one fake of this module), installed before main() runs.
    code = (
        "import sys, time, vmbake.cli as c\n"
        "def slow(*a, **k):\n    print('loading', flush=True); time.sleep(30)\n"
        "c.load_template = slow\n"
        f"sys.exit(c.main([{command!r}, {str(minimal_template(tmp_path))!r}]))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")}, text=True)  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "loading"
    started = time.monotonic()
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 130, out
    assert time.monotonic() - started < 5
    assert "cancelled" in out and "Traceback" not in out


# 7. A cancel is never a failure ----------------------------------------------------------------------------
def test_a_cancel_cannot_be_caught_as_an_error() -> None:
    assert not issubclass(BuildCancelled, Exception)
    with pytest.raises(BuildCancelled):
        try:
            raise BuildCancelled("build cancelled by SIGTERM")
        except VmbakeError:  # what a step wrapping its tool's failures catches
            pytest.fail("a cancel was caught as a VmbakeError")


def test_sigterm_during_a_download_is_a_cancel_not_a_failure(tmp_path: Path) -> None:
    def slow(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
        for _ in range(200):
            conn.sendall(b"\0" * 4096)
            time.sleep(0.05)

    with raw_server(slow) as base:
        template = minimal_template(tmp_path, iso_url=base + "/debian.iso")
        run = VmbakeRun(["build", str(template)], tmp_path, env={"VMBAKE_CACHE_DIR": str(tmp_path / "cache")})
        try:
            run.wait_for(r"Trying http://", timeout=60)
            time.sleep(1)
            run.signal_group(signal.SIGTERM)
            code, out = run.finish(60)
        finally:
            run.kill()
    assert code == 130, out
    assert (
        "cancelled by SIGTERM" in out and "Error downloading" not in out and "download failed" not in out
    ), out
    assert not (tmp_path / "out").exists()


# 5. -force never deletes what the build did not make ------------------------------------------------------
@pytest.mark.parametrize("where", ["template-dir", "http-directory", "cwd"])
def test_force_refuses_to_delete_the_templates_files(tmp_path: Path, where: str) -> None:
    project = tmp_path / "project"
    (project / "http").mkdir(parents=True)
    (project / "http" / "preseed.cfg").write_text("d-i x")
    output = {"template-dir": str(project), "http-directory": str(project / "http"), "cwd": "."}[where]
    iso = project / "x.iso"
    iso.write_bytes(b"\0" * 4096)
    template = project / "t.json"
    template.write_text(json.dumps({"builders": [{
        "type": "qemu", "iso_url": str(iso), "iso_checksum": "none", "communicator": "none",
        "http_directory": str(project / "http"), "output_directory": output}]}))  # fmt: skip
    code, out = vmbake(
        "build", "-force", str(template), cwd=project, env={"VMBAKE_CACHE_DIR": str(tmp_path / "c")}
    )
    assert code == 1 and "refusing to delete" in out, out
    assert template.is_file() and (project / "http" / "preseed.cfg").read_text() == "d-i x"
    assert_own_error(out)


@pytest.mark.parametrize("failure", ["output-exists", "missing-iso"])
def test_on_error_abort_keeps_every_hint(tmp_path: Path, failure: str) -> None:
    """The failure summary of -on-error=abort is that of cleanup: same lines, hint included."""
    extra: dict[str, object] = {"iso_url": str(tmp_path / "missing.iso")} if failure == "missing-iso" else {}
    template = minimal_template(tmp_path, **extra)
    if failure == "output-exists":
        (tmp_path / "out").mkdir()
    outputs = {}
    for mode in ("cleanup", "abort"):
        code, out = vmbake("build", f"-on-error={mode}", str(template), cwd=tmp_path)
        assert code == 1, out
        assert_own_error(out)
        summary = out.split("had errors:", 1)[1]
        outputs[mode] = [
            line for line in summary.splitlines() if line.strip() and "errored after" not in line
        ]
    hints = [line for line in outputs["cleanup"] if line.startswith("    ")]
    assert hints, outputs["cleanup"]
    assert outputs["abort"] == outputs["cleanup"]


# 1. A shell-local secret need not be on the host's process table -------------------------------------------
@pytest.mark.parametrize("use_file", [False, True])
def test_shell_local_env_var_file_keeps_secrets_off_the_command_line(tmp_path: Path, use_file: bool) -> None:
    from tests.helpers.sshd import make_ctx
    from vmbake.config.provisioners import ShellLocalConfig
    from vmbake.steps.provision import StepProvision
    from vmbake.template.model import ProvisionerSpec

    ctx, _out, _err = make_ctx(tmp_path / "work")
    seen = tmp_path / "seen"
    # The script reads its own shell's command line, as `ps` shows it to every user of the host.
    script = f'cat /proc/$PPID/cmdline | tr "\\0" " " > {seen}; echo "token is $TOKEN" >> {seen}'
    config = ShellLocalConfig(
        inline=[script], environment_vars=["TOKEN=hunter2-secret"], use_env_var_file=use_file
    )
    ctx.provisioners = [ProvisionerSpec("shell-local", config)]
    StepProvision().run(ctx)
    cmdline, _, said = seen.read_text().partition("token is ")
    assert said.strip() == "hunter2-secret"  # the script still gets the value
    assert ("hunter2-secret" in cmdline) is not use_file, cmdline
    assert not list(Path(tempfile.gettempdir()).glob("vmbake-shell-local-vars-*"))  # the file is gone


# 1. A secret and what is built on it never leave in clear ------------------------------------------------
SECRET = "Hunter2-Secret"


@pytest.mark.parametrize("fmt", ["hcl2", "json"])
def test_a_secret_never_leaves_in_clear(tmp_path: Path, fmt: str) -> None:
    """The secret is used as is, URL-encoded, base64-encoded and inside a derived local or variable; every
    output channel (terminal, -machine-readable, PACKER_LOG_PATH, validation errors, hints) is checked."""
    log = tmp_path / "packer.log"
    if fmt == "hcl2":
        template = tmp_path / "t.pkr.hcl"
        template.write_text(f"""
variable "pw" {{
  type      = string
  default   = "{SECRET}"
  sensitive = true
}}
locals {{
  url     = "http://user:${{urlencode(var.pw)}}@127.0.0.1:1/x.iso"
  token   = base64encode(var.pw)
  derived = "prefix-${{local.token}}-suffix"
}}
source "qemu" "a" {{
  iso_url      = local.url
  iso_checksum = "none"
  memory       = var.pw
  vm_name      = local.derived
  communicator = "none"
}}
build {{
  sources = ["source.qemu.a"]
}}
""")
    else:
        template = tmp_path / "t.json"
        template.write_text(json.dumps({
            "variables": {"pw": SECRET, "derived": "x-{{user `pw`}}-y"},
            "sensitive-variables": ["pw"],
            "builders": [{"type": "qemu", "iso_url": "x.iso", "iso_checksum": "none", "communicator": "none",
                          "memory": "{{user `pw`}}", "vm_name": "{{user `derived`}}"}]}))  # fmt: skip
    env = {"PACKER_LOG": "1", "PACKER_LOG_PATH": str(log)}
    outputs = []
    for args in (["validate", str(template)], ["inspect", str(template)], ["-machine-readable", "inspect", str(template)],
                 ["validate", "-machine-readable", str(template)]):  # fmt: skip
        _code, out = vmbake(*args, cwd=tmp_path, env=env)
        outputs.append(out)
    assert any("memory" in out for out in outputs)  # the validation error about memory was printed
    text = "\n".join(outputs) + log.read_text()
    for form in (SECRET, urllib.parse.quote(SECRET), base64.b64encode(SECRET.encode()).decode()):
        assert form not in text, f"{form!r} leaked:\n{text}"
    assert "<sensitive>" in text


# 2. Resolving is linear in the number of locals and variables ---------------------------------------------
@pytest.mark.parametrize("fmt", ["hcl2", "json"])
def test_two_thousand_chained_locals_resolve_quickly(tmp_path: Path, fmt: str) -> None:
    n = 2000
    if fmt == "hcl2":
        chain = "\n".join(f'  l{i} = "${{local.l{i + 1}}}x"' for i in range(n - 1))
        template = tmp_path / "t.pkr.hcl"
        template.write_text(f'locals {{\n{chain}\n  l{n - 1} = "end"\n}}\n'
                            'source "qemu" "a" {\n  iso_url = "x.iso"\n  iso_checksum = "none"\n'
                            '  communicator = "none"\n  vm_name = local.l0\n}\n'
                            'build {\n  sources = ["source.qemu.a"]\n}\n')  # fmt: skip
    else:
        variables = {f"v{i}": "{{user `v" + str(i + 1) + "`}}x" for i in range(n - 1)} | {f"v{n - 1}": "end"}
        template = tmp_path / "t.json"
        template.write_text(json.dumps({"variables": variables, "builders": [{
            "type": "qemu", "iso_url": "x.iso", "iso_checksum": "none", "communicator": "none",
            "vm_name": "{{user `v0`}}"}]}))  # fmt: skip
    started = time.process_time()
    loaded = load_template(template)
    assert time.process_time() - started < 5  # CPU time: the rounds took minutes for this chain
    assert loaded.builds[0].config.vm_name == "end" + "x" * (n - 1)
