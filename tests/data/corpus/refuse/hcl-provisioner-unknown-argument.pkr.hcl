# HCL2: an argument the shell provisioner does not have (Packer provisioner/shell/provisioner.hcl2spec.go:
# "Unsupported argument").
# packer-1.6.6: judge
source "qemu" "corpus" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.corpus"]

  provisioner "shell" {
    inlines = ["true"]
  }
}
