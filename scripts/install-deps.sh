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
