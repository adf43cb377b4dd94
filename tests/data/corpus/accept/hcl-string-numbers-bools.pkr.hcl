# HCL2: numbers and booleans written as strings (cpus = "2", memory = "1024", headless = "false") are
# converted to the schema's type, as HCL's type conversion does (hashicorp/hcl gohcl decoding with cty
# convert; templates in the survey write them so).
# packer-1.6.6: judge
source "qemu" "corpus" {
  iso_url                = "http://deb.example.invalid/corpus.iso"
  iso_checksum           = "none"
  cpus                   = "2"
  memory                 = "1024"
  headless               = "false"
  disk_compression       = "true"
  ssh_handshake_attempts = "20"
  ssh_username           = "root"
  ssh_password           = "corpus"
  shutdown_command       = "poweroff"
}

build {
  sources = ["source.qemu.corpus"]
}
