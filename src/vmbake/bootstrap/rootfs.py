"""The root filesystem: which packages, which dpkg excludes, which customizations, and mmdebstrap's argv.

Everything here is pure (config in, text or argv out) except `run_mmdebstrap`. The customization is one
shell script that mmdebstrap runs as a customize hook with the root directory as "$1"; it is written to the
build's private work directory because it may carry the hashed root password.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vmbake import arch, procs
from vmbake.config.bootstrap import BootstrapConfig, effective_mirror
from vmbake.config.login import active_users
from vmbake.login import CLOUD_INIT_CFG, CLOUD_INIT_CFG_PATH, crypted, user_commands

# dpkg path-exclude sets; copyright files stay because the licences require them.
EXCLUDE_SETS: dict[str, tuple[str, ...]] = {
    "docs": ("path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright"),
    "man": ("path-exclude=/usr/share/man/*",),
    "info": ("path-exclude=/usr/share/info/*",),
    "locales": ("path-exclude=/usr/share/locale/*", "path-include=/usr/share/locale/locale.alias"),
    # udev's hardware names database (vendor names, laptop key maps): 20 MiB a server VM does not use.
    # dpkg matches the packaged path, which is /lib/udev before trixie (merged /usr) and /usr/lib/udev after.
    "hwdb": (
        "path-exclude=/lib/udev/hwdb.bin",
        "path-exclude=/lib/udev/hwdb.d/*",
        "path-exclude=/usr/lib/udev/hwdb.bin",
        "path-exclude=/usr/lib/udev/hwdb.d/*",
    ),
}
MERGED_USR_HOOKS = "/usr/share/mmdebstrap/hooks/maybe-merged-usr"
OLD_SUITES = ("buster", "bullseye")  # systemd-resolved is still part of systemd there


def grub_packages(firmware: str, architecture: str = "amd64") -> list[str]:
    if firmware == "bios":
        return ["grub-pc"]
    if firmware == "efi":
        return [arch.of(architecture).grub_efi, "dosfstools"]
    return ["grub-pc", "grub-efi-amd64-bin", "dosfstools"]  # hybrid: grub-pc owns the config


def packages(config: BootstrapConfig) -> list[str]:
    """The packages added to the variant: boot, network, SSH, bootloader, then the user's."""
    wanted = [
        config.kernel, "initramfs-tools", "zstd", "systemd-sysv", "udev", "dbus", "e2fsprogs", "openssh-server",
        "libnss-resolve", *grub_packages(config.firmware, config.architecture),
    ]  # fmt: skip
    if config.locale not in ("C.UTF-8", "C", "POSIX"):
        wanted.append("locales")
    if config.timezone not in ("Etc/UTC", "UTC"):
        wanted.append("tzdata")
    if config.keyboard != "us":
        wanted.append("console-setup")
    if any(u.sudo for u in active_users(config)):
        wanted.append("sudo")
    if config.cloud_init:
        wanted.append("cloud-init")
    wanted += config.include
    seen: list[str] = []
    for name in wanted:
        if name not in config.exclude and name not in seen:
            seen.append(name)
    return seen


def dpkg_options(excludes: list[str]) -> list[str]:
    """dpkg options (for --dpkgopt and the image's dpkg.cfg.d) keeping `excludes` off the disk."""
    lines: list[str] = []
    includes: list[str] = []
    for item in excludes:
        if item in EXCLUDE_SETS:
            for line in EXCLUDE_SETS[item]:
                (includes if line.startswith("path-include") else lines).append(line)
        else:
            lines.append(f"path-exclude={item}")
    return lines + includes  # dpkg applies the last matching rule: includes come last


# The disk drivers a QEMU VM can boot from; their dependencies come along (manual_add_modules).
VM_INITRAMFS_MODULES = (
    "virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod", "ahci", "ata_piix", "ata_generic", "nvme", "ext4",
    "crc32c_generic",
)  # fmt: skip


# While the packages install, update-initramfs is diverted to a no-op: dpkg would otherwise make the
# initramfs twice (the kernel's postinst hook, then initramfs-tools' trigger redoes it), and for another
# architecture each run is 40 s of CPU under qemu-user. make_initramfs_script() makes it once, at the end.
UPDATE_INITRAMFS = "/usr/sbin/update-initramfs"
_STUB_MARK = "vmbake: the initramfs is made once, after the last package"
DEFER_INITRAMFS = (
    f'chroot "$1" dpkg-divert --quiet --local --rename --divert {UPDATE_INITRAMFS}.vmbake --add {UPDATE_INITRAMFS}'
    f" && printf '#!/bin/sh\\n# {_STUB_MARK}\\nexit 0\\n' > \"$1{UPDATE_INITRAMFS}\""
    f' && chmod 755 "$1{UPDATE_INITRAMFS}"\n'
)


