locals {
  a = [for k, v in var.m : "${k}=${v}" if v != null]
  b = {for k, v in var.m : k => upper(v)}
  c = var.list[*].id
  d = var.obj.*.name
  e = "%{ if var.x }yes%{ else }no%{ endif }"
  f = <<-EOT
    indented ${var.x}
    EOT
  g = merge(
    var.a,
  {
    x = 1
  },
  )
  h = var.cond ? (
    1
  ) : 2
  /* block */ i = 5
  j = -var.x
  k = 2 * -3
  l = [ -1, + 2 ]
  m = a.b[0].c["key"]
  n = { "a b" : 1, c : 2 }
  o = (1 + 2) * 3
  p = "${ { a = 1 }.a }"
  q = func(var.list...)
  r = "$${literal} %%{literal}"
  s = a && !b || c
  t = a<=b
}
variable "long_name_here" { default = 1 }
variable "x" {
  validation {
    condition = length(var.x) > 0
    error_message = "The x must be set."
  }
}
source "qemu" "a" {
   boot_command = ["<enter>",
     "<wait>"]
 qemuargs = [
   ["-m", "1024"],
   [ "-smp" , "2" ],
 ]
}
build {
  name = "b"
  sources = [
    "source.qemu.a",
  ]
  provisioner "shell" {
    inline = [ "a" ] # c1
    environment_vars = ["A=1"] # c2
  }
  post-processors {
    post-processor "checksum" {}
  }
}
