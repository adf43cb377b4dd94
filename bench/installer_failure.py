"""How long a broken install takes to report itself: vmbake against Packer 1.6.6, on the same template.

    python bench/installer_failure.py [--packer packer] [--only vmbake,packer] [--keep DIR]

The template is the seed's kind: a netinst-like ISO (made from debian-installer-12-netboot-amd64), the
seed's boot command typed over VNC (with console=ttyS0), a preseed served over HTTP whose mirror is a
closed port of the host, so d-i stops at "Bad archive mirror" and waits; ssh_timeout is 5 minutes.
vmbake reads the dialog on the serial console and fails the build; Packer waits the whole ssh_timeout
and ends with "Timeout waiting for SSH". Both run under TCG ("accelerator": "tcg").

Printed: vmbake's time from the start to the first dialog line and to the end of the build (its failure
report), Packer's time to its end, and Packer's time over vmbake's. Only a benchmark: it never fails a test.
On a host so loaded that d-i does not reach the mirror within ssh_timeout, vmbake times out as Packer does
and the ratio is near 1; the script says so. --keep DIR keeps both builds' logs (with their times).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from tests.conftest import DI_NETBOOT  # noqa: E402
from tests.helpers.installer import make_netinst_iso  # noqa: E402
from vmbake import procs  # noqa: E402

SSH_TIMEOUT = "5m"
BOOT = (
    "<esc><wait5>expert<spacebar>ipv6.disable=1<spacebar>net.ifnames=0<spacebar>auto=true<spacebar>"
    "priority=critical<spacebar>console=ttyS0<spacebar>"
    "url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/preseed.cfg<wait5><enter>"
)
DIALOG_LINE = "The installer shows a dialog"


def closed_port() -> int:
    """A port nothing listens on (it was free a moment ago, and nothing here binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def preseed(port: int) -> str:
    return (
        "d-i debian-installer/locale string en_US\n"
        "d-i keyboard-configuration/xkb-keymap select us\n"
        "d-i netcfg/get_hostname string bench\n"
        "d-i netcfg/get_domain string test\n"
        "d-i mirror/country string manual\n"
        f"d-i mirror/http/hostname string 10.0.2.2:{port}\n"
        "d-i mirror/http/directory string /debian\n"
        "d-i mirror/http/proxy string\n"
    )


def template(work: Path, iso: Path, output: str) -> Path:
    data = {
        "builders": [
            {
                "type": "qemu",
                "iso_url": str(iso),
                "iso_checksum": "none",
                "accelerator": "tcg",
                "headless": True,
                "memory": 1024,
                "disk_size": "2048M",
                "format": "qcow2",
                "http_directory": str(work / "http"),
                "boot_wait": "5s",
                "boot_command": [BOOT],
                "communicator": "ssh",
                "ssh_username": "root",
                "ssh_password": "not-used",
                "ssh_timeout": SSH_TIMEOUT,
                "shutdown_command": "poweroff",
                "output_directory": str(work / output),
            }
        ]
    }
    path = work / f"{output}.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def timed_build(argv: list[str], log: Path, env: dict[str, str]) -> tuple[float, float | None, int]:
    """(seconds to the end, seconds to the first dialog line or None, exit status) of one build."""
    started = time.monotonic()
    dialog: float | None = None
    with log.open("w") as out:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        assert child.stdout is not None
        for line in child.stdout:
            out.write(f"{time.monotonic() - started:8.1f} {line}")
            if dialog is None and DIALOG_LINE in line:
                dialog = time.monotonic() - started
        code = child.wait()
    return time.monotonic() - started, dialog, code


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packer", default="packer")
    parser.add_argument("--only", default="vmbake,packer")
    parser.add_argument("--keep", type=Path, help="a directory to copy the builds' logs into")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vmbake-bench-failure-") as scratch:
        work = Path(scratch)
        iso = make_netinst_iso(work / "netinst.iso", DI_NETBOOT / "linux", DI_NETBOOT / "initrd.gz")
        (work / "http").mkdir()
        (work / "http" / "preseed.cfg").write_text(preseed(closed_port()))
        env = {**os.environ, "CHECKPOINT_DISABLE": "1", "PACKER_CACHE_DIR": str(work / "cache")}
        env["PYTHONPATH"] = str(REPO / "src")
        results: dict[str, tuple[float, float | None, int]] = {}
        tools = {
            "vmbake": [sys.executable, "-m", "vmbake", "build", "-color=false"],
            "packer": [procs.which(args.packer), "build", "-color=false"],
        }
        for tool in args.only.split(","):
            log = work / f"{tool}.log"
            results[tool] = timed_build([*tools[tool], str(template(work, iso, f"out-{tool}"))], log, env)
            total, dialog, code = results[tool]
            if args.keep is not None:
                args.keep.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(log, args.keep / log.name)
            if tool == "vmbake" and dialog is None:
                print("vmbake: the installer showed no dialog within ssh_timeout (a loaded host?)")
            tail = log.read_text().splitlines()[-3:]
            print(
                f"{tool}: exit {code} after {total:.0f} s"
                + (f", first dialog at {dialog:.0f} s" if dialog else "")
            )
            print("  " + "\n  ".join(tail))
    if "vmbake" in results and "packer" in results:
        ratio = results["packer"][0] / results["vmbake"][0]
        print(f"installer failure report: Packer {results['packer'][0]:.0f} s / vmbake {results['vmbake'][0]:.0f} s"
              f" = {ratio:.2f}x (ssh_timeout {SSH_TIMEOUT})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
