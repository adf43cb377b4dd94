# Construct: heredocs, <<EOF and the indented <<-EOF, as values and as function arguments.
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/expressions (String Literals, heredocs)
locals {
  motd = <<EOF
Built by vmbake
EOF
  script = <<-EOT
    set -e
    echo "${local.motd}" > /etc/motd
  EOT
}
source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  vm_name = trimspace(<<-EOT
    deb-heredoc
  EOT
  )
}
build {
  sources = ["source.qemu.deb"]
  provisioner "shell" {
    inline = [local.script]
  }
}
