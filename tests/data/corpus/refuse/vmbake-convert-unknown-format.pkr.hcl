# Construct: vmbake's convert post-processor asked for a disk format it does not write (vdi).
# Verdict: refused by vmbake's check of formats (qcow2, raw, vmdk, vhdx, vpc, ova); Packer has no convert
# post-processor, so Packer itself is not asked.
source "qemu" "corpus" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.corpus"]

  post-processor "convert" {
    formats = ["vmdk", "vdi"]
  }
}
