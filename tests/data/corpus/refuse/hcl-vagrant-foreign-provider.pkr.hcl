# Construct: the vagrant post-processor asked for a VirtualBox box (provider_override).
# Verdict: refused by vmbake, though Packer with the vagrant plugin accepts it: a virtualbox box holds
# VirtualBox's disk and machine files, which a QEMU build does not make (packer-plugin-vagrant
# post-processor/vagrant/virtualbox.go reads them from a virtualbox artifact). vmbake makes libvirt boxes.
source "qemu" "corpus" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.corpus"]
  post-processor "vagrant" {
    provider_override = "virtualbox"
  }
}
