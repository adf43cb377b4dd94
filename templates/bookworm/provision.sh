#!/usr/bin/env bash
# provision.sh: turns a freshly installed Debian (buster to trixie) into a small, clean VM image.
#
# vmbake uploads it to /tmp and runs it as root inside the guest, once to provision and once more, as the
# shutdown command, to clean up and power off. It works on installer-built systems (LVM, ifupdown) and on
# debian-bootstrap ones (plain partitions, systemd-networkd). Run "provision.sh --help" for the sections.
#
# With VMBAKE_STAGE=tree (debian-bootstrap's provision_stage "tree"), it runs in a chroot of the image
# before its first boot: nothing is running there, so the sections that would read the running system
# take the layout from the builder instead (its /etc/fstab, VMBAKE_ROOT), a fresh filesystem is not
# zeroed, and clean_shutdown cleans up without powering anything off.

set -o errexit -o nounset -o pipefail
shopt -s nullglob

PROVISION_VERSION="1.0.0"
SELF="$(readlink -f -- "${BASH_SOURCE[0]}")"
RULER="============================================================================"

DEFAULT_SECTIONS=(
  apt_update clean_packages clean_libraries preconfig_udev_ifnames preconfig_initramfs preconfig_grub
  preconfig_fstab preconfig_hosts apt_dist_upgrade clean_apt clean_history
)
ON_REQUEST_SECTIONS=(
  zero_freespace clean_root_ssh clean_cloud_init clean_network clean_identity clean_self clean_shutdown
)

declare -A SECTION_HELP=(
  [apt_update]="refresh the package lists"
  [clean_packages]="purge what the installer leaves that a VM does not need, and removed packages' configs"
  [clean_libraries]="purge library packages that no installed package depends on"
  [preconfig_udev_ifnames]="keep the kernel's eth<N> interface names"
  [preconfig_initramfs]="no resume device in the initramfs; rebuild it unless it has that already"
  [preconfig_grub]="grub menu and kernel on the serial port and the console; update-grub"
  [preconfig_fstab]="rewrite /etc/fstab from the mounted filesystems and active swap"
  [preconfig_hosts]="rewrite /etc/hosts for this host name"
  [apt_dist_upgrade]="upgrade every package, then remove what is no longer needed"
  [clean_apt]="empty apt's package cache and lists"
  [clean_history]="remove logs and shell histories"
  [zero_freespace]="discard (fstrim) or zero the free space of ext filesystems and swap, so the image compacts"
  [clean_root_ssh]="remove the build's key from root's authorized_keys (keys the user gave stay)"
  [clean_cloud_init]="if cloud-init is installed, remove its instance data and logs, so it runs at next boot"
  [clean_network]="remove DHCP leases and persistent interface rules"
  [clean_identity]="reset machine-id, random seed and SSH host keys; new ones are made at next boot"
  [clean_self]="remove this script"
  [clean_shutdown]="clean_apt, clean_history, clean_root_ssh, clean_cloud_init, clean_network, clean_identity, clean_self, power off (not in a tree)"
)

# Sections that another one needs first; each still runs at most once per invocation.
declare -A SECTION_NEEDS=(
  [apt_dist_upgrade]="apt_update"
  [clean_shutdown]="clean_apt clean_history clean_root_ssh clean_cloud_init clean_network clean_identity clean_self"
)

# Installed by d-i's standard tasks or by hardware detection; a headless VM has no use for them.
JUNK_PACKAGES=(
  aptitude aptitude-common avahi-autoipd blends-tasks bluetooth bluez debian-faq dictionaries-common discover
  discover-data doc-debian dmidecode eject emacsen-common iamerican ibritish ienglish-common installation-report
  ispell laptop-detect libdiscover2 nano os-prober reportbug task-english task-ssh-server tasksel tasksel-data
  wamerican wbritish
)
# Kept even when marked as automatically installed, so that purging the tasks cannot take them away.
KEEP_PACKAGES=(
  openssh-server linux-image-amd64 linux-image-cloud-amd64 grub-pc grub-efi-amd64 lvm2 ifupdown
  isc-dhcp-client dhcpcd-base initramfs-tools
)

