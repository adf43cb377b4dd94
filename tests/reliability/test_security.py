"""Security defaults, each checked on a real build or a real server: loopback-only HTTP and VNC, a VNC
password that is enforced, secrets masked everywhere, the host key pinned, ISOs checked before use;
and a table of hostile templates that are refused with a clear message before anything starts."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
from pathlib import Path

import pytest

from tests.helpers.faults import procs_with_argv
from tests.helpers.sshd import Sshd, running_sshd, throwaway_user
from tests.reliability.conftest import Rig
from vmbake.comm.ssh import HostKeyChanged, SshTarget, connect
from vmbake.errors import TemplateError, VmbakeError
from vmbake.httpserver import HttpServer
from vmbake.ports import bind_in_range
from vmbake.sshkeys import load_private_key
from vmbake.template import load_template

SECRET = "hunter2-Very-Secret"


def listeners() -> dict[int, str]:
    """Listening TCP ports (IPv4) of this machine and the address each is bound to."""
    found: dict[int, str] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A":  # LISTEN
            addr_hex, port_hex = local.split(":")
            addr = socket.inet_ntoa(struct.pack("<I", int(addr_hex, 16)))
            found[int(port_hex, 16)] = addr
    return found


def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """GET `target` exactly as written (no client-side normalisation of '..')."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def recv_exactly(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


# HTTP server: loopback by default; nothing outside its directory ----------------------------------------
def test_http_server_serves_nothing_outside_its_directory(tmp_path: Path) -> None:
    root = tmp_path / "htdocs"
    (root / "sub").mkdir(parents=True)
    (root / "ok.cfg").write_text("fine")
    (tmp_path / "secret.txt").write_text(SECRET)
    (root / "link").symlink_to(tmp_path / "secret.txt")
    (root / "sub" / "dirlink").symlink_to(tmp_path)
    sock = bind_in_range("127.0.0.1", 0, 0)
    with HttpServer(sock, directory=root).start() as server:
        assert raw_get(server.port, "/ok.cfg") == (200, b"fine")
        for target in ("/../secret.txt", "/%2e%2e/secret.txt", "/sub/../../secret.txt", "/sub/%2E%2E/%2e%2e/secret.txt",
                       "/link", "/sub/dirlink/secret.txt", "/..%2fsecret.txt", "/%00", "/..\\secret.txt", "//etc/passwd",
                       "http://127.0.0.1/../secret.txt", "/sub/", "/"):  # fmt: skip
            status, body = raw_get(server.port, target)
            assert status in (400, 403, 404), (target, status)
            assert SECRET.encode() not in body and b"root:" not in body, target


def test_http_server_binds_loopback_by_default(rig: Rig) -> None:
    (rig.base / "http").mkdir()
    run = rig.start(rig.template(http_directory=str(rig.base / "http")))
    line = run.wait_for(r"==> qemu: Starting HTTP server on port \d+")
    port = int(line.rsplit(" ", 1)[1])
    run.wait_for(r"Waiting for shutdown")
    assert listeners().get(port) == "127.0.0.1"
    run.signal_group(signal.SIGINT)
    assert run.finish(60)[0] == 130
    rig.assert_clean()


# VNC: 127.0.0.1, and with vnc_use_password a password QEMU enforces --------------------------------------
@pytest.mark.integration
def test_vnc_loopback_and_password(rig: Rig) -> None:
    run = rig.start(rig.template(vnc_use_password=True))
    run.wait_for(r"Waiting for shutdown")
    [pid] = procs_with_argv(rig.vm_name)
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    vnc = argv[argv.index("-vnc") + 1]
    assert vnc.startswith("127.0.0.1:") and "password=on" in vnc, vnc
    port = 5900 + int(vnc.split(":")[1].split(",")[0])
    assert listeners().get(port) == "127.0.0.1"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        version = recv_exactly(s, 12)
        assert version.startswith(b"RFB 003.")
        s.sendall(b"RFB 003.008\n")
        count = recv_exactly(s, 1)[0]
        types = set(recv_exactly(s, count))
        assert 1 not in types and 2 in types, types  # no "None" security: VNC authentication only
        s.sendall(b"\x02")
        recv_exactly(s, 16)  # the challenge
        s.sendall(bytes(16))  # a wrong answer
        assert struct.unpack(">I", recv_exactly(s, 4))[0] != 0, "a wrong VNC password was accepted"
    assert "with the password: <sensitive>" in run.output
    run.signal_group(signal.SIGINT)
    assert run.finish(60)[0] == 130
    rig.assert_clean()


