# HCL2: the same rule as JSON, no iso_url or iso_urls in a qemu source (packer-plugin-sdk
# multistep/commonsteps/iso_config.go: one of iso_url or iso_urls must be specified).
# packer-1.6.6: judge
source "qemu" "corpus" {
  iso_checksum     = "none"
  ssh_username     = "root"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.corpus"]
}
