# Construct: vmbake's own convert post-processor, every format, in a chain before checksum and manifest.
# Verdict: accepted by vmbake; Packer has no convert post-processor (vmbake's own, docs/reference.md), so
# Packer itself is not asked.
source "qemu" "corpus" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.corpus"]

  post-processors {
    post-processor "convert" {
      formats             = ["qcow2", "raw", "vmdk", "vhdx", "vpc", "ova"]
      output_directory    = "images-{{.BuildName}}"
      keep_input_artifact = false
    }
    post-processor "checksum" {
      checksum_types = ["sha256"]
    }
    post-processor "manifest" {}
  }
}
