# top comment   
variable "x" {
type = string
    default="a ${ var.y }b"   # trailing
  sensitive=true
}
locals {
  a = [1,2 , 3]
  b = {k="v", "q"=-1}
  c = foo( 1 ,2 )[0]
  d = !true ? 1-2 : -3
  e = <<EOF
  keep   this  
EOF
  f = [
  "x",
    "y",
  ]
  g = {}
  h = [for s in var.list : upper(s) if s != ""]
}
build {
  sources=["source.qemu.x"]


  provisioner "shell" { inline = ["a"] }
}
