# Construct: try, can, convert and the to* conversion functions, tonumber/tobool on strings.
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/functions (Type Conversion Functions)
variable "settings" {
  default = { cpus = "2" }
}
source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  cpus    = tonumber(try(var.settings.cpus, 1))
  memory  = try(var.settings.memory, 1024)
  vm_name = can(var.settings.memory) ? "custom" : tostring(tobool("true"))
  disk_additional_size = convert(toset(["1G", "1G"]), list(string))
}
build {
  sources = ["source.qemu.deb"]

}
