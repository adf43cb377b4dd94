"""`vmbake help template`: the template language vmbake understands, in brief."""

TEMPLATE_HELP = """\
Template language

JSON templates (Packer's Go-template actions, {{ ... }}):
  {{user `name`}}            a user variable (declared under "variables"; null = required)
  {{env `NAME`}}             an environment variable; only inside "variables", as in Packer
  {{template_dir}}           the directory of the template file
  {{pwd}}                    the directory vmbake runs in
  {{timestamp}}              Unix time of the start of the run
  {{isotime `2006-01-02`}}   the start time in a Go layout (default RFC 3339)
  {{uuid}}                   a random UUID
  {{build_name}} {{build_type}}
  {{upper x}} {{lower x}} {{replace old new n s}} {{replace_all old new s}} {{split s sep n}}
  {{clean_resource_name x}}  pipelines work too: {{ user `n` | upper }}
  Go's actions: {{if x}}..{{else if y}}..{{else}}..{{end}}, {{with x}}, {{range $i, $v := x}} with
  {{break}}/{{continue}}, {{ $v := x }}, {{-  -}} trim markers, and eq ne lt le gt ge and or not len index
  slice print printf println; an {{if}} on a run-time placeholder is kept whole for the build.

Run-time placeholders, kept as written and filled in during the build (docs/placeholders.md):
  qemuargs, kernel_args: {{ .HTTPIP }} {{ .HTTPPort }} {{ .HTTPDir }} {{ .OutputDir }} {{ .Name }}
    {{ .SSHHostPort }}
  boot_command, boot_steps: {{ .HTTPIP }} {{ .HTTPPort }} {{ .Name }} {{ .SSHPublicKey }}
  http_content: those four, and vmbake's {{ .LoginPreseed }} (preseed answers from the login keys) and
    {{ .AptProxy }} (the package proxy as the guest reaches it)
  provisioners, post-processors: {{ build `Host` }} and Port User Password ConnType SSHPublicKey
    SSHPrivateKey PackerHTTPIP PackerHTTPPort PackerHTTPAddr PackerRunUUID ID WinRMPassword (in a
    provisioner also as {{ .Host }} ...); {{.Path}} {{.Vars}} {{.EnvVarFile}} (shell execute_command);
    {{.Script}} (shell-local); {{.BuildName}} {{.BuilderType}} {{.ChecksumType}} (post-processor outputs)

HCL2 templates (.pkr.hcl, or a directory of them):
  blocks: variable "x" {type, default, sensitive, description}, variables {}, locals {}, local "x" {},
          source "qemu" "NAME" {}, build { sources, provisioner, post-processor, post-processors }
  references: var.x, local.x, path.root, path.cwd, source.name, source.type, build.name
  values: defaults < PKR_VAR_x < *.auto.pkrvars.hcl < -var-file < -var
  build names are TYPE.NAME (qemu.NAME); -only/-except take globs and also match NAME
"""
