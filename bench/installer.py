"""Time from `vmbake` starting the steps to the preseed's early_command marker, for each way to start the
Debian installer, measured one after another in one run, as ratios to the boot command typed over VNC.

    python -m bench.installer [--only typed,iso,netboot,initrd] [--timeout 600]

Every way boots the same d-i kernel and initrd (package debian-installer-12-netboot-amd64) under TCG:

* typed:   the netinst-like ISO's boot menu, with the seed's boot command typed over VNC (Packer's way);
* iso:     installer_boot 'kernel', kernel and initrd read out of the same ISO, preseed over HTTP (url=);
* netboot: iso_source 'debian-netboot' from a signed Debian-like archive on loopback, preseed over HTTP;
* initrd:  the kernel from the ISO with preseed_file injected into the initrd (no url=).

Only a benchmark: it prints figures and never fails a test. The installer cannot finish on this machine, so
the marker fetched by early_command is the finish line.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from tests.conftest import DI_NETBOOT, free_port
from tests.helpers.installer import (
    NETBOOT_DIR,
    NETBOOT_PACKAGE,
    boot_until_marker,
    early_command_preseed,
    make_archive,
    make_deb,
    make_gpg_key,
    make_netinst_iso,
    serve_directory,
)

SEED_BOOT = (
    "<esc><wait5>expert<spacebar>ipv6.disable=1<spacebar>net.ifnames=0<spacebar>auto=true<spacebar>"
    "priority=critical<spacebar>url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/preseed.cfg<wait5><enter>"
)
KERNEL_ARGS = "auto=true priority=critical ipv6.disable=1 net.ifnames=0"
HTTP_ARGS = KERNEL_ARGS + " url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/preseed.cfg"


def _http(marker: str) -> dict[str, str]:
    return {
        "/preseed.cfg": early_command_preseed("http://{{ .HTTPIP }}:{{ .HTTPPort }}" + marker),
        marker: "ok",
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="typed,iso,netboot,initrd")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    ways = args.only.split(",")
    results: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory(prefix="vmbake-bench-") as scratch:
        tmp = Path(scratch)
        iso = make_netinst_iso(tmp / "netinst.iso", DI_NETBOOT / "linux", DI_NETBOOT / "initrd.gz")
        key = make_gpg_key(tmp / "gnupg")
        deb = make_deb(
            tmp / "netboot.deb",
            NETBOOT_PACKAGE,
            "20230607+deb12u99",
            {
                f"{NETBOOT_DIR}/linux": (DI_NETBOOT / "linux").read_bytes(),
                f"{NETBOOT_DIR}/initrd.gz": (DI_NETBOOT / "initrd.gz").read_bytes(),
            },
            compression="none",
        )
        archive = make_archive(tmp / "mirror", "bookworm", key, deb, version="20230607+deb12u99")
        os.environ["VMBAKE_ARCHIVE_KEYRING"] = str(key.keyring)
        os.environ["PACKER_CACHE_DIR"] = str(tmp / "cache")
        with serve_directory(archive.root) as (mirror, _):
            for way in ways:
                work = tmp / way
                work.mkdir()
                marker = f"/marker-{way}"
                if way == "typed":
                    config = {"boot_command": [SEED_BOOT], "boot_wait": "5s", "http_content": _http(marker)}
                    run = boot_until_marker(work, marker, timeout=args.timeout, iso_path=iso, **config)
                elif way == "iso":
                    config = {
                        "installer_boot": "kernel",
                        "kernel_args": HTTP_ARGS,
                        "http_content": _http(marker),
                    }
                    run = boot_until_marker(work, marker, timeout=args.timeout, iso_path=iso, **config)
                elif way == "netboot":
                    config = {
                        "iso_source": "debian-netboot",
                        "suite": "bookworm",
                        "mirror": mirror,
                        "kernel_args": HTTP_ARGS,
                        "http_content": _http(marker),
                    }
                    run = boot_until_marker(work, marker, timeout=args.timeout, **config)
                elif way == "initrd":
                    port = free_port()
                    preseed = work / "preseed.cfg"
                    url = f"http://10.0.2.2:{port}{marker}"
                    preseed.write_text(early_command_preseed(url, bring_up_network=True))
                    config = {
                        "installer_boot": "kernel",
                        "kernel_args": KERNEL_ARGS,
                        "preseed_file": str(preseed),
                        "http_content": {marker: "ok"},
                        "http_port_min": port,
                        "http_port_max": port,
                    }
                    run = boot_until_marker(work, marker, timeout=args.timeout, iso_path=iso, **config)
                else:
                    parser.error(f"unknown way {way!r}")
                results[way] = run.marker_after
                shown = "no marker" if run.marker_after is None else f"{run.marker_after:.1f}s"
                print(f"{way:8} {shown}", flush=True)
    base = results.get("typed")
    print("\nway       seconds  ratio to typed-over-VNC")
    for way, secs in results.items():
        if secs is None:
            print(f"{way:8}  {'-':>7}  (no marker within {args.timeout:.0f}s)")
            continue
        ratio = f"{secs / base:.2f}" if base else "-"
        print(f"{way:8}  {secs:7.1f}  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
