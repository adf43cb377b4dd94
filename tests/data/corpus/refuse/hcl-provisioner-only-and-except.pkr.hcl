# A provisioner with both only and except: HCL2 Packer refuses it when it decodes the block
# (hcl2template/types.build.provisioners.go, OnlyExcept.Validate: only one of 'only' or 'except' may be
# specified).
source "qemu" "a" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.a"]

  provisioner "shell" {
    only   = ["qemu.a"]
    except = ["qemu.b"]
    inline = ["echo a"]
  }
}
