# Construct: dynamic "provisioner" and dynamic "post-processor" blocks in a build block, made in order from a
# list and a map (iterator, labels with the type, source.name in the content).
# Verdict: accepted; decided by hashicorp/packer hcl2template/parser.go (parseConfig: dynblock.Expand on the
# whole file body) and https://developer.hashicorp.com/packer/docs/templates/hcl_templates/expressions#dynamic-blocks
# packer-1.6.6: judge
variable "scripts" {
  type    = list(string)
  default = ["one", "two"]
}
source "qemu" "deb" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
}
build {
  sources = ["source.qemu.deb"]
  provisioner "shell-local" {
    inline = ["echo first"]
  }
  dynamic "provisioner" {
    for_each = var.scripts
    labels   = ["shell-local"]
    content {
      inline = ["echo ${provisioner.key} ${provisioner.value} on ${source.name}"]
    }
  }
  provisioner "shell-local" {
    inline = ["echo last"]
  }
  post-processor "shell-local" {
    inline = ["echo pp1"]
  }
  dynamic "post-processor" {
    for_each = { a = "x" }
    iterator = pp
    labels   = ["shell-local"]
    content {
      inline = ["echo ${pp.key}=${pp.value}"]
    }
  }
}