# Secrets: never in output, logs or -machine-readable lines -----------------------------------------------
@pytest.mark.integration
def test_sensitive_values_are_masked_everywhere(rig: Rig) -> None:
    (rig.base / "http").mkdir()
    template = rig.template(
        http_directory=str(rig.base / "http"),
        http_content={"/seed.cfg": "password {{user `secret`}}"},
        qemuargs=[*rig.template()["builders"][0]["qemuargs"], ["-smbios", "type=1,serial={{user `secret`}}"]],  # type: ignore[index]
        vnc_use_password=True,
        vnc_password="vncpw123",
    )
    template["variables"] = {"secret": SECRET}
    template["sensitive-variables"] = ["secret"]
    log = rig.base / "vmbake.log"
    for flags in ((), ("-machine-readable",)):
        run = rig.start(template, *flags, "-debug", env={"PACKER_LOG": "1", "PACKER_LOG_PATH": str(log)})
        run.wait_for(r"Waiting for shutdown", 90)
        run.signal_group(signal.SIGINT)
        code, output = run.finish(60)
        assert code == 130, output
        everything = output + log.read_text()
        assert SECRET not in everything and "vncpw123" not in everything
        assert "<sensitive>" in everything
        if flags:
            assert all(line.count(",") >= 2 for line in output.splitlines() if line), "not machine-readable"
        rig.assert_clean()
        rig.runs.clear()


def test_inspect_hides_sensitive_variables(tmp_path: Path) -> None:
    from tests.helpers.faults import VmbakeRun

    path = tmp_path / "t.json"
    path.write_text(json.dumps({"variables": {"secret": SECRET}, "sensitive-variables": ["secret"],
                                "builders": [{"type": "qemu", "iso_url": "x.iso", "iso_checksum": "none",
                                              "communicator": "none"}]}))  # fmt: skip
    for flags in ([], ["-machine-readable"]):
        code, output = VmbakeRun(["inspect", *flags, str(path)], tmp_path).finish(60)
        assert code == 0, output
        assert SECRET not in output and "<sensitive>" in output


