# HCL2: a misspelt argument in a qemu source block is an error ("Unsupported argument"), as the plugin's
# HCL2 schema has no such attribute (packer-plugin-qemu builder/qemu/config.hcl2spec.go; hcl/v2 gohcl decoding).
# packer-1.6.6: judge
source "qemu" "corpus" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  memroy           = 1024
}

build {
  sources = ["source.qemu.corpus"]
}
