"""mmdebstrap's argv (exact), the package set, the dpkg excludes and the customize hook's content."""

from __future__ import annotations

import subprocess
from pathlib import Path

from vmbake.bootstrap.rootfs import (
    DEFER_INITRAMFS,
    CacheHooks,
    customize_script,
    dpkg_options,
    grub_defaults,
    initramfs_hook_script,
    keeps_apt_lists,
    make_initramfs_script,
    mmdebstrap_argv,
    packages,
    progress_filter,
)
from vmbake.config.bootstrap import BootstrapConfig

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBuildKeyBodyForTests vmbake-bootstrap"


def test_argv_is_exact() -> None:
    config = BootstrapConfig(
        suite="bookworm", kernel="linux-image-cloud-amd64", include=["curl"], apt_proxy="http://proxy:3142",
        mmdebstrap_args=["--keyring=/k.gpg"],
    )  # fmt: skip
    cache = CacheHooks(Path("/c/debs"), Path("/w/used"))
    argv = mmdebstrap_argv(config, Path("/w/rootfs.tar"), Path("/w/customize.sh"), cache)
    assert argv == [
        "mmdebstrap",
        "--variant=apt",
        "--components=main",
        "--include=linux-image-cloud-amd64,initramfs-tools,zstd,systemd-sysv,udev,dbus,e2fsprogs,"
        "openssh-server,libnss-resolve,grub-pc,curl",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/info/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-exclude=/lib/udev/hwdb.bin",
        "--dpkgopt=path-exclude=/lib/udev/hwdb.d/*",
        "--dpkgopt=path-exclude=/usr/lib/udev/hwdb.bin",
        "--dpkgopt=path-exclude=/usr/lib/udev/hwdb.d/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
        "--dpkgopt=force-unsafe-io",
        '--aptopt=Acquire::http::Proxy "http://proxy:3142"',
        "--hook-dir=/usr/share/mmdebstrap/hooks/maybe-merged-usr",
        "--skip=download/empty",
        "--skip=essential/unlink",
        '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
        "--setup-hook=sync-in /c/debs /var/cache/apt/archives/",
        "--customize-hook=sync-out /var/cache/apt/archives /w/used",
        "--essential-hook=" + initramfs_hook_script("vm"),
        "--customize-hook=/w/customize.sh",
        "--keyring=/k.gpg",
        "bookworm",
        "/w/rootfs.tar",
        "http://deb.debian.org/debian",
    ]


def test_argv_without_cache_and_for_buster() -> None:
    config = BootstrapConfig(suite="buster", dpkg_excludes=[], initramfs="most")
    argv = mmdebstrap_argv(config, Path("/t.tar"), Path("/h.sh"), None, verbose=True)
    assert not any(a.startswith(("--skip", "--setup-hook")) for a in argv)
    # Debian's drivers ('most'): the deferred update-initramfs and no driver list, but still no resume device.
    (hook,) = [a for a in argv if a.startswith("--essential-hook")]
    assert hook == "--essential-hook=" + initramfs_hook_script("most")
    assert hook.startswith("--essential-hook=" + DEFER_INITRAMFS) and "MODULES" not in hook
    assert "RESUME=none" in hook
    assert [a for a in argv if a.startswith("--dpkgopt")] == ["--dpkgopt=force-unsafe-io"]
    assert argv[-5:] == [
        "--customize-hook=/h.sh",
        "--verbose",
        "buster",
        "/t.tar",
        "http://archive.debian.org/debian",
    ]


def test_initramfs_hook_sets_resume_none_for_every_mode(tmp_path: Path) -> None:
    """The essential hook, run on a plain directory as mmdebstrap runs it ($1 is the root)."""
    for mode, settings in (("vm", "MODULES=list\nRESUME=none\n"), ("most", "RESUME=none\n")):
        root = tmp_path / mode
        root.mkdir()
        subprocess.run(["sh", "-euc", initramfs_hook_script(mode), "hook", str(root)], check=True)
        assert (root / "etc/initramfs-tools/conf.d/vmbake").read_text() == settings
        assert (root / "etc/initramfs-tools/hooks/vmbake-vm-disks").exists() == (mode == "vm")


