# Construct: hcp_packer_registry inside build (vmbake warns that it has no effect).
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/blocks/build/hcp_packer_registry

source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"

}
build {
  sources = ["source.qemu.deb"]
  hcp_packer_registry {
    bucket_name = "debian-base"
    description = "Debian base image"
    bucket_labels = {
      "os" = "debian"
    }
  }
}