def make_initramfs_script() -> str:
    """Customize-hook lines: the real update-initramfs back (see DEFER_INITRAMFS), and one initramfs per
    installed kernel, made now that every package (and every initramfs hook) is in."""
    return (
        f'if grep -qs {shlex.quote(_STUB_MARK)} "$root{UPDATE_INITRAMFS}"; then\n'
        f'  rm -f "$root{UPDATE_INITRAMFS}"\n'
        f'  chroot "$root" dpkg-divert --quiet --local --rename --remove {UPDATE_INITRAMFS}\n'
        "fi\n"
        f'if [ -x "$root{UPDATE_INITRAMFS}" ]; then\n'
        '  for dir in "$root"/lib/modules/*/; do\n'
        '    [ -d "$dir" ] || continue\n'
        '    version=$(basename "$dir")\n'
        '    if [ -e "$root/boot/initrd.img-$version" ]; then mode=-u; else mode=-c; fi\n'
        '    chroot "$root" update-initramfs "$mode" -k "$version"\n'
        "  done\n"
        "fi\n"
    )


def initramfs_hook_script(mode: str) -> str:
    """The essential hook: update-initramfs deferred to the end (DEFER_INITRAMFS), and the initramfs
    settings in place before anything makes an initramfs.

    RESUME=none always: the image never resumes from hibernation, and with no setting the initramfs looks
    for (and waits on) a swap device. Set here, the one initramfs the build makes has it from the start;
    provision.sh's preconfig_initramfs rebuilds only for what it adds itself (a .link file)."""
    settings = "RESUME=none\\n"
    script = DEFER_INITRAMFS + 'mkdir -p "$1/etc/initramfs-tools/conf.d"\n'
    if mode == "vm":
        settings = "MODULES=list\\n" + settings
        hook = (
            '#!/bin/sh\nPREREQ=""\nprereqs() { echo "$PREREQ"; }\n'
            'case "$1" in prereqs) prereqs; exit 0;; esac\n'
            ". /usr/share/initramfs-tools/hook-functions\n"
            f'for m in {" ".join(VM_INITRAMFS_MODULES)}; do manual_add_modules "$m"; done\n'
        )
        script += (
            'mkdir -p "$1/etc/initramfs-tools/hooks"\n'
            f"printf '%s' {shlex.quote(hook)} > \"$1/etc/initramfs-tools/hooks/vmbake-vm-disks\"\n"
            'chmod 755 "$1/etc/initramfs-tools/hooks/vmbake-vm-disks"\n'
        )
    return script + f"printf '{settings}' > \"$1/etc/initramfs-tools/conf.d/vmbake\"\n"


def grub_defaults(config: BootstrapConfig) -> str:
    """The image's /etc/default/grub.d drop-in: the menu (none by default) on the console and the serial port.
    On arm64 the UEFI console is the serial port already (AAVMF writes to the PL011), and grub's own
    serial driver does not know that port."""
    text = f"GRUB_TIMEOUT={config.grub_timeout}\nGRUB_CMDLINE_LINUX_DEFAULT={shlex.quote(config.kernel_cmdline)}\n"
    if config.architecture != "amd64":
        return text + 'GRUB_TERMINAL="console"\n'
    return text + 'GRUB_TERMINAL="console serial"\nGRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"\n'


def network_unit() -> str:
    """systemd-networkd: DHCP on the first wired NIC, whatever naming scheme the kernel uses."""
    return "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n\n[DHCP]\nUseDomains=yes\n"


# Only an ed25519 host key: an RSA key takes most of a minute to make on an emulated CPU (TCG).
SSH_HOST_KEYS_UNIT = """[Unit]
Description=Generate the SSH host key on first boot
ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key
# Early, beside the rest of the boot: it needs only the root file system read-write (and the kernel's
# random pool, which ssh-keygen waits for), not basic.target, so sshd need not wait for it afterwards.
DefaultDependencies=no
RequiresMountsFor=/etc/ssh
After=systemd-remount-fs.service
Before=ssh.service shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -C "" -f /etc/ssh/ssh_host_ed25519_key

[Install]
WantedBy=ssh.service
"""


def _heredoc(path: str, text: str, mode: str = "644") -> str:
    marker = "VMBAKE_EOF"
    assert marker not in text
    target = f'"$root"{shlex.quote(path)}'
    parent = f'"$root"{shlex.quote(path.rsplit("/", 1)[0] or "/")}'
    body = text.rstrip("\n")
    return f"mkdir -p {parent}\ncat > {target} <<'{marker}'\n{body}\n{marker}\nchmod {mode} {target}\n"