def test_kept_package_lists() -> None:
    """keep_lists skips mmdebstrap's cleanup of the lists (once); the user's own --skip is recognised."""
    config = BootstrapConfig(suite="trixie")
    argv = mmdebstrap_argv(config, Path("/t.tar"), Path("/h.sh"), None, keep_lists=True)
    assert argv.count("--skip=cleanup/apt/lists") == 1
    assert "--skip=cleanup/apt/lists" not in mmdebstrap_argv(config, Path("/t.tar"), Path("/h.sh"), None)
    assert not keeps_apt_lists(config)
    assert not keeps_apt_lists(BootstrapConfig(mmdebstrap_args=["--skip=cleanup/apt/cache"]))
    for args in (["--skip=cleanup/apt"], ["--skip=output/dev,cleanup/apt/lists"], ["--skip", "cleanup/apt"]):
        assert keeps_apt_lists(BootstrapConfig(mmdebstrap_args=args)), args


def test_packages_follow_firmware_locale_and_exclude() -> None:
    efi = packages(BootstrapConfig(firmware="efi"))
    assert "grub-efi-amd64" in efi and "grub-pc" not in efi and "dosfstools" in efi
    hybrid = packages(BootstrapConfig(firmware="hybrid", locale="de_DE.UTF-8", timezone="Europe/Berlin"))
    assert {"grub-pc", "grub-efi-amd64-bin", "locales", "tzdata"} <= set(hybrid)
    assert "dbus" not in packages(BootstrapConfig(exclude=["dbus"]))
    assert packages(BootstrapConfig(include=["udev", "vim"])).count("udev") == 1


def test_dpkg_excludes_keep_copyright_last() -> None:
    lines = dpkg_options(["docs", "/usr/share/bash-completion/*"])
    assert lines == [
        "path-exclude=/usr/share/doc/*",
        "path-exclude=/usr/share/bash-completion/*",
        "path-include=/usr/share/doc/*/copyright",
    ]


def test_customize_script_is_valid_shell_and_cleans_up() -> None:
    config = BootstrapConfig(hostname="web1", domain="example.org", root_password="$6$salt$hash")
    script = customize_script(config, [KEY])
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    assert "web1.example.org web1" in script
    assert KEY in script
    assert "usermod -p '$6$salt$hash' root" in script
    assert 'rm -f "$root/etc/apt/apt.conf.d/99mmdebstrap"' in script  # no proxy left behind
    assert ': > "$root/etc/machine-id"' in script
    assert 'rm -f "$root"/etc/ssh/ssh_host_*' in script
    assert "systemctl enable systemd-networkd.service" in script
    assert "systemctl enable systemd-resolved.service" not in script  # bookworm: its own package