# SSH: the host key is pinned for the build ---------------------------------------------------------------
def test_ssh_host_key_is_pinned(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the loopback sshd needs root")
    with throwaway_user() as (user, _pw), running_sshd(user) as sshd:
        target = _target(sshd, user)
        first = connect(target, timeout=10)
        pinned = first.host_key
        first.close()
        assert pinned and pinned == sshd.host_key_line()
        sshd.restart(new_host_key=True)  # a different machine now answers on the same port
        with pytest.raises(HostKeyChanged, match="changed during the build"):
            connect(_target(sshd, user, pinned), timeout=10)


def _target(sshd: Sshd, user: str, pinned: str = "") -> SshTarget:
    return SshTarget(
        host="127.0.0.1", port=sshd.port, username=user, password="", key=load_private_key(sshd.client_key),
        agent=False, keep_alive=5.0, transfer="sftp", pinned_host_key=pinned, progress=None,
    )  # fmt: skip


# ISO checksum: `none` warns ---------------------------------------------------------------------------
def test_iso_checksum_none_warns(rig: Rig) -> None:
    run = rig.start(rig.template())
    line = run.wait_for(r"iso_checksum is 'none'", 60)
    assert "Warning" in line
    run.signal_group(signal.SIGINT)
    run.finish(60)
    rig.assert_clean()


# Hostile templates ---------------------------------------------------------------------------------------
BASE = {"type": "qemu", "iso_url": "x.iso", "iso_checksum": "none", "communicator": "none"}
HOSTILE: dict[str, tuple[dict[str, object], str, str]] = {
    # name: (builder keys, key named in the refusal, text in the refusal)
    # disk_size 0 is Packer's default (40960M): tests/unit/test_measures.py. Other sizes refuse 0.
    "size_budget 0": ({"size_budget": "0"}, "size_budget", "greater than zero"),
    "size_budget 0 (number)": ({"size_budget": 0}, "size_budget", "greater than zero"),
    "negative disk_size": ({"disk_size": "-5G"}, "disk_size", "invalid size"),
    "huge disk_size": ({"disk_size": "99999999999999T"}, "disk_size", "larger than a disk image can be"),
    "huge memory": ({"memory": 10**30}, "memory", "more than QEMU can give"),
    "huge cpus": ({"cpus": 10**9}, "cpus", "above the maximum"),
    "port above 65535": ({"vnc_port_min": 70000}, "vnc_port_min", "above the maximum"),
    "negative port": ({"http_port_min": -1}, "http_port_min", "below the minimum"),
    "inverted port range": ({"http_port_min": 9000, "http_port_max": 8000}, "http_port_min", "greater than"),
    "endless timeout": ({"shutdown_timeout": "9999999999999h"}, "shutdown_timeout", "longer than a year"),
    "endless boot_wait": ({"boot_wait": "99999999999h"}, "boot_wait", "longer than a year"),
    "vm_name path traversal": ({"vm_name": "../../evil.qcow2"}, "vm_name", "must be a file name"),
    "vm_name absolute path": ({"vm_name": "/etc/evil"}, "vm_name", "must be a file name"),
    "non-string qemuargs": ({"qemuargs": [["-x", 1, None]]}, "qemuargs", "expected a string"),
    "negative wait in boot_command": ({"boot_command": ["<wait-5s>"]}, "boot_command", "longer than zero"),
    "unknown key": ({"isourl": "x"}, "isourl", ""),
    "unicode in a boolean": ({"headless": "\u2603"}, "headless", ""),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_template_is_refused(tmp_path: Path, name: str) -> None:
    keys, key, text = HOSTILE[name]
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps({"builders": [{**BASE, **keys}]}))
    with pytest.raises(TemplateError) as info:
        load_template(path)
    message = str(info.value)
    assert str(path) in message and key in message and text in message, message


def test_missing_http_directory_is_a_warning_at_load_time(tmp_path: Path) -> None:
    """Packer does not check http_directory before the build serves it; the HTTP server step refuses it
    then (tests/unit/test_httpserver.py), and loading only warns."""
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps({"builders": [{**BASE, "http_directory": "../../no/such/dir"}]}))
    warnings = [w.render() for w in load_template(path).warnings]
    assert any("http_directory" in w and "does not exist" in w for w in warnings), warnings


@pytest.mark.parametrize("transport", ["qmp"])
def test_unicode_boot_command_is_refused_before_typing(rig: Rig, transport: str) -> None:
    """A character no US keyboard has is refused by the boot command step, before boot_wait and typing."""
    template = rig.template(
        boot_command=["<esc>\u2603<enter>"], boot_command_transport=transport, boot_wait="10m"
    )
    code, output = rig.build(template)
    assert code == 1, output
    assert "StepTypeBootCommand" in output and "'\u2603'" in output
    assert "Typing the boot command" not in output
    rig.assert_clean()


def test_var_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"variables": {"x": "1"}, "builders": [BASE]}))
    bad = tmp_path / "bad.json"
    bad.write_text('{"x": ')
    with pytest.raises(VmbakeError) as info:
        load_template(path, var_files=[bad])
    assert "bad.json" in str(info.value)


