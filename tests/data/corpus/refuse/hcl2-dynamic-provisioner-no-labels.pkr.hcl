# Construct: a dynamic "provisioner" block without labels: a provisioner block needs its type label.
# Verdict: refused ("The argument \"labels\" is required"); decided by hashicorp/hcl ext/dynblock (a dynamic
# block of a block type with labels needs them)
# packer-1.6.6: judge
source "qemu" "deb" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.deb"]
  dynamic "provisioner" {
    for_each = ["a"]
    content {
      inline = ["echo ${provisioner.value}"]
    }
  }
}
