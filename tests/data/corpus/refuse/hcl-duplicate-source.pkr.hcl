# HCL2: two source blocks with the same type and name (Packer hcl2template/parser.go: "Duplicate qemu.corpus
# source"; docs: templates/hcl_templates/blocks/source).
# packer-1.6.6: judge
source "qemu" "corpus" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  shutdown_command = "poweroff"
}

source "qemu" "corpus" {
  iso_url          = "http://deb.example.invalid/other.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.corpus"]
}
