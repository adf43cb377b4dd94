# Construct: an object for expression producing the same key twice without ... grouping.
# Verdict: refused; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/expressions (For Expressions: duplicate keys need the ellipsis)
locals {
  by_size = { for name, size in { a = "1G", b = "1G" } : size => name }
}
source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  vm_name = local.by_size["1G"]
}
build {
  sources = ["source.qemu.deb"]

}
