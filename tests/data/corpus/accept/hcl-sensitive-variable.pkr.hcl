# HCL2: a sensitive variable (its value is masked in the output) used as the SSH password
# (docs: templates/hcl_templates/variables, "A variable can be marked as sensitive").
# packer-1.6.6: judge
source "qemu" "corpus" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = var.password
  shutdown_command = "poweroff"
}

variable "password" {
  type      = string
  default   = "corpus"
  sensitive = true
}

build {
  sources = ["source.qemu.corpus"]
}
