# HCL2: a build that names a source block that is not defined (Packer hcl2template/types.build.go:
# "Unknown source"; docs: templates/hcl_templates/blocks/build/source).
# packer-1.6.6: judge
source "qemu" "corpus" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.corpsu"]
}