def test_customize_script_runs_on_a_directory(tmp_path: Path) -> None:
    """The file-writing half of the hook on a plain directory (chroot calls are stubbed by PATH)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "chroot").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "chroot").chmod(0o755)
    root = tmp_path / "root"
    for d in ("etc/apt/apt.conf.d", "etc/dpkg/dpkg.cfg.d", "etc/ssh", "root"):
        (root / d).mkdir(parents=True)
    (root / "etc/apt/apt.conf.d/99mmdebstrap").write_text('Acquire::http::Proxy "http://p";\n')
    (root / "etc/ssh/ssh_host_rsa_key").write_text("secret")
    hook = tmp_path / "hook.sh"
    hook.write_text(customize_script(BootstrapConfig(hostname="h1"), [KEY]))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    subprocess.run(["sh", str(hook), str(root)], check=True, env=env)
    assert (root / "etc/hostname").read_text() == "h1\n"
    assert (root / "root/.ssh/authorized_keys").read_text() == KEY + "\n"
    assert (root / "root/.ssh/authorized_keys").stat().st_mode & 0o777 == 0o600
    assert not (root / "etc/apt/apt.conf.d/99mmdebstrap").exists()
    assert not (root / "etc/ssh/ssh_host_rsa_key").exists()
    assert (root / "etc/machine-id").read_text() == ""
    assert "DHCP=yes" in (root / "etc/systemd/network/20-wired.network").read_text()
    assert "path-exclude=/usr/share/man/*" in (root / "etc/dpkg/dpkg.cfg.d/vmbake-excludes").read_text()
    grub = (root / "etc/default/grub.d/50-vmbake.cfg").read_text()
    assert "GRUB_TIMEOUT=0\n" in grub and 'GRUB_TERMINAL="console serial"' in grub


def test_grub_timeout_and_kernel_cmdline_reach_the_grub_defaults() -> None:
    text = grub_defaults(BootstrapConfig(grub_timeout=5, kernel_cmdline="console=ttyS0 quiet"))
    assert text.splitlines()[:2] == ["GRUB_TIMEOUT=5", "GRUB_CMDLINE_LINUX_DEFAULT='console=ttyS0 quiet'"]


def test_progress_filter_shows_phases_only_without_debug() -> None:
    shown: list[str] = []
    on_line = progress_filter(shown.append, debug=False)
    for line in ["using /tmp/x as tempdir", "downloading packages with apt...", "Get:1 http://x y", "done"]:
        on_line(line)
    assert shown == ["mmdebstrap: downloading packages with apt"]
    everything: list[str] = []
    on_debug = progress_filter(everything.append, debug=True)
    on_debug("Get:1 http://x y")
    assert everything == ["Get:1 http://x y"]


# A stand-in for chroot(8) (the test cannot chroot into a Debian tree): it records each command and plays
# the part of dpkg-divert --remove --rename (the real file back) and update-initramfs (an initrd file).
FAKE_CHROOT = """#!/bin/sh
root="$1"; shift
echo "$*" >> "$root/calls"
case "$*" in
  "dpkg-divert "*--remove*) mv "$root/usr/sbin/update-initramfs.vmbake" "$root/usr/sbin/update-initramfs" ;;
  "update-initramfs "*) touch "$root/boot/initrd.img-$4" ;;
esac
"""


def test_update_initramfs_is_deferred_then_run_once_per_kernel(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "chroot").write_text(FAKE_CHROOT)
    (bin_dir / "chroot").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    root = tmp_path / "root"
    for d in ("usr/sbin", "boot", "lib/modules/6.1.0-9-cloud-arm64"):
        (root / d).mkdir(parents=True)
    # The essential hook: the diversion, and a no-op in the real program's place.
    subprocess.run(["sh", "-c", initramfs_hook_script("vm"), "hook", str(root)], check=True, env=env)
    stub = root / "usr/sbin/update-initramfs"
    assert subprocess.run([str(stub), "-u"], check=False).returncode == 0
    assert "dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.vmbake --add" in (
        (root / "calls").read_text()
    )
    assert (root / "etc/initramfs-tools/conf.d/vmbake").read_text() == "MODULES=list\nRESUME=none\n"
    # dpkg then installs initramfs-tools' program under the diverted name.
    real = root / "usr/sbin/update-initramfs.vmbake"
    real.write_text("#!/bin/sh\n# the real one\n")
    real.chmod(0o755)
    (root / "calls").unlink()
    script = 'set -eu\nroot="$1"\n' + make_initramfs_script()
    subprocess.run(["sh", "-c", script, "customize", str(root)], check=True, env=env)
    assert stub.read_text() == "#!/bin/sh\n# the real one\n" and not real.exists()
    assert (root / "calls").read_text().splitlines() == [
        "dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs",
        "update-initramfs -c -k 6.1.0-9-cloud-arm64",
    ]
    # Run again (a user's hook, say): the real program stays, and the existing initrd is updated.
    (root / "calls").unlink()
    subprocess.run(["sh", "-c", script, "customize", str(root)], check=True, env=env)
    assert (root / "calls").read_text().splitlines() == ["update-initramfs -u -k 6.1.0-9-cloud-arm64"]


def test_the_initramfs_is_made_after_the_purges_and_before_the_cleanup() -> None:
    script = customize_script(BootstrapConfig(exclude=["dbus"]), [KEY])
    made = script.index(make_initramfs_script())
    assert (
        script.index("apt-get -y purge")
        < made
        < script.index('rm -f "$root/etc/apt/apt.conf.d/99mmdebstrap"')
    )
