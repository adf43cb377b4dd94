# Construct: collection functions (concat, flatten, distinct, merge, lookup, keys, values, zipmap, setunion, slice, sort, range, element, coalesce, compact, contains, chunklist).
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/functions (Collection Functions)
locals {
  base   = { cpus = 2, memory = 1024 }
  extra  = { memory = 2048 }
  merged = merge(local.base, local.extra)
  lists  = flatten([["a"], ["b", ["c"]], []])
  all    = distinct(concat(local.lists, ["a", "d"]))
}
source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  memory  = lookup(local.merged, "memory", 512)
  cpus    = max(values(zipmap(keys(local.merged), [1, 1]))...)
  vm_name = join("-", sort(setunion(slice(local.all, 0, 2), compact(["", element(local.all, 3)]))))
  format  = contains(range(3), 1) ? coalesce("", "qcow2") : "raw"
  disk_additional_size = [for c in chunklist(["1G", "2G", "3G"], 2) : c[0]]
}
build {
  sources = ["source.qemu.deb"]

}
