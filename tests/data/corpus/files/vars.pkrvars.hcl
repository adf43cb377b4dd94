# variable values for accept/hcl-var-file.pkr.hcl
memory = 1024
user   = "corpus"
