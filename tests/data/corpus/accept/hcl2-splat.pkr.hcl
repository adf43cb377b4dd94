# Construct: splat expressions [*] and the legacy attribute splat .*
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/expressions (Splat Expressions)
variable "disks" {
  default = [
    { name = "root", size = "4G" },
    { name = "data", size = "1G" },
  ]
}
source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  disk_size            = (var.disks[*].size)[0]
  disk_additional_size = slice(var.disks.*.size, 1, length(var.disks))
}
build {
  sources = ["source.qemu.deb"]

}
