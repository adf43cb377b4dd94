# HCL2: a string that is no number where the schema wants one (memory = "lots") cannot be converted
# (hashicorp/hcl gohcl decoding: "Unsuitable value type" / "a number is required").
# packer-1.6.6: judge
source "qemu" "corpus" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  memory           = "lots"
  ssh_username     = "root"
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.corpus"]
}