usage() {
  local name
  cat <<EOF
Usage: provision.sh [OPTION]...
Provision a Debian VM image by sections. Without --section, run the default sections in order.

Options:
  -S, --section NAME  run section NAME (repeatable; 'default' stands for the default sections)
  -X, --exclude NAME  skip section NAME, even when another section needs it (repeatable)
  -B, --batch         ask no questions (apt runs non-interactively)
  -C, --confirm       ask before each section
  -n, --dry-run       print the sections that would run, in order, and run nothing
  -h, --help          show this help
  -v, --version       show the version

Default sections, in order:
EOF
  for name in "${DEFAULT_SECTIONS[@]}"; do printf '  %-24s %s\n' "$name" "${SECTION_HELP[$name]}"; done
  echo
  echo "Sections run only on request:"
  for name in "${ON_REQUEST_SECTIONS[@]}"; do printf '  %-24s %s\n' "$name" "${SECTION_HELP[$name]}"; done
}

die_usage() {
  printf 'provision.sh: %s\n' "$1" >&2
  printf "Try 'provision.sh --help' for more information.\n" >&2
  exit 2
}

known_section() {
  [[ -n "${SECTION_HELP[$1]+set}" ]]
}

# --- helpers for the sections ------------------------------------------------------------------------

# Every file the script writes begins with this header: who wrote it and how to apply a change.
# $1: the section, $2: the comment character, $3: how to apply a change.
file_header() {
  printf '%s vmbake provisioned this file (provision.sh, section %s).\n' "$2" "$1"
  printf '%s To apply a change: %s\n' "$2" "$3"
}

# Write stdin to $1, after the header, atomically. $2: how to apply a change; $3: comment character.
write_file() {
  local path="$1" apply="$2" comment="${3:-#}" tmp
  mkdir -p -- "$(dirname -- "$path")"
  tmp="$(mktemp -- "$path.vmbake.XXXXXX")"
  { file_header "$CURRENT_SECTION" "$comment" "$apply"; cat; } >"$tmp"
  chmod 0644 -- "$tmp"
  # The same text with the same mode is there already: keep it, and its time (preconfig_initramfs reads it).
  if [[ -f "$path" && ! -L "$path" ]] && cmp -s -- "$tmp" "$path" && [[ "$(stat -c %a -- "$path")" == 644 ]]; then
    rm -f -- "$tmp"
    echo "kept '$path' (unchanged)"
    return 0
  fi
  mv -f -- "$tmp" "$path"
  echo "wrote '$path'"
}

installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == ii* ]]
}

apt_get() {
  apt-get "${APT_OPTIONS[@]}" "$@"
}

has_systemd() {
  [[ -d /run/systemd/system ]]
}

# True in a chroot of the image before its first boot (set by vmbake's debian-bootstrap builder).
in_tree() {
  [[ "${VMBAKE_STAGE:-}" == tree ]]
}

# True when the block device $1 accepts discard requests (TRIM).
discards() {
  local max
  max="$(lsblk -ndbo DISC-MAX -- "$1" 2>/dev/null | tr -d '[:space:]')" || return 1
  [[ "$max" =~ ^[1-9][0-9]*$ ]]
}

