# HCL2: the file provisioner with a list of sources into a directory destination, and generated content
# (docs: provisioners/file, sources and content).
source "qemu" "corpus" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.corpus"]

  provisioner "file" {
    sources     = ["files/setup.sh", "files/preseed.cfg"]
    destination = "/tmp/corpus/"
  }

  provisioner "file" {
    content     = "built by ${source.name}\n"
    destination = "/etc/corpus-release"
  }
}
