# HCL2: one qemu source block and a build that uses it by its full name, with a shell provisioner
# (docs: templates/hcl_templates/blocks/source and blocks/build).
# packer-1.6.6: judge
source "qemu" "corpus" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.corpus"]

  provisioner "shell" {
    inline = ["echo hello from ${source.name}"]
  }
}
