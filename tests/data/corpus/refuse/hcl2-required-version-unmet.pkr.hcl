# Construct: packer { required_version } that the running Packer (1.x) does not meet.
# Verdict: refused; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/blocks/packer (Packer stops when its version is outside required_version)
packer {
  required_version = ">= 2.0.0"
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