def customize_script(config: BootstrapConfig, authorized_keys: list[str]) -> str:
    """The customize hook: host name, network, SSH access, locale, grub defaults, and no litter."""
    fqdn = f"{config.hostname}.{config.domain}" if config.domain else config.hostname
    hosts = (
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{fqdn}"
        + (f" {config.hostname}" if config.domain else "")
        + ("\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
    )
    disk = "/dev/vda" if config.disk_interface == "virtio" else "/dev/sda"
    parts = [
        '#!/bin/sh\n# vmbake debian-bootstrap customize hook; $1 is the root filesystem\nset -eu\nroot="$1"\n',
        _heredoc("/etc/hostname", config.hostname + "\n"),
        _heredoc("/etc/hosts", hosts),
        'mkdir -p "$root/etc/systemd/network"\n',
        _heredoc("/etc/systemd/network/20-wired.network", network_unit()),
        'chroot "$root" systemctl enable systemd-networkd.service\n',
    ]
    if config.suite in OLD_SUITES:
        parts.append('chroot "$root" systemctl enable systemd-resolved.service\n')
    # The build host's resolv.conf must not stay; resolved provides one at boot.
    parts.append(
        'rm -f "$root/etc/resolv.conf"\nln -s ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"\n'
    )
    # SSH: root's keys, and host keys made on the first boot rather than shared by every copy of the image.
    parts.append('install -d -m 700 "$root/root/.ssh"\n')
    parts.append(_heredoc("/root/.ssh/authorized_keys", "\n".join(authorized_keys) + "\n", "600"))
    parts.append('rm -f "$root"/etc/ssh/ssh_host_*\n')
    parts.append(_heredoc("/etc/systemd/system/vmbake-ssh-host-keys.service", SSH_HOST_KEYS_UNIT))
    parts.append('chroot "$root" systemctl enable vmbake-ssh-host-keys.service\n')
    if config.root_password:
        parts.append(f'chroot "$root" usermod -p {shlex.quote(crypted(config.root_password))} root\n')
    for user in active_users(config):
        parts += [line + "\n" for line in user_commands(user, '"$root"', 'chroot "$root"')]
    if config.cloud_init:
        # Clean, so that it runs on the image's first boot: no instance data, no logs.
        parts.append(_heredoc(CLOUD_INIT_CFG_PATH, CLOUD_INIT_CFG))
        parts.append('rm -rf "$root"/var/lib/cloud/* "$root"/var/log/cloud-init*.log\n')
    if config.locale not in ("C.UTF-8", "C", "POSIX"):
        charset = config.locale.split(".", 1)[1] if "." in config.locale else "UTF-8"
        parts.append(f'echo {shlex.quote(config.locale + " " + charset)} >> "$root/etc/locale.gen"\n')
        parts.append('chroot "$root" locale-gen\n')
    parts.append(_heredoc("/etc/default/locale", f"LANG={config.locale}\n"))
    parts.append(f'ln -sf /usr/share/zoneinfo/{shlex.quote(config.timezone)} "$root/etc/localtime"\n')
    parts.append(_heredoc("/etc/timezone", config.timezone + "\n"))
    if config.keyboard != "us":
        parts.append(_heredoc("/etc/default/keyboard", f'XKBMODEL="pc105"\nXKBLAYOUT="{config.keyboard}"\n'))
    parts.append('mkdir -p "$root/etc/default/grub.d"\n')
    parts.append(_heredoc("/etc/default/grub.d/50-vmbake.cfg", grub_defaults(config)))
    selections = [f"grub-pc grub-pc/install_devices multiselect {disk}"]
    if config.firmware != "bios":
        grub_efi = arch.of(config.architecture).grub_efi
        selections += [f"{grub_efi} grub2/force_efi_extra_removable boolean true",
                       f"{grub_efi} grub2/update_nvram boolean false"]  # fmt: skip
    parts.append(
        f"printf '%s\\n' {' '.join(shlex.quote(s) for s in selections)} | chroot \"$root\" debconf-set-selections\n"
    )
    purge = [name for name in config.exclude]
    if purge:
        names = " ".join(shlex.quote(n) for n in purge)
        parts.append(
            f'for p in {names}; do if chroot "$root" dpkg-query -W -f \'${{Status}}\' "$p" 2>/dev/null'
            ' | grep -q installed; then chroot "$root" env DEBIAN_FRONTEND=noninteractive'
            ' apt-get -y purge --auto-remove "$p"; fi; done\n'
        )
    if config.dpkg_excludes:
        parts.append(
            _heredoc("/etc/dpkg/dpkg.cfg.d/vmbake-excludes", "\n".join(dpkg_options(config.dpkg_excludes)))
        )
    # After the purges (their scripts may call update-initramfs too): the one initramfs of the build.
    parts.append(make_initramfs_script())
    # No litter: the build's apt options (proxy), a machine-id shared by every copy, the host's hostname.
    parts.append(FORGET_BUILD_OPTIONS + "\n")
    parts.append(': > "$root/etc/machine-id"\nrm -f "$root/var/lib/dbus/machine-id"\n')
    return "".join(parts)


# mmdebstrap writes its --aptopt and --dpkgopt options into the image: the build's proxy must not stay there.
FORGET_BUILD_OPTIONS = (
    'rm -f "$root/etc/apt/apt.conf.d/99mmdebstrap" "$root/etc/dpkg/dpkg.cfg.d/99mmdebstrap"'
)


def proxy_aptopt(url: str) -> str:
    """mmdebstrap's option sending apt through the package proxy `url` (for the build only)."""
    return f'--aptopt=Acquire::http::Proxy "{url}"'


@dataclass(frozen=True)
class CacheHooks:
    """Where mmdebstrap reads cached .debs from and writes the .debs it used to."""

    cache_dir: Path
    used_dir: Path


def keeps_apt_lists(config: BootstrapConfig) -> bool:
    """Whether the user's mmdebstrap_args already keep the package lists (--skip=cleanup/apt[/lists])."""
    args = config.mmdebstrap_args
    values = [a.split("=", 1)[1] for a in args if a.startswith("--skip=")]
    values += [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--skip"]
    skipped = {item for value in values for item in value.replace(",", " ").split()}
    return bool(skipped & {"cleanup/apt", "cleanup/apt/lists"})


def mmdebstrap_argv(
    config: BootstrapConfig,
    target: Path,
    hook: Path,
    cache: CacheHooks | None,
    *,
    verbose: bool = False,
    keep_lists: bool = False,
) -> list[str]:
    """The exact mmdebstrap command line (pure: tested against exact lists). With `keep_lists`, mmdebstrap
    leaves its package lists in the tree, for a provisioner's `apt-get update` to revalidate rather than
    download again (the builder removes them after provisioning unless the provisioner took them over)."""
    argv = ["mmdebstrap", f"--variant={config.variant}", f"--components={','.join(config.components)}"]
    if config.architecture != "amd64":
        argv.append(f"--architectures={config.architecture}")
    names = packages(config)
    if names:
        argv.append(f"--include={','.join(names)}")
    argv += [f"--dpkgopt={line}" for line in dpkg_options(config.dpkg_excludes)]
    # No fsync after every unpacked file: the tree is thrown away if the build fails. The option lives in
    # the build-only dpkg.cfg.d/99mmdebstrap, which the customize hook removes.
    argv.append("--dpkgopt=force-unsafe-io")
    if config.apt_proxy:
        argv.append(proxy_aptopt(config.apt_proxy))
    argv.append(f"--hook-dir={MERGED_USR_HOOKS}")
    if cache is not None:
        argv += [
            "--skip=download/empty",
            "--skip=essential/unlink",
            '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
            f"--setup-hook=sync-in {cache.cache_dir} /var/cache/apt/archives/",
            f"--customize-hook=sync-out /var/cache/apt/archives {cache.used_dir}",
        ]
    if keep_lists:
        argv.append("--skip=cleanup/apt/lists")
    argv.append(f"--essential-hook={initramfs_hook_script(config.initramfs)}")
    argv.append(f"--customize-hook={hook}")
    if verbose:
        argv.append("--verbose")
    argv += config.mmdebstrap_args
    argv += [config.suite, str(target), effective_mirror(config)]
    return argv


# mmdebstrap's phase lines: without -debug, only these (and problems) are shown, as a progress line each.
PHASES = (
    "downloading packages",
    "extracting archives",
    "installing essential packages",
    "installing remaining packages",
    "cleaning package lists",
    "creating tarball",
    "success in",
)


def progress_filter(say: Callable[[str], None], debug: bool) -> Callable[[str], None]:
    """mmdebstrap's output as the user sees it: every line under -debug, else its phases and problems."""

    def on_line(line: str) -> None:
        text = line.strip()
        if debug:
            say(text)
        elif text.startswith(PHASES) or text.startswith(("W: ", "E: ")) or "error" in text.lower():
            say("mmdebstrap: " + text.rstrip("."))

    return on_line


def run_mmdebstrap(argv: list[str], on_line: Callable[[str], None], timeout: float = 1800) -> None:
    procs.run(
        argv,
        on_line=on_line,
        timeout=timeout,
        what="mmdebstrap",
        hint="check the suite, the mirror and the package names; run with -debug to see mmdebstrap's output",
    )
