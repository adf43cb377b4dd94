"""Does the archive serve every .udeb the Debian installer will download? Asked before an end-to-end install.

The netboot installer carries only its kernel and a small initrd; once the network is up, anna downloads
the rest from the mirror: the standard-priority .udebs (and the required and important ones), and the
kernel-module .udebs built for the running kernel's ABI. An archive that lists those modules for another
kernel, or lists them but answers 404, stops the install at "Download installer components" after
minutes under TCG. This check finds that out in seconds, from the host, against the same mirror:

* the netboot package's `Built-Using: linux (= V)` in the suite's main Packages index names the kernel
  the netboot image was built with (its `linux` file is that kernel);
* the installer's own Packages index (main/debian-installer/binary-ARCH) lists each .udeb with its
  priority, and each kernel-module .udeb with its Kernel-Version (the ABI) and the linux version V it
  was built from;
* a HEAD request for each of them (a bounded list, about 150) says whether the archive serves it.
"""

from __future__ import annotations

import lzma
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

NEEDED_PRIORITIES = ("required", "important", "standard")
_LINUX = re.compile(r"(?:^|,\s*)linux \(= (?P<version>[^)\s]+)\)")
_TIMEOUT = 20.0


@dataclass(frozen=True)
class Udeb:
    package: str
    version: str
    filename: str
    priority: str
    kernel_version: str  # the ABI, for a kernel-module .udeb; "" otherwise


@dataclass(frozen=True)
class UdebCheck:
    """What the archive lacks for an install: missing files (404 and the like), or a reason with no file
    to ask for (no modules at all for the netboot kernel). Empty `problems`: the archive has it all."""

    kernel: str  # the netboot kernel's linux version, from Built-Using
    abi: str  # its ABI (Kernel-Version of its module .udebs), "" when the index has none
    asked: int  # how many .udebs were asked for
    problems: list[str]

    def reason(self) -> str:
        shown = "; ".join(self.problems[:12])
        more = f" (and {len(self.problems) - 12} more)" if len(self.problems) > 12 else ""
        return (
            f"the archive lacks what the installer needs (netboot kernel linux {self.kernel}): {shown}{more}"
        )


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=_TIMEOUT) as response:
        data: bytes = response.read()
        return data


def netboot_kernel(main_packages: str, package: str) -> str:
    """The linux version the netboot package was built with (its Built-Using), "" if it does not say."""
    for stanza in _stanzas(main_packages):
        if stanza.get("Package") == package:
            match = _LINUX.search(stanza.get("Built-Using", ""))
            return match["version"] if match else ""
    return ""


def installer_udebs(udeb_packages: str) -> list[Udeb]:
    return [
        Udeb(
            s["Package"],
            s.get("Version", ""),
            s.get("Filename", ""),
            s.get("Priority", ""),
            s.get("Kernel-Version", ""),
        )
        for s in _stanzas(udeb_packages)
        if "Package" in s
    ]


def needed(udebs: list[Udeb], kernel: str) -> tuple[list[Udeb], list[str]]:
    """The .udebs an install with the netboot kernel `kernel` downloads, and what the index lacks."""
    modules = [u for u in udebs if u.kernel_version and u.version == kernel]
    lacking = []
    if not modules:
        listed = sorted({u.version for u in udebs if u.kernel_version})
        lacking.append(
            f"the installer's Packages index lists no kernel-module .udebs for linux {kernel}"
            f" (it lists them for {', '.join(listed) or 'no kernel'})"
        )
    common = [u for u in udebs if not u.kernel_version and u.priority in NEEDED_PRIORITIES]
    return modules + common, lacking


def _head(url: str) -> str:
    """ "" when `url` is served, else why not (the status, or the network error)."""
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT):
            return ""
    except urllib.error.HTTPError as err:
        return f"{err.code} {err.reason}"
    except (urllib.error.URLError, OSError) as err:
        return str(getattr(err, "reason", err))


def check_archive(mirror: str, suite: str, netboot_package: str, arch: str = "amd64") -> UdebCheck:
    """Ask `mirror` for every .udeb that the installer of `suite` will need; see the module docstring."""
    base = f"{mirror.rstrip('/')}/dists/{suite}/main"
    main = lzma.decompress(_get(f"{base}/binary-{arch}/Packages.xz")).decode()
    kernel = netboot_kernel(main, netboot_package)
    if not kernel:
        return UdebCheck("?", "", 0, [f"{netboot_package} in {suite} names no linux in its Built-Using"])
    index = lzma.decompress(_get(f"{base}/debian-installer/binary-{arch}/Packages.xz")).decode()
    wanted, problems = needed(installer_udebs(index), kernel)
    abi = next((u.kernel_version for u in wanted if u.kernel_version), "")
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda u: _head(f"{mirror.rstrip('/')}/{u.filename}"), wanted))
    problems += [f"{u.filename}: {answer}" for u, answer in zip(wanted, answers, strict=True) if answer]
    return UdebCheck(kernel, abi, len(wanted), problems)
