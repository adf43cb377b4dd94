#!/usr/bin/env bash
# Installs the Debian packages vmbake needs to bake images, and those its test suite needs.
# Run as root, or as a user with sudo. Usage: scripts/install-deps.sh [--no-tests]
# Recommends are kept: QEMU's GTK display and mmdebstrap's helpers are among them, as the tests were run with them.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

# To bake: QEMU and qemu-img; mmdebstrap and the partitioning/filesystem/boot-loader tools of the
# debian-bootstrap builder; the archive keyring and a verifier for netboot downloads; xorriso for CD images;
# python3-venv for scripts/setup.sh, which installs vmbake into a venv (Debian's python3 refuses pip, PEP 668).
# libcrypt1 (libxcrypt) to hash root_password with yescrypt.
packages=(
  python3-venv
  qemu-system-x86 qemu-utils ovmf
  mmdebstrap debian-archive-keyring sqv gpgv
  e2fsprogs dosfstools mtools fdisk mount util-linux
  grub-pc-bin grub-efi-amd64-bin grub2-common
  openssh-client xorriso cpio zstd procps ca-certificates libcrypt1
  # arm64 images (architecture = "arm64"): mmdebstrap runs arm64 programs through qemu-user, registered
  # with binfmt_misc; the image boots under qemu-system-aarch64 with AAVMF (UEFI).
  qemu-user-static binfmt-support qemu-system-arm qemu-efi-aarch64
)
if [ "${1:-}" != "--no-tests" ]; then
  # To test: a real sshd, shellcheck for provision.sh, d-i's netboot files and isolinux for a
  # netinst-like ISO, gpg to sign a test archive, Chromium to render the HTML report, groff and
  # man-db to check that the man page renders, openssl to check password hashes with a second
  # implementation, vagrant and vagrant-libvirt to check that `vagrant box add` takes a made box,
  # apt-cacher-ng for the package proxy test (it runs its own daemon on a free port), ansible-core for
  # the ansible and ansible-local provisioners.
  packages+=(
    openssh-server shellcheck debian-installer-12-netboot-amd64 isolinux syslinux-common
    gpg chromium groff-base man-db openssl vagrant vagrant-libvirt apt-cacher-ng ansible-core
  )
fi
$SUDO apt-get update -q
$SUDO apt-get install -y -q "${packages[@]}"
# Debian's packer (1.6.6, in bookworm; installed where the archive has it) judges the template corpus beside vmbake.
if [ "${1:-}" != "--no-tests" ] && apt-cache policy packer 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  $SUDO apt-get install -y -q packer
fi

# qemu-user-static registers its binfmt entries only where binfmt_misc is mounted, and a container without
# systemd as PID 1 does not mount it: mount it, register qemu-aarch64, and run a tiny arm64 program
# (132 bytes: exit(42)) to show that the host now runs arm64 programs.
if [ "$(dpkg --print-architecture)" != arm64 ]; then
  if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
    $SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || true
  fi
  if ! grep -qs '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
    $SUDO update-binfmts --enable qemu-aarch64 || true
  fi
  probe="$(mktemp)"
  printf '\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00\x01\x00\x00\x00\x78\x00\x40\x00\x00\x00\x00\x00\x40\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x40\x00\x38\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x40\x00\x00\x00\x00\x00\x00\x00\x40\x00\x00\x00\x00\x00\x84\x00\x00\x00\x00\x00\x00\x00\x84\x00\x00\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x40\x05\x80\xd2\xa8\x0b\x80\xd2\x01\x00\x00\xd4' > "$probe"
  chmod 755 "$probe"
  status=0
  "$probe" || status=$?
  rm -f "$probe"
  if [ "$status" -ne 42 ]; then
    # A warning, not a failure: amd64 builds need none of this, and an arm64 build names the gap when
    # it starts.
    echo "install-deps: warning: this host cannot run arm64 programs through qemu-user (binfmt_misc);" \
      "arm64 builds will fail" >&2
  fi
fi
