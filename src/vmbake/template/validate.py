"""Checks that span several keys of a block, run after decoding: each adds a Problem with its key path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmbake import aptproxy, bootcommand
from vmbake.accel import FOREIGN
from vmbake.checksums import parse_checksum
from vmbake.config.ansible import AnsibleConfig, AnsibleLocalConfig
from vmbake.config.bootstrap import validate_bootstrap
from vmbake.config.fields import Decoder
from vmbake.config.login import validate_login
from vmbake.config.null import NullConfig, validate_null
from vmbake.config.postprocessors import (
    CHECKSUM_TYPES,
    CONVERT_FORMATS,
    ArtificeConfig,
    ChecksumConfig,
    ConvertConfig,
    VagrantConfig,
    unsupported_provider,
)
from vmbake.config.provisioners import FileConfig, ShellConfig, ShellLocalConfig
from vmbake.config.qemu import QemuConfig
from vmbake.fetch import url_problem
from vmbake.units import size_text

Report = Callable[[str, str, str], None]


def _reporter(decoder: Decoder, path: str) -> Report:
    """Reports a cross-key problem, unless decoding already found one at that key (its default is in place)."""
    taken = {p.key for p in decoder.problems}

    def report(key: str, message: str, hint: str = "") -> None:
        full = f"{path}.{key}" if key else path
        if full not in taken:
            decoder.problem(full, message, hint)

    return report


def _local(path: str) -> bool:
    """True for a plain path that can be checked now (not a URL, not holding a run-time placeholder)."""
    return bool(path) and "{{" not in path and "://" not in path


def _check_path(path: str, test: Callable[[Path], bool]) -> bool:
    """`test` of the path; False for a string that cannot name a file here (too long, a NUL byte)."""
    try:
        return test(Path(path))
    except (OSError, ValueError, RuntimeError):
        return False


def check_checksum(value: str) -> str | None:
    """Why `value` is not a valid iso_checksum, or None when it is (the download step parses it the same way)."""
    if "{{" in value:
        return None
    try:
        parse_checksum(value)
    except ValueError as exc:
        return str(exc)
    return None


MAX_MEMORY_MIB = 16 << 20  # 16 TiB
MAX_DISK_BYTES = 1 << 60  # 1 EiB


def check_boot_command(text: str) -> str | None:
    """Why the joined boot command cannot be typed, or None."""
    try:
        bootcommand.parse(text)
    except ValueError as exc:
        return str(exc)
    return None


def _ranges(config: Any, report: Report) -> None:
    for low, high in (
        ("host_port_min", "host_port_max"),
        ("http_port_min", "http_port_max"),
        ("vnc_port_min", "vnc_port_max"),
    ):
        lo, hi = getattr(config, low, None), getattr(config, high, None)
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            report(low, f"{low} ({lo}) is greater than {high} ({hi})", f"make {low} <= {high}")


def _common_machine(config: Any, report: Report) -> None:
    _ranges(config, report)
    for key in ("floppy_files", "cd_files", "floppy_dirs"):
        for i, item in enumerate(getattr(config, key, [])):
            if _local(item) and not any(c in item for c in "*?[") and not _check_path(item, Path.exists):
                report(
                    f"{key}[{i}]",
                    f"{item!r} does not exist",
                    "relative paths are taken from the current directory",
                )
    key = getattr(config, "ssh_private_key_file", "")
    if _local(key) and not _check_path(key, lambda p: p.expanduser().is_file()):
        report(
            "ssh_private_key_file", f"file {key!r} does not exist", "give the path of an OpenSSH private key"
        )
    if getattr(config, "communicator", "") == "ssh" and not getattr(config, "ssh_username", "x"):
        report("ssh_username", "ssh_username is required with the ssh communicator", 'for example "root"')
    for i, arg in enumerate(getattr(config, "qemuargs", [])):
        if not arg:
            report(f"qemuargs[{i}]", "an empty argument list", 'each entry is a list such as ["-m", "1024M"]')


def check_qemu(config: QemuConfig, report: Report) -> None:
    netboot = config.iso_source == "debian-netboot"
    if config.iso_url and config.iso_urls:
        report("iso_urls", "iso_url and iso_urls cannot both be set", "keep only one of them")
    if not netboot and not config.iso_url and not config.iso_urls:
        report(
            "iso_url",
            "one of iso_url or iso_urls is required",
            'give the installer ISO\'s URL, or use iso_source "debian-netboot" with a suite',
        )
    urls = [("iso_url", config.iso_url)] if config.iso_url else []
    urls += [(f"iso_urls[{i}]", u) for i, u in enumerate(config.iso_urls)]
    for key, url in urls:
        problem = url_problem(url) if "{{" not in url else None
        if problem:
            report(key, f"{problem}: {url}", "write the URL as scheme://host[:port]/path")
    if netboot and not config.suite:
        report("suite", "iso_source 'debian-netboot' needs a suite", 'for example "bookworm"')
    if not netboot:
        if not config.iso_checksum:
            report(
                "iso_checksum",
                "iso_checksum is required",
                "give 'sha256:HEX', 'file:URL-of-SHA256SUMS', or 'none' to skip the check",
            )
        else:
            why = check_checksum(config.iso_checksum)
            if why:
                report("iso_checksum", why, "use 'sha256:HEX' (or md5/sha1/sha512), 'file:URL', or 'none'")
    if config.boot_command:
        why = check_boot_command("".join(config.boot_command))
        if why:
            report("boot_command", why, "see docs/boot-command.md")
    for i, step in enumerate(config.boot_steps):
        if not step or len(step) > 2:
            report(f"boot_steps[{i}]", "each boot step is [keys] or [keys, description]", "")
            continue
        why = check_boot_command(step[0])
        if why:
            report(f"boot_steps[{i}]", why, "see docs/boot-command.md")
    if config.boot_command and config.boot_steps:
        report("boot_steps", "boot_command and boot_steps cannot both be set", "keep only one of them")
    if config.use_backing_file and (not config.disk_image or config.format != "qcow2"):
        report("use_backing_file", "use_backing_file needs disk_image true and format qcow2", "")
    if config.installer_boot == "kernel" and not config.kernel_args and not netboot:
        report(
            "kernel_args",
            "installer_boot 'kernel' needs kernel_args",
            'for example "auto=true priority=critical url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/preseed.cfg"',
        )
    if (
        config.preseed_file
        and _local(config.preseed_file)
        and not _check_path(config.preseed_file, Path.is_file)
    ):
        report("preseed_file", f"file {config.preseed_file!r} does not exist", "")
    _hostile(config, report)
    _common_machine(config, report)
    validate_login(config, report)
    proxy_problem = (
        aptproxy.url_problem(config.apt_proxy) if config.apt_proxy and "{{" not in config.apt_proxy else ""
    )
    if proxy_problem:
        report("apt_proxy", proxy_problem, "an apt caching proxy such as apt-cacher-ng: http://HOST:3142")


def _hostile(config: QemuConfig, report: Report) -> None:
    """Values no build can use, refused before anything starts."""
    if config.vm_name and ("/" in config.vm_name or config.vm_name in (".", "..")):
        report(
            "vm_name",
            f"vm_name {config.vm_name!r} must be a file name, not a path",
            "the disk is written into output_directory; set output_directory to put it elsewhere",
        )
    if config.memory > MAX_MEMORY_MIB:
        report("memory", f"memory {config.memory} MiB is more than QEMU can give a guest", "memory is in MiB")
    if config.disk_size > MAX_DISK_BYTES:
        report(
            "disk_size",
            f"disk_size {size_text(config.disk_size)!r} is larger than a disk image can be",
            "at most 1E",
        )


def check_builder(type_name: str, config: Any, decoder: Decoder, path: str) -> None:
    report = _reporter(decoder, path)
    if getattr(config, "communicator", "") == "ssh" and not getattr(config, "shutdown_command", "x"):
        decoder.warning(
            f"{path}.shutdown_command",
            "no shutdown_command: the VM will be halted forcibly, which may lose data",
            'set shutdown_command, for example "shutdown -P now"',
        )
    http_dir = getattr(config, "http_directory", "")
    if _local(http_dir) and not _check_path(http_dir, Path.is_dir):
        # A warning only: Packer does not look at http_directory before the build's HTTP server step,
        # which is where vmbake's build fails on it too.
        decoder.warning(
            f"{path}.http_directory",
            f"directory {http_dir!r} does not exist (the build will fail when it starts the HTTP server)",
            "relative paths are taken from the current directory, as in Packer; try {{template_dir}}/...",
        )
    if getattr(config, "communicator", "") == "winrm":
        decoder.warning(
            f"{path}.communicator",
            "vmbake has no WinRM communicator (it builds Debian guests): the template validates, as in "
            "Packer, but 'vmbake build' refuses this build",
            "use communicator ssh for a Debian guest",
        )
    if isinstance(config, QemuConfig):
        if config.accelerator in FOREIGN:
            decoder.warning(
                f"{path}.accelerator",
                f"accelerator {config.accelerator!r} ({FOREIGN[config.accelerator]}) is accepted, as by "
                "Packer, but does not run on a Linux host: 'vmbake build' refuses it",
                "use kvm or tcg, or leave accelerator empty",
            )
        check_qemu(config, report)
        _installer_console(config, decoder, path)
        return
    if isinstance(config, NullConfig):
        for key, message, hint in validate_null(config):
            report(key, message, hint)
        _exists(report, "ssh_private_key_file", config.ssh_private_key_file)
        return
    _common_machine(config, report)
    if type_name == "debian-bootstrap":
        validate_bootstrap(config, decoder, path, decoder.file)


def _installer_console(config: QemuConfig, decoder: Decoder, path: str) -> None:
    """Warn when an installer's console is not on the serial port: vmbake reads the installer's dialogs
    there (vmbake.installer.console_watch), and without it a stuck install waits for ssh_timeout."""
    typed = "".join(config.boot_command) + "".join(step[0] for step in config.boot_steps if step)
    direct = config.installer_boot == "kernel" or config.iso_source == "debian-netboot"
    if config.communicator != "ssh" or config.disk_image or not (typed or direct or config.kernel_args):
        return
    if "console=ttyS0" in typed or "console=ttyS0" in config.kernel_args:
        return
    key = "kernel_args" if direct or not typed else ("boot_command" if config.boot_command else "boot_steps")
    decoder.warning(
        f"{path}.{key}",
        "the installer's console is not on the serial port (no console=ttyS0), so vmbake cannot see its"
        " dialogs: a failed install will wait for ssh_timeout",
        f"add console=ttyS0 to the installer's kernel command line in {key}",
    )


def _exists(report: Report, key: str, value: str) -> None:
    if _local(value) and not _check_path(value, Path.exists):
        report(key, f"file {value!r} does not exist", "relative paths are taken from the current directory")


def _one_of(report: Report, config: Any, keys: tuple[str, ...]) -> None:
    given = [k for k in keys if getattr(config, k)]
    if not given:
        report("", f"one of {', '.join(keys)} is required", "")
    elif len(given) > 1:
        report(given[1], f"only one of {', '.join(keys)} can be set, got {' and '.join(given)}", "")


def check_provisioner(config: Any, decoder: Decoder, path: str) -> None:
    report = _reporter(decoder, path)
    if isinstance(config, (AnsibleConfig, AnsibleLocalConfig)):
        for key, message, hint in config.problems():
            report(key, message, hint)
    if isinstance(config, ShellConfig):
        _one_of(report, config, ("inline", "script", "scripts"))
        _exists(report, "script", config.script)
        for i, script in enumerate(config.scripts):
            _exists(report, f"scripts[{i}]", script)
        _env_vars(report, config.environment_vars)
    elif isinstance(config, ShellLocalConfig):
        _one_of(report, config, ("command", "inline", "script", "scripts"))
        _exists(report, "script", config.script)
        for i, script in enumerate(config.scripts):
            _exists(report, f"scripts[{i}]", script)
        _env_vars(report, config.environment_vars)
    elif isinstance(config, FileConfig):
        if not config.destination:
            report("destination", "destination is required", "the path to copy to")
        if config.direction == "upload" and not (config.source or config.sources or config.content):
            report("source", "one of source, sources or content is required", "")
        if config.direction == "upload" and not config.generated:
            _exists(report, "source", config.source)
            for i, source in enumerate(config.sources):
                _exists(report, f"sources[{i}]", source)


def _env_vars(report: Report, items: list[str]) -> None:
    for i, item in enumerate(items):
        if "=" not in item or item.startswith("="):
            report(
                f"environment_vars[{i}]",
                f"{item!r} is not KEY=VALUE",
                'for example "DEBIAN_FRONTEND=noninteractive"',
            )


def check_post_processor(config: Any, decoder: Decoder, path: str) -> None:
    report = _reporter(decoder, path)
    if isinstance(config, ShellLocalConfig):  # the shell-local post-processor
        _one_of(report, config, ("command", "inline", "script", "scripts"))
        _exists(report, "script", config.script)
        _env_vars(report, config.environment_vars)
    elif isinstance(config, ArtificeConfig) and not config.files:
        report("files", "artifice needs files", 'list the new artifact\'s files: files = ["out/disk.img"]')
    elif isinstance(config, VagrantConfig):
        _check_vagrant(config, report)
    if isinstance(config, ChecksumConfig):
        for i, kind in enumerate(config.checksum_types):
            if kind not in CHECKSUM_TYPES:
                report(
                    f"checksum_types[{i}]",
                    f"unknown checksum type {kind!r}",
                    "valid: " + ", ".join(CHECKSUM_TYPES),
                )
    if isinstance(config, ConvertConfig):
        if not config.formats:
            report("formats", "formats is empty", "list one or more of: " + ", ".join(CONVERT_FORMATS))
        for i, fmt in enumerate(config.formats):
            if fmt not in CONVERT_FORMATS:
                report(
                    f"formats[{i}]", f"unknown disk format {fmt!r}", "valid: " + ", ".join(CONVERT_FORMATS)
                )


def _check_vagrant(config: VagrantConfig, report: Report) -> None:
    if config.provider_override:
        reason = unsupported_provider(config.provider_override)
        if reason:
            report("provider_override", reason, 'use "libvirt", or remove the vagrant post-processor')
    if not config.vagrantfile_template_generated:
        _exists(report, "vagrantfile_template", config.vagrantfile_template)
    for i, item in enumerate(config.include):
        _exists(report, f"include[{i}]", item)
