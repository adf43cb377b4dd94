"""Logging in to a finished bootstrap image under TCG: with a key and a user given as template variables,
with root's password on the serial console, and through cloud-init with a NoCloud seed.

One minimal image (bookworm, cloud kernel, no provisioners) is baked by `vmbake build` from a template that
wires the variables as the shipped templates do, with cloud_init = true. It is then booted once, with a
NoCloud seed attached, and each test logs in its own way. The seed is an ISO 9660 image with the volume id
`cidata` made by xorriso (what cloud-localds does).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from tests.helpers.bootstrap_disk import free_port, make_key
from tests.helpers.serial_console import SerialConsole, serial_argv
from vmbake import procs

ROOT_PASSWORD = "Vmbake-test-7"
USER = "alice"
SEED_USER = "cloudy"
SEED_HOSTNAME = "seeded"

TEMPLATE = """
variable "ssh_authorized_keys" {
  type    = list(string)
  default = []
}
variable "root_password" {
  type      = string
  default   = ""
  sensitive = true
}
variable "user" {
  type    = string
  default = ""
}
variable "cloud_init" {
  type    = bool
  default = false
}

source "debian-bootstrap" "login" {
  suite            = "bookworm"
  kernel           = "linux-image-cloud-amd64"
  hostname         = "vmbake-login"
  disk_size        = "2G"
  cpus             = 1
  accelerator      = "tcg"
  output_directory = "OUTPUT"
  vm_name          = "login.qcow2"
  ssh_timeout      = "20m"
  root_ssh_keys    = var.ssh_authorized_keys
  root_password    = var.root_password
  users = [{ name = var.user, sudo = true, ssh_authorized_keys = var.ssh_authorized_keys }]
  cloud_init       = var.cloud_init
}

