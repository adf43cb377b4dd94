# Construct: crypto (sha256, sha512, md5, sha1, bcrypt), uuidv4/uuidv5, numeric functions (abs, ceil, floor, pow, log, parseint, signum).
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/functions (Hash and Crypto, UUID, Numeric Functions)
locals {
  password_hash = bcrypt("vmbake", 4)
  ids           = [uuidv4(), uuidv5("dns", "example.org")]
}
source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  vm_name = "deb-${substr(sha256("x"), 0, 8)}-${substr(md5("x"), 0, 4)}-${substr(sha1("x"), 0, 4)}-${length(sha512("x"))}"
  cpus    = abs(-1) + ceil(0.5) + floor(1.5) - signum(2)
  memory  = pow(2, 10) + parseint("ff", 16) - 255 + log(1, 10)
}
build {
  sources = ["source.qemu.deb"]
  provisioner "shell" {
    inline = concat(local.ids, [local.password_hash])
  }
}
