# Construct: packer { required_version, required_plugins } with go-version constraints.
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/blocks/packer (Packer 1.11 meets ">= 1.7.0, < 2" and "~> 1.9").
packer {
  required_version = ">= 1.7.0, < 2, ~> 1.9"
  required_plugins {
    qemu = {
      version = ">= 1.0.9"
      source  = "github.com/hashicorp/qemu"
    }
  }
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