build {
  sources = ["source.debian-bootstrap.login"]
}
"""


@dataclass(frozen=True)
class Baked:
    image: Path
    key: Path
    seed_key: Path
    output: str
    work: Path


@pytest.fixture(scope="module")
def baked(tmp_path_factory: pytest.TempPathFactory) -> Baked:
    if os.geteuid() != 0:
        pytest.skip("the bootstrap builder needs root (loop devices, mount, chroot)")
    work = tmp_path_factory.mktemp("login")
    (work / "user").mkdir()
    (work / "seed").mkdir()
    key, _public = make_key(work / "user")
    seed_key, _ = make_key(work / "seed")
    template = work / "login.pkr.hcl"
    template.write_text(TEMPLATE.replace("OUTPUT", str(work / "output")))
    argv = [
        sys.executable, "-m", "vmbake", "build", "-color=false",
        "-var", f'ssh_authorized_keys=["{key}.pub"]',  # a path, read by vmbake
        "-var", f"root_password={ROOT_PASSWORD}", "-var", f"user={USER}", "-var", "cloud_init=true",
        str(template),
    ]  # fmt: skip
    result = procs.run(argv, check=False, cwd=work, timeout=1800)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return Baked(work / "output" / "login.qcow2", key, seed_key, output, work)


def make_seed(directory: Path, public_key: str) -> Path:
    """A NoCloud seed: user-data and meta-data on an ISO 9660 image with the volume id cidata."""
    files = directory / "seed-files"
    files.mkdir()
    (files / "meta-data").write_text(f"instance-id: vmbake-login-1\nlocal-hostname: {SEED_HOSTNAME}\n")
    (files / "user-data").write_text(
        "#cloud-config\nusers:\n"
        f"  - name: {SEED_USER}\n    shell: /bin/bash\n    ssh_authorized_keys:\n      - {public_key}\n"
    )
    seed = directory / "seed.iso"
    procs.run(["xorriso", "-as", "mkisofs", "-quiet", "-output", str(seed), "-volid", "cidata", "-joliet",
               "-rock", str(files / "user-data"), str(files / "meta-data")])  # fmt: skip
    return seed


@dataclass(frozen=True)
class Guest:
    ssh_port: int
    serial: Path  # the console's unix socket: connect only while reading it (see test_root_password_...)


@pytest.fixture(scope="module")
def guest(baked: Baked) -> Iterator[Guest]:
    """The baked image booted once (on a snapshot) with the seed attached; 1 vCPU, TCG."""
    seed = make_seed(baked.work, baked.seed_key.with_suffix(".pub").read_text().strip())
    port = free_port()
    sock = baked.work / "serial.sock"
    argv = [
        "qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-smp", "1", "-display", "none", "-no-user-config",
        "-drive", f"file={baked.image},if=virtio,format=qcow2,snapshot=on",
        "-drive", f"file={seed},if=virtio,format=raw,readonly=on",
        "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22", "-device", "virtio-net-pci,netdev=n0",
        *serial_argv(sock, baked.work / "console.log"),
    ]  # fmt: skip
    child = procs.spawn(argv, stderr=subprocess.DEVNULL)
    try:
        yield Guest(port, sock)
    finally:
        child.stop(grace=10)


def ssh_run(port: int, user: str, key: Path, command: str, timeout: float = 600) -> str:
    """Log in with paramiko (retrying until the guest's sshd answers) and run `command`; its output."""
    deadline = time.monotonic() + timeout
    pkey = paramiko.Ed25519Key.from_private_key_file(str(key))
    while True:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect("127.0.0.1", port=port, username=user, pkey=pkey, timeout=10, banner_timeout=30,
                           auth_timeout=30, allow_agent=False, look_for_keys=False)  # fmt: skip
            _in, out, err = client.exec_command(command, timeout=120)
            text = out.read().decode() + err.read().decode()
            status = out.channel.recv_exit_status()
            assert status == 0, f"{command!r} exited {status}: {text}"
            return text
        except (paramiko.SSHException, OSError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"no SSH login as {user} within {timeout:.0f}s: {exc}") from None
        finally:
            client.close()
        time.sleep(2)  # poll interval inside the deadline


@pytest.mark.integration
@pytest.mark.timeout(2400)
def test_key_given_as_a_variable_logs_in(baked: Baked, guest: Guest) -> None:
    assert "no way in" not in baked.output, baked.output
    assert ROOT_PASSWORD not in baked.output, "the clear-text password was printed"
    assert "cloud-init clean" in baked.output or "Cleaning cloud-init" in baked.output, baked.output
    # The user of the variable `user`, with the key of `ssh_authorized_keys`, and sudo without a password.
    assert ssh_run(guest.ssh_port, USER, baked.key, "id -un; sudo -n id -u").split() == [USER, "0"]
    # Root has the same key; the build's own key is gone from its authorized_keys, the user's stays.
    keys = ssh_run(guest.ssh_port, "root", baked.key, "cat /root/.ssh/authorized_keys").strip().splitlines()
    assert keys == [baked.key.with_suffix(".pub").read_text().strip()]


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_root_password_logs_in_on_the_serial_console(guest: Guest) -> None:
    # Connected only now: a client that does not read stalls the guest's serial port once the socket's
    # buffer fills (each byte the UART sends is one socket write); unconnected, QEMU drops the output.
    console = SerialConsole(guest.serial)
    try:
        _serial_login(console)
    finally:
        console.close()


def _serial_login(console: SerialConsole) -> None:
    console.expect("login:", timeout=600, poke="\r")
    console.send("root\r")
    console.expect("Password:", timeout=60)
    console.send(ROOT_PASSWORD + "\r")
    console.expect(":~# ", timeout=120)  # root's shell prompt
    console.send("echo LOGGED-IN-$((6*7)) $(id -u)\r")
    console.expect("LOGGED-IN-42 0", timeout=120)
    # The password reached the guest as a yescrypt hash.
    console.send("echo HASH-$(getent shadow root | cut -d: -f2 | cut -c1-3)-END\r")
    console.expect("HASH-$y$-END", timeout=60)
    console.send("exit\r")


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_cloud_init_nocloud_seed_gives_a_key(baked: Baked, guest: Guest) -> None:
    out = ssh_run(guest.ssh_port, SEED_USER, baked.seed_key, "id -un; hostname; ls /var/lib/cloud/instances")
    # The seed's user and host name; the only instance cloud-init knows is the seed's (the build left none).
    assert out.split() == [SEED_USER, SEED_HOSTNAME, "vmbake-login-1"], out