# A secret over every output channel of a whole build ------------------------------------------------------
_CHANNELS_TEMPLATE = """
variable "pw" {{
  type      = string
  default   = "{secret}"
  sensitive = true
}}
locals {{
  enc     = urlencode(var.pw)
  b64     = base64encode(var.pw)
  derived = "pre-${{local.b64}}-post"
}}
source "qemu" "t" {{
  iso_url          = "{disk}"
  iso_checksum     = "none"
  disk_image       = true
  communicator     = "none"
  headless         = true
  accelerator      = "tcg"
  memory           = 256
  disk_size        = "64M"
  vm_name          = "{vm_name}"
  output_directory = "{output}"
  shutdown_timeout = "2m"
  disk_compression = false
  boot_wait        = "3s"
  http_content     = {{ "/seed.cfg" = "pw=${{var.pw}} ${{local.derived}}" }}
  qemuargs         = {qemuargs}
}}
build {{
  sources = ["source.qemu.t"]
  provisioner "shell-local" {{
    inline = ["echo raw=${{var.pw}} enc=${{local.enc}} b64=${{local.b64}} derived=${{local.derived}}"]
  }}
  post-processor "manifest" {{
    output      = "{manifest}"
    custom_data = {{ token = local.derived, enc = local.enc, raw = var.pw }}
  }}
}}
"""


@pytest.mark.parametrize("flags", [(), ("-machine-readable",)], ids=["terminal", "machine-readable"])
def test_a_secret_leaves_no_channel_of_a_whole_build(rig: Rig, flags: tuple[str, ...]) -> None:
    """A sensitive value, used as is, URL-encoded, base64-encoded and inside a derived local, through a
    whole build: the terminal (or -machine-readable lines), PACKER_LOG_PATH, the HTTP request log (the test
    fetches with the secret in each form in the URL), the image report and the manifest. None holds it."""
    import base64
    import urllib.parse

    secret = "Hunter2 Secret/Value"  # a space and a slash: the URL forms differ from the raw one
    b64 = base64.b64encode(secret.encode()).decode()
    manifest = rig.base / "manifest.json"
    template = rig.base / "t.pkr.hcl"
    qemuargs = rig.template(hanging=False)["builders"][0]["qemuargs"]  # type: ignore[index]
    template.write_text(_CHANNELS_TEMPLATE.format(
        secret=secret, disk=rig.guests.disk, vm_name=rig.vm_name, output=rig.output, manifest=manifest,
        qemuargs=json.dumps(qemuargs)))  # fmt: skip
    log = rig.base / "vmbake.log"
    run = rig.start(template, *flags, env={"PACKER_LOG": "1", "PACKER_LOG_PATH": str(log)})
    line = run.wait_for(r"Starting HTTP server on port \d+")
    port = int(line.rsplit("port", 1)[1].split(",")[0].split()[0])
    targets = [
        "/seed.cfg?pw=" + urllib.parse.quote(secret, safe=""),
        "/" + urllib.parse.quote(secret),
        "/seed.cfg?pw=" + urllib.parse.quote_plus(secret),
        "/seed.cfg?pw=" + "".join(f"%{b:02X}" for b in secret.encode()),
        "/seed.cfg?t=" + b64,
        "/seed.cfg?d=pre-" + b64 + "-post",
    ]
    statuses = [raw_get(port, target)[0] for target in targets]
    assert statuses[0] == 200 and 404 in statuses, statuses
    code, output = run.finish(180)
    assert code == 0, output
    channels = {
        "terminal": output,
        "log": log.read_text(),
        "report": "".join(p.read_text() for p in rig.output.glob("*.report.*")),
        "manifest": manifest.read_text(),
    }
    assert "http: GET" in channels["terminal"] + channels["log"]  # the HTTP log was written
    assert channels["report"] and json.loads(channels["manifest"])["builds"]
    if flags:
        assert all(line.count(",") >= 2 for line in output.splitlines() if line), "not machine-readable"
    forms = [secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret),
             urllib.parse.quote_plus(secret), b64, b64.rstrip("=")]  # fmt: skip
    for name, text in channels.items():
        for form in forms:
            assert form not in text, f"{form!r} leaked in the {name}:\n{text}"
    assert "<sensitive>" in channels["terminal"] and "<sensitive>" in channels["manifest"]
    rig.assert_clean(output="any")
