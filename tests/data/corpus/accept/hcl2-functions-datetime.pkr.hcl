# Construct: date and time functions (timestamp, formatdate, timeadd, legacy_isotime, legacy_strftime).
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/functions (Date and Time Functions)
locals {
  now   = timestamp()
  stamp = formatdate("YYYYMMDD-hhmmss", local.now)
  later = timeadd(local.now, "1h30m")
}
source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  vm_name = "deb-${local.stamp}-${legacy_isotime("2006")}-${legacy_strftime("%m")}"
}
build {
  sources = ["source.qemu.deb"]
  provisioner "shell" {
    inline = ["echo ${local.later}"]
  }
}
