# HCL2: a post-processors block runs its post-processor blocks in a chain, beside a lone post-processor
# (docs: templates/hcl_templates/blocks/build/post-processors).
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

  post-processor "manifest" {
    output = "corpus-manifest.json"
  }

  post-processors {
    post-processor "compress" {
      output = "corpus.tar.gz"
    }
    post-processor "checksum" {
      checksum_types = ["sha256"]
      output         = "corpus.{{.ChecksumType}}"
    }
  }
}
