# HCL2: a qemu source with communicator none and a build with no provisioners
# (packer-plugin-sdk communicator/config.go; docs: communicators).
# packer-1.6.6: judge
source "qemu" "corpus" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  communicator     = "none"
  shutdown_timeout = "20m"
}

build {
  sources = ["source.qemu.corpus"]
}