# "/dev/mapper/NAME" for device-mapper devices (LVM), else the device itself.
device_name() {
  local dev name
  dev="$(readlink -f -- "$1")"
  if [[ "$dev" == /dev/dm-* ]] && name="$(cat "/sys/block/${dev#/dev/}/dm/name" 2>/dev/null)"; then
    echo "/dev/mapper/$name"
  else
    echo "$1"
  fi
}

# How fstab should name a device: device-mapper paths stay stable, partitions go by UUID.
fstab_source() {
  local dev uuid
  dev="$(device_name "$1")"
  if [[ "$dev" == /dev/mapper/* ]]; then
    echo "$dev"
  elif uuid="$(blkid -o value -s UUID -- "$1")" && [[ -n "$uuid" ]]; then
    echo "UUID=$uuid"
  else
    echo "$dev"
  fi
}

# The mounted block-device filesystems: "SOURCE MOUNTPOINT FSTYPE", one per device (bind mounts skipped).
mounted_filesystems() {
  awk '$1 ~ "^/dev/" && !seen[$1]++ { print $1, $2, $3 }' /proc/self/mounts
}

# --- the sections ------------------------------------------------------------------------------------

section_apt_update() {
  apt_get -qq update
}

section_clean_packages() {
  local pkg keep=() purge=() leftovers=()
  for pkg in "${KEEP_PACKAGES[@]}"; do
    if installed "$pkg" && [[ "$(apt-mark showauto "$pkg")" == "$pkg" ]]; then keep+=("$pkg"); fi
  done
  if ((${#keep[@]} > 0)); then apt-mark manual "${keep[@]}"; fi
  for pkg in "${JUNK_PACKAGES[@]}"; do
    if installed "$pkg"; then purge+=("$pkg"); fi
  done
  # usrmerge converts /usr once (buster); the conversion stays after the package goes.
  if [[ -L /bin ]] && installed usrmerge; then purge+=(usrmerge); fi
  if ((${#purge[@]} > 0)); then
    apt_get purge --auto-remove "${purge[@]}"
  else
    echo "no installer leftovers to purge"
  fi
  mapfile -t leftovers < <(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk '$1 == "rc" { print $2 }')
  if ((${#leftovers[@]} > 0)); then dpkg --purge "${leftovers[@]}"; fi
}

# Installed, automatically installed libraries that no installed package Depends or Pre-Depends on.
orphan_libraries() {
  local auto
  auto="$(apt-mark showauto | tr '\n' ' ')"
  dpkg-query -W -f='${db:Status-Abbrev}\t${Package}\t${Section}\t${Priority}\t${Essential}\t${Provides}\t${Depends}, ${Pre-Depends}\n' |
    awk -F '\t' -v auto="$auto" '
      BEGIN { n = split(auto, a, " "); for (i = 1; i <= n; i++) is_auto[a[i]] = 1 }
      $1 !~ /^ii/ { next }
      {
        name[NR] = $2; section[NR] = $3; priority[NR] = $4; essential[NR] = $5; provides[NR] = $6
        m = split($7, deps, /[,|]/)
        for (i = 1; i <= m; i++) {
          d = deps[i]; sub(/^[ \t]+/, "", d); sub(/[ \t(].*$/, "", d); sub(/:.*$/, "", d)
          if (d != "") needed[d] = 1
        }
      }
      END {
        for (r in name) {
          p = name[r]
          if (!is_auto[p] || needed[p] || essential[r] == "yes") continue
          if (priority[r] == "required" || priority[r] == "important") continue
          if (section[r] !~ /(^|\/)(libs|oldlibs)$/ && p !~ /^lib/) continue
          k = split(provides[r], pv, /,/); used = 0
          for (i = 1; i <= k; i++) { v = pv[i]; sub(/^[ \t]+/, "", v); sub(/[ \t(].*$/, "", v); if (needed[v]) used = 1 }
          if (!used) print p
        }
      }' | sort
}

section_clean_libraries() {
  local round orphans=()
  # Purging a library can orphan the libraries it used: go round until none is left (or 5 rounds).
  for round in 1 2 3 4 5; do
    mapfile -t orphans < <(orphan_libraries)
    if ((${#orphans[@]} == 0)); then
      if ((round == 1)); then echo "no orphaned libraries"; fi
      return 0
    fi
    apt_get purge "${orphans[@]}"
  done
}

section_preconfig_udev_ifnames() {
  # The kernel command line (net.ifnames=0, see preconfig_grub) does the same; this holds without it.
  write_file /etc/systemd/network/70-vmbake-ifnames.link \
    "run 'update-initramfs -u' (the initramfs carries .link files), then reboot." <<'EOF'
[Match]
OriginalName=*

[Link]
NamePolicy=kernel
EOF
}

# The RESUME value that initramfs-tools configuration files $@ give, read in order as the initramfs does.
resume_setting() {
  awk '/^[[:space:]]*RESUME=/ { v = $0; sub(/^[^=]*=/, "", v); gsub(/["\047[:space:]]/, "", v) } END { print v }' "$@" </dev/null
}

# True when the initramfs $1 has what this section and preconfig_udev_ifnames want in it already:
# RESUME=none, and a copy of every .link file of /etc/systemd/network (udev's hook carries them).
initramfs_current() {
  local dir root link name ok=1
  command -v unmkinitramfs >/dev/null || return 1
  for link in /etc/systemd/network/*.link; do
    if [[ "$link" -nt "$1" ]]; then return 1; fi # written since: no need to look inside
  done
  dir="$(mktemp -d)"
  if unmkinitramfs "$1" "$dir" >/dev/null 2>&1; then
    root="$dir"
    if [[ -d "$dir/main" ]]; then root="$dir/main"; fi # an early (microcode) archive comes first
    if [[ ! -f "$root/conf/initramfs.conf" ]] ||
      [[ "$(resume_setting "$root/conf/initramfs.conf" "$root"/conf/conf.d/*)" != none ]]; then
      ok=0
    fi
    if [[ -d "$root/usr/lib/systemd/network" || -d "$root/lib/systemd/network" ]]; then
      for link in /etc/systemd/network/*.link; do
        name="${link##*/}"
        if ! cmp -s -- "$link" "$root/usr/lib/systemd/network/$name" &&
          ! cmp -s -- "$link" "$root/lib/systemd/network/$name"; then
          ok=0
        fi
      done
    fi
  else
    ok=0
  fi
  rm -rf -- "$dir"
  ((ok == 1))
}

section_preconfig_initramfs() {
  # A VM image resumes from no hibernation image; without this the initramfs waits for the swap device.
  write_file /etc/initramfs-tools/conf.d/resume "run 'update-initramfs -u'." <<'EOF'
RESUME=none
EOF
  if ! command -v update-initramfs >/dev/null; then
    echo "initramfs-tools is not installed: nothing to rebuild"
    return 0
  fi
  local initrd stale=0 found=0
  for initrd in /boot/initrd.img-*; do
    found=1
    if ! initramfs_current "$initrd"; then stale=1; fi
  done
  # debian-bootstrap sets RESUME=none before the kernel's package makes the first initramfs.
  if ((found == 1 && stale == 0)); then
    echo "every initramfs has RESUME=none and the .link files already: nothing to rebuild"
  else
    update-initramfs -u -k all
  fi
}

# The kernel arguments grub's configuration gives, without this section's own drop-in.
grub_cmdline() {
  (
    set +o nounset
    # shellcheck disable=SC1091
    . /etc/default/grub
    for cfg in /etc/default/grub.d/*.cfg; do
      # shellcheck disable=SC1090
      if [[ "$cfg" != "$GRUB_DROPIN" ]]; then . "$cfg"; fi
    done
    printf '%s %s\n' "${GRUB_CMDLINE_LINUX:-}" "${GRUB_CMDLINE_LINUX_DEFAULT:-}"
  )
}

GRUB_DROPIN=/etc/default/grub.d/90-vmbake-provision.cfg

section_preconfig_grub() {
  if ! command -v update-grub >/dev/null || [[ ! -f /etc/default/grub ]]; then
    echo "grub is not installed: nothing to configure"
    return 0
  fi
  local current missing="" want
  current=" $(grub_cmdline) "
  for want in net.ifnames=0 console=tty0 console=ttyS0,115200n8; do
    # A console already given (for example console=ttyS0,115200) is kept as it is.
    if [[ "$current" != *" ${want%%,*}"[\ ,]* ]]; then missing+=" $want"; fi
  done
  write_file "$GRUB_DROPIN" "run 'update-grub'." <<EOF
GRUB_TIMEOUT=1
GRUB_CMDLINE_LINUX="\${GRUB_CMDLINE_LINUX:-}$missing"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1"
EOF
  update-grub
}

# In the tree no filesystem of the image is mounted as it will be and no swap is active: the builder
# wrote /etc/fstab from its partition layout (every filesystem by UUID). Keep it once it names the root.
tree_fstab() {
  local root="${VMBAKE_ROOT:-}"
  if [[ -z "$root" ]] || ! awk -v r="$root" '$1 == r && $2 == "/" { found = 1 } END { exit !found }' /etc/fstab; then
    echo "/etc/fstab does not mount the builder's root filesystem (${root:-VMBAKE_ROOT unset}) on /" >&2
    return 1
  fi
  echo "kept '/etc/fstab': the builder wrote it from its layout (root $root)"
}

section_preconfig_fstab() {
  if in_tree; then
    tree_fstab
    return
  fi
  local source target fstype opts pass src old_opts fstab=/etc/fstab new
  new="$(mktemp /etc/fstab.vmbake.XXXXXX)"
  {
    file_header "$CURRENT_SECTION" "#" "run 'systemctl daemon-reload', then 'mount -a' or reboot."
    echo "#"
    echo "# <file system> <mount point> <type> <options> <dump> <pass>"
    while read -r source target fstype; do
      case "$fstype" in ext2 | ext3 | ext4 | xfs | btrfs | vfat) ;; *) continue ;; esac
      src="$(fstab_source "$source")"
      # Keep the options the old fstab gave this mount point; otherwise Debian's defaults.
      old_opts="$(awk -v t="$target" '$1 !~ /^#/ && $2 == t { print $4; exit }' "$fstab")"
      opts="${old_opts:-defaults}"
      if [[ -z "$old_opts" && "$target" == / ]]; then opts="errors=remount-ro"; fi
      if [[ "$fstype" == ext* || "$fstype" == vfat ]]; then
        if [[ "$target" == / ]]; then pass=1; else pass=2; fi
      else
        pass=0
      fi
      printf '%s\t%s\t%s\t%s\t0\t%s\n' "$src" "$target" "$fstype" "$opts" "$pass"
    done < <(mounted_filesystems | sort -k2,2)
    while read -r source _; do
      # Swap files and zram keep their own setup; only swap partitions and volumes go into fstab.
      if [[ "$source" == /dev/* && "$source" != /dev/zram* ]]; then
        printf '%s\tnone\tswap\tsw\t0\t0\n' "$(fstab_source "$source")"
      fi
    done < <(tail -n +2 /proc/swaps)
    # Entries that are not block devices (tmpfs, network filesystems) stay; CD-ROM and floppy ones go.
    awk '$1 !~ /^#/ && NF >= 3 && $1 !~ /^(\/dev\/|UUID=|LABEL=|PARTUUID=|PARTLABEL=)/ && $3 !~ /^(swap|auto|iso9660|udf)$/' "$fstab"
  } >"$new"
  if ! findmnt --verify --tab-file "$new" >/dev/null 2>&1; then
    findmnt --verify --tab-file "$new" || true
    rm -f -- "$new"
    echo "the new fstab does not verify; /etc/fstab is unchanged" >&2
    return 1
  fi
  chmod 0644 -- "$new"
  mv -f -- "$new" "$fstab"
  echo "wrote '$fstab'"
  if has_systemd; then systemctl daemon-reload; fi
}

section_preconfig_hosts() {
  local host fqdn names
  host="$(cat /etc/hostname 2>/dev/null || hostname)"
  host="${host%%.*}"
  # The domain the installer recorded for this host, if any.
  fqdn="$(awk -v h="$host" '$1 == "127.0.1.1" { for (i = 2; i <= NF; i++) if (index($i, h ".") == 1) { print $i; exit } }' /etc/hosts 2>/dev/null || true)"
  names="$host"
  if [[ -n "$fqdn" ]]; then names="$fqdn $host"; fi
  write_file /etc/hosts "edit it; changes apply at once." <<EOF
127.0.0.1	localhost
127.0.1.1	$names

::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
EOF
}

section_apt_dist_upgrade() {
  apt_get --no-install-recommends dist-upgrade
  apt_get autoremove --purge
}

section_clean_apt() {
  apt-get clean
  # The build's package proxy (the installer writes mirror/http/proxy here) stays out of the image.
  if [ -f /etc/apt/apt.conf ]; then
    sed -i '/^Acquire::http::Proxy /d' /etc/apt/apt.conf
    [ -s /etc/apt/apt.conf ] || rm -f /etc/apt/apt.conf
  fi
  # The lists come back with 'apt-get update'; the image is smaller without them.
  find /var/lib/apt/lists -mindepth 1 -maxdepth 1 -type f ! -name lock -delete
  rm -f /var/cache/apt/*.bin
}

section_clean_history() {
  if has_systemd && command -v journalctl >/dev/null; then
    journalctl --rotate >/dev/null 2>&1 || true
    journalctl --vacuum-time=1s >/dev/null 2>&1 || true
  fi
  find /var/log -type f -exec rm -v -- {} +
  rm -fv -- /root/.bash_history /root/.lesshst /root/.viminfo /root/.wget-hsts /root/.python_history \
    /home/*/.bash_history /var/cache/debconf/*-old /var/backups/*.gz
}

# Fill the filesystem mounted at $1 with zeros, then remove the filler.
zero_fill() {
  local filler="${1%/}/.vmbake-zero"
  # dd stops with "No space left on device": that is the point.
  dd if=/dev/zero of="$filler" bs=1M conv=fsync 2>&1 || true
  rm -f -- "$filler"
  sync
}

section_zero_freespace() {
  if in_tree; then
    # The builder made these filesystems moments ago and has never booted them: no deleted data to zero.
    echo "zero_freespace: fresh filesystems in the image tree: nothing to zero"
    return 0
  fi
  local source target fstype name type uuid label
  while read -r source target fstype; do
    case "$fstype" in ext2 | ext3 | ext4) ;; *) continue ;; esac
    if [[ -z "${ZERO_FILL:-}" ]] && discards "$source" && fstrim -v "$target"; then
      echo "zero_freespace: $target: fstrim (the disk takes discard requests)"
    else
      zero_fill "$target"
      echo "zero_freespace: $target: filled with zeros"
    fi
  done < <(mounted_filesystems)
  while read -r name type _; do
    if [[ "$type" != partition || "$name" == /dev/zram* ]]; then
      echo "zero_freespace: swap $name ($type) left as it is"
      continue
    fi
    uuid="$(blkid -o value -s UUID -- "$name" || true)"
    label="$(blkid -o value -s LABEL -- "$name" || true)"
    swapoff -- "$name"
    # -f: the swap signature is about to be rewritten anyway (util-linux before 2.36 has no -f).
    if [[ -z "${ZERO_FILL:-}" ]] && discards "$name" && { blkdiscard -f -- "$name" 2>/dev/null || blkdiscard -- "$name"; }; then
      echo "zero_freespace: swap $(device_name "$name"): blkdiscard (the disk takes discard requests)"
    else
      dd if=/dev/zero of="$name" bs=1M conv=fsync 2>&1 || true
      echo "zero_freespace: swap $(device_name "$name"): filled with zeros"
    fi
    # Same UUID and label, so fstab and the initramfs still find it.
    mkswap ${uuid:+-U "$uuid"} ${label:+-L "$label"} -- "$name"
    swapon -- "$name"
  done < <(tail -n +2 /proc/swaps)
}

# vmbake installs its temporary key with this comment; every other line of authorized_keys is the user's.
BUILD_KEY_COMMENT=vmbake-build-key

section_clean_root_ssh() {
  local keys=/root/.ssh/authorized_keys
  [[ -f "$keys" ]] || return 0
  if grep -qv -e " $BUILD_KEY_COMMENT\$" -e "^[[:space:]]*\$" "$keys"; then
    # In place (not a new file), so the file keeps its owner, mode and SELinux label.
    sed -i "/ $BUILD_KEY_COMMENT\$/d" "$keys"
    echo "clean_root_ssh: no build key left in $keys; $(grep -c . "$keys") key(s) given by the user stay"
  else
    rm -rfv -- /root/.ssh
  fi
}

# cloud-init, when the image has it: forget this boot, so that it runs again on the image's first boot.
section_clean_cloud_init() {
  if command -v cloud-init >/dev/null 2>&1; then
    cloud-init clean --logs
    echo "cloud-init: instance data and logs removed"
  fi
}

section_clean_network() {
  rm -fv -- /var/lib/dhcp/*.leases /var/lib/dhcp/*.lease /var/lib/dhcpcd/*.lease* /var/lib/dhcpcd5/*.lease* \
    /var/lib/NetworkManager/*.lease /etc/udev/rules.d/70-persistent-net.rules
}

section_clean_identity() {
  # An empty machine-id makes systemd generate a new one at the next boot.
  : >/etc/machine-id
  echo "emptied '/etc/machine-id' (a new one is made at the next boot)"
  if [[ -f /var/lib/dbus/machine-id && ! -L /var/lib/dbus/machine-id ]]; then
    rm -fv -- /var/lib/dbus/machine-id
  fi
  rm -fv -- /var/lib/systemd/random-seed
  if [[ -x /usr/bin/ssh-keygen && -d /etc/ssh ]]; then
    # Copies of one image must not share host keys: the next boot makes new ones, before sshd starts.
    write_file /etc/systemd/system/vmbake-ssh-host-keys.service "run 'systemctl daemon-reload'." <<'EOF'
[Unit]
Description=Generate the SSH host keys on first boot
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
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=ssh.service
EOF
    systemctl enable vmbake-ssh-host-keys.service 2>&1
    rm -fv -- /etc/ssh/ssh_host_*
  fi
}

section_clean_self() {
  rm -fv -- "$SELF"
}

section_clean_shutdown() {
  sync
  if in_tree; then
    echo "image tree: nothing to power off (the builder unmounts it)"
    return 0
  fi
  # Power off in the background so that this command (and the SSH session running it) can return first.
  if has_systemd; then
    systemctl --no-block poweroff
  else
    nohup shutdown -h now >/dev/null 2>&1 &
  fi
  echo "power off requested"
}

# --- the run -----------------------------------------------------------------------------------------

PLAN=()
declare -A PLANNED=()
declare -A EXCLUDED=()

# Add $1 to the plan after what it needs, unless it is excluded or already planned.
plan_section() {
  local need
  if [[ -n "${PLANNED[$1]+set}" || -n "${EXCLUDED[$1]+set}" ]]; then return 0; fi
  PLANNED[$1]=1
  for need in ${SECTION_NEEDS[$1]:-}; do plan_section "$need"; done
  PLAN+=("$1")
}

confirm() {
  local answer
  while true; do
    printf 'Run section %s (%s)? [Y/n/q] ' "$1" "${SECTION_HELP[$1]}" >&2
    if ! read -r answer; then
      echo >&2
      echo "provision.sh: no answer (end of input); stopping" >&2
      exit 1
    fi
    case "${answer,,}" in
      "" | y | yes) return 0 ;;
      n | no) return 1 ;;
      q | quit) echo "provision.sh: stopped at your request" >&2; exit 0 ;;
    esac
  done
}

run_section() {
  local status
  echo "$RULER"
  echo "BEGIN{$1}"
  # A subshell with errexit: the first failing command ends the section, and the run with it.
  set +o errexit
  (
    set -o errexit
    CURRENT_SECTION="$1"
    "section_$1"
  ) 2>&1
  status=$?
  set -o errexit
  if ((status != 0)); then
    echo "FAILED{$1} (exit status $status)"
    echo "provision.sh: section $1 failed (exit status $status)" >&2
    exit 1
  fi
  echo "END{$1}"
}

main() {
  local batch="" ask="" dry_run="" name section requested=() excluded=()
  while (($# > 0)); do
    case "$1" in
      -S | --section | -X | --exclude)
        if (($# < 2)); then die_usage "option '$1' needs a section name"; fi
        if [[ "$1" == -S || "$1" == --section ]]; then requested+=("$2"); else excluded+=("$2"); fi
        shift 2
        ;;
      --section=*) requested+=("${1#*=}"); shift ;;
      --exclude=*) excluded+=("${1#*=}"); shift ;;
      -B | --batch) batch=1; shift ;;
      -C | --confirm) ask=1; shift ;;
      -n | --dry-run) dry_run=1; shift ;;
      -h | --help) usage; exit 0 ;;
      -v | --version) echo "provision.sh (vmbake) $PROVISION_VERSION"; exit 0 ;;
      *) die_usage "unknown option '$1'" ;;
    esac
  done
  if [[ -n "$batch" && -n "$ask" ]]; then die_usage "--batch and --confirm exclude each other"; fi
  if ((${#requested[@]} == 0)); then requested=(default); fi
  for name in "${requested[@]}" "${excluded[@]}"; do
    if [[ "$name" != default ]] && ! known_section "$name"; then
      die_usage "unknown section '$name' (see --help for the list)"
    fi
  done
  for name in "${excluded[@]}"; do
    if [[ "$name" == default ]]; then
      for section in "${DEFAULT_SECTIONS[@]}"; do EXCLUDED[$section]=1; done
    else
      EXCLUDED[$name]=1
    fi
  done
  for name in "${requested[@]}"; do
    if [[ "$name" == default ]]; then
      for section in "${DEFAULT_SECTIONS[@]}"; do plan_section "$section"; done
    else
      plan_section "$name"
    fi
  done

  if [[ -n "$dry_run" ]]; then
    if ((${#PLAN[@]} > 0)); then printf '%s\n' "${PLAN[@]}"; fi
    exit 0
  fi
  if ((EUID != 0)); then
    echo "provision.sh: must run as root (it changes the system)" >&2
    exit 1
  fi
  if [[ ! -f /etc/debian_version ]]; then
    echo "provision.sh: this is not a Debian system" >&2
    exit 1
  fi

  APT_OPTIONS=(-o APT::Color=0 -o Dpkg::Use-Pty=0)
  if [[ -n "$batch" ]]; then
    export DEBIAN_FRONTEND=noninteractive
    APT_OPTIONS+=(-y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  fi
  for name in "${PLAN[@]}"; do
    if [[ -n "$ask" ]] && ! confirm "$name"; then continue; fi
    run_section "$name"
  done
}

APT_OPTIONS=()
CURRENT_SECTION=""
main "$@"
