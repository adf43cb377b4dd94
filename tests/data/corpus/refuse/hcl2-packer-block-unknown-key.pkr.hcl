# Construct: an unknown argument in the packer block.
# Verdict: refused; decided by hashicorp/packer hcl2template/types.packer_config.go (the packer block schema: required_version, required_plugins)
packer {
  min_version = "1.7.0"
}
source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"

}
build {
  sources = ["source.qemu.deb"]

}
