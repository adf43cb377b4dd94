"""HCL2 as current Packer reads it: expressions, templates, dynamic blocks, null, the packer block, data
sources (http against a real server on loopback), block-or-attribute keys and syntax error positions."""

from __future__ import annotations

import http.server
import json
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vmbake.errors import TemplateError
from vmbake.template import load_template
from vmbake.template.hcl_expr import Evaluator, ExprError
from vmbake.template.hcl_packer import PACKER_VERSION, satisfies
from vmbake.template.hcl_values import clean, evaluate

SHA = "sha256:" + "0" * 64


def load(tmp_path: Path, text: str, **kw: Any) -> Any:
    path = tmp_path / "t.pkr.hcl"
    path.write_text(textwrap.dedent(text))
    return load_template(path, **kw)


def failing(tmp_path: Path, text: str) -> list[Any]:
    with pytest.raises(TemplateError) as info:
        load(tmp_path, text)
    return info.value.problems


def source(extra: str = "", head: str = "", build: str = "") -> str:
    return f"""{head}
source "qemu" "deb" {{
  iso_url      = "http://example.invalid/d.iso"
  iso_checksum = "{SHA}"
  ssh_username = "root"
  {extra}
}}
build {{
  sources = ["source.qemu.deb"]
  {build}
}}
"""


SCOPE = {
    "var": {
        "list": ["a", "x", "b"],
        "m": {"a": 1, "b": 2, "c": 1},
        "objs": [{"id": 1, "tags": ["p"]}, {"id": 2, "tags": ["q"]}],
        "on": True,
    }
}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('[for s in var.list : upper(s) if s != "x"]', ["A", "B"]),
        ("[for i, s in var.list : i]", [0, 1, 2]),
        ("{for k, v in var.m : k => v * 10 if v > 1}", {"b": 20}),
        ("{for k, v in var.m : v => k...}", {"1": ["a", "c"], "2": ["b"]}),
        ("[for o in var.objs : [for t in o.tags : t]]", [["p"], ["q"]]),
        ("var.objs[*].id", [1, 2]),
        ("var.objs.*.id", [1, 2]),
        ("var.objs[*].tags[0]", ["p", "q"]),
        ("var.m[*]", [{"a": 1, "b": 2, "c": 1}]),
        ("null[*]", []),
        ('var.on ? "yes" : "no"', "yes"),
        ('!var.on ? "a" : var.on ? "b" : "c"', "b"),
        ("var.on ? var.list[0] : var.missing", "a"),
        ('"n=%{ if var.on }on%{ else }off%{ endif }"', "n=on"),
        ('"%{ for x in var.list ~} ${x} %{~ endfor }"', "axb"),
        ('"%{ for k, v in var.m }${k}${v};%{ endfor }"', "a1;b2;c1;"),
        ('"$${literal} %%{literal}"', "${literal} %{literal}"),
        ("trimspace(<<EOT\n  hi ${var.list[0]}\nEOT\n)", "hi a"),
        ("<<-EOT\n    one\n      two\n    EOT\n", "one\n  two\n"),
        ('"1" + 2', 3),
        ("length(var.list) >= 3 && true", True),
    ],
)
def test_expressions(expr: str, expected: Any) -> None:
    assert Evaluator(SCOPE).expression(expr) == expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("{for s in var.list : substr(s, 0, 0) => s}", "duplicate key ''"),
        ('"%{ if var.on }x"', "%{ if } without %{ endif }"),
        ('"%{ while true }x%{ endwhile }"', "unknown template directive"),
        ('1 ? "a" : "b"', "the condition before '?' must be a bool"),
        ("[for s in 3 : s]", "needs a list or map"),
    ],
)
def test_expression_errors(expr: str, message: str) -> None:
    with pytest.raises(ExprError, match=message.replace("{", "\\{").replace("}", "\\}").replace("?", "\\?")):
        Evaluator(SCOPE).expression(expr)


def test_for_expression_heredoc_and_template_in_a_template(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        source(
            head="""
variable "pkgs" {
  default = ["curl", "vim"]
}
locals {
  lines = <<-EOT
    %{ for p in var.pkgs ~}
    apt-get install -y ${p}
    %{ endfor ~}
  EOT
}
""",
            build='provisioner "shell" {\n  inline = [local.lines, join(" ", [for p in var.pkgs : "x-${p}"])]\n}',
        ),
    )
    assert t.builds[0].provisioners[0].config.inline == [
        "apt-get install -y curl\napt-get install -y vim\n",
        "x-curl x-vim",
    ]


def test_heredoc_as_a_function_argument(tmp_path: Path) -> None:
    t = load(tmp_path, source('vm_name = trimspace(<<-EOT\n    deb "quoted" ${upper("x")}\n  EOT\n  )'))
    assert t.builds[0].config.vm_name == 'deb "quoted" X'


def test_null_attribute_means_unset_in_blocks_only(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        source('headless = null\n  vm_name = local.x == null ? "unset" : "set"', "locals {\n  x = null\n}"),
    )
    assert t.builds[0].config.headless is False
    assert t.builds[0].config.vm_name == "unset"


def test_dynamic_blocks_make_one_block_per_element() -> None:
    tree = clean(
        __import__("hcl2").loads(
            textwrap.dedent(
                """
                source "x" "y" {
                  dynamic "disk" {
                    for_each = var.sizes
                    iterator = d
                    content {
                      size  = d.value
                      index = d.key
                    }
                  }
                  disk {
                    size = "9G"
                    index = 9
                  }
                }
                """
            )
        )
    )
    body = tree["source"][0]["x"]["y"]
    out = evaluate(body, {"var": {"sizes": ["1G", "2G"]}}, "source.x.y", lambda *a: pytest.fail(str(a)))
    assert out["disk"] == [{"size": "9G", "index": 9}, {"size": "1G", "index": 0}, {"size": "2G", "index": 1}]


def test_qemu_img_args_as_a_block_a_dynamic_block_or_an_attribute(tmp_path: Path) -> None:
    block = load(
        tmp_path,
        source('qemu_img_args {\n    create = ["-o", "cluster_size=64k"]\n    resize = ["--shrink"]\n  }'),
    )
    assert block.builds[0].config.qemu_img_args.create == ["-o", "cluster_size=64k"]
    assert block.builds[0].config.qemu_img_args.resize == ["--shrink"]
    attr = load(tmp_path, source('qemu_img_args = { convert = ["-c"] }'))
    assert attr.builds[0].config.qemu_img_args.convert == ["-c"]
    dyn = load(
        tmp_path,
        source(
            'dynamic "qemu_img_args" {\n  for_each = ["-c"]\n  content {\n    convert = [qemu_img_args.value]\n  }\n}'
        ),
    )
    assert dyn.builds[0].config.qemu_img_args.convert == ["-c"]


# -- packer block -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("constraint", "ok"),
    [
        (">= 1.7.0", True),
        (">= 1.7.0, < 2", True),
        ("~> 1.9", True),
        ("~> 1.9.0", False),
        ("~> 1.11.0", True),
        ("< 1.10", False),
        ("!= 1.11.2", False),
        ("= 1.11.2", True),
        ("1.11.2", True),
        (">= 1.12.0-beta", False),
    ],
)
def test_required_version_constraints(constraint: str, ok: bool) -> None:
    assert PACKER_VERSION == "1.11.2"
    assert satisfies(PACKER_VERSION, constraint) is ok


def test_version_names_the_packer_level(capsys: pytest.CaptureFixture[str]) -> None:
    from vmbake.cli import main

    assert main(["version"]) == 0
    assert f"Packer {PACKER_VERSION} HCL2 language" in capsys.readouterr().out


PACKER_BLOCK = """
packer {
  required_version = "%s"
  required_plugins {
    qemu = {
      version = ">= 1.0.9"
      source  = "github.com/hashicorp/qemu"
    }
  }
}
"""


def test_packer_block_is_checked(tmp_path: Path) -> None:
    assert load(tmp_path, source(head=PACKER_BLOCK % ">= 1.7.0")).builds
    found = failing(tmp_path, source(head=PACKER_BLOCK % ">= 1.99.0"))
    assert [(p.key, p.line) for p in found] == [("packer.required_version", 3)]
    assert "vmbake reads templates as Packer 1.11.2" in found[0].message
    found = failing(tmp_path, source(head=PACKER_BLOCK % "at least one"))
    assert "is not a version constraint" in found[0].message or "is not a version" in found[0].message
    found = failing(tmp_path, source(head='packer {\n  required_versions = ">= 1"\n}'))
    assert found[0].key == "packer.required_versions" and "unknown key" in found[0].message


VALIDATED = """
variable "release" {
  default = "trixie"
  validation {
    condition     = contains(["bookworm", "trixie"], var.release)
    error_message = "The release must be bookworm or trixie."
  }
}
"""


def test_variable_validation(tmp_path: Path) -> None:
    assert load(tmp_path, source(head=VALIDATED)).values["release"] == "trixie"
    path = tmp_path / "t.pkr.hcl"
    with pytest.raises(TemplateError) as info:
        load_template(path, vars={"release": "sid"})
    (found,) = info.value.problems
    assert found.key == "variable.release" and found.line == 2
    assert "The release must be bookworm or trixie." in found.message


def test_packer_version_is_in_scope(tmp_path: Path) -> None:
    t = load(tmp_path, source('vm_name = "built-with-${packer.version}"'))
    assert t.builds[0].config.vm_name == "built-with-1.11.2"


def test_build_name_description_and_hcp_registry(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        source(
            build='name = "deb"\n  description = "a ${upper("d")}"\n  hcp_packer_registry {\n    bucket_name = "b"\n  }'
        ),
    )
    assert t.builds[0].name == "deb.qemu.deb" and t.description == "a D"
    assert any("hcp_packer_registry has no effect" in w.message and w.line == 12 for w in t.warnings)


# -- data sources -----------------------------------------------------------------------------------------
@pytest.fixture
def http_server() -> Iterator[str]:

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/missing":
                self.send_error(404)
                return
            body = json.dumps({"version": "13.1", "auth": self.headers.get("Authorization", "")}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("x-twice", "a")
            self.send_header("X-Twice", "b")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_null_and_http_data_sources(tmp_path: Path, http_server: str) -> None:
    head = f"""
data "http" "release" {{
  url = "{http_server}/release.json"
  request_headers = {{
    Authorization = "Bearer ${{data.null.token.output}}"
  }}
}}
data "null" "token" {{
  input = local.token
}}
locals {{
  token   = "t0k"
  release = jsondecode(data.http.release.body)
}}
"""
    t = load(
        tmp_path,
        source(
            'vm_name = "debian-${local.release.version}-${local.release.auth}"',
            head,
            build='provisioner "shell" {\n  inline = [data.http.release.response_headers["Content-Type"], '
            'data.http.release.request_headers["X-Twice"]]\n}',
        ),
    )
    assert t.builds[0].config.vm_name == "debian-13.1-Bearer t0k"
    assert t.builds[0].provisioners[0].config.inline == ["application/json", "a, b"]


def test_http_data_source_errors_name_the_block(tmp_path: Path, http_server: str) -> None:
    found = failing(tmp_path, source(head=f'data "http" "x" {{\n  url = "{http_server}/missing"\n}}'))
    assert [(p.key, p.line) for p in found] == [("data.http.x", 1)]
    assert "HTTP 404" in found[0].message


def test_other_data_sources_are_named_and_fail_only_when_used(tmp_path: Path) -> None:
    head = 'data "amazon-ami" "base" {\n  region = "x"\n}\nlocals {\n  ami = data.amazon-ami.base.id\n}'
    t = load(tmp_path, source('vm_name = try(local.ami, "fallback")', head))
    assert t.builds[0].config.vm_name == "fallback"
    warning = next(w for w in t.warnings if w.key == "data.amazon-ami.base")
    assert warning.line == 1 and "'amazon-ami' is not run by vmbake" in warning.message
    found = failing(tmp_path, source("vm_name = local.ami", head))
    assert [p.key for p in found] == ["source.qemu.deb.vm_name"]
    assert "data.amazon-ami.base" in found[0].message and "t.pkr.hcl:1)" in found[0].message


# -- syntax error positions -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        (
            'source "qemu" "x" {\n  a = 1\n  b = 2\n  c = 3\n  d = "unterminated\n  e = 4\n}\n\nbuild {\n  sources = ["x"]\n}\n',
            5,
            7,
            "unterminated string",
        ),
        ('locals {\n  a = "ok ${"nested"}"\n  b = "open ${x}\n}\n', 3, 7, "unterminated string"),
        ('source "qemu" "x" {\n  a = 1\n  b = = 2\n}\n', 3, 7, "unexpected"),
        ('source "qemu" "x" {\n  a = [1, 2\n}\n', 3, 1, "unexpected '}'"),
        ('# "not a string\nlocals {\n  a = <<EOT\n  "quote\nEOT\n  b = [\n}\n', 7, 1, "unexpected"),
    ],
)
def test_syntax_errors_are_placed_where_they_are(
    tmp_path: Path, text: str, line: int, column: int, words: str
) -> None:
    (found,) = failing(tmp_path, text)
    assert found.line == line
    assert f"at column {column}: {words}" in found.message
    shown = text.splitlines()[line - 1]
    assert f"{line:>4} | {shown}" in found.message
    assert found.message.rstrip().endswith(" " * (column - 1) + "^")


# -- the corpus templates of these constructs ------------------------------------------------------------
CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"


@pytest.mark.parametrize(
    "path",
    sorted((CORPUS / "accept").glob("hcl2-*.pkr.hcl")) + sorted((CORPUS / "refuse").glob("hcl2-*.pkr.hcl")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_corpus_verdicts(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("# Construct: ") and "# Verdict: " in text
    only = [a.removeprefix("-only=") for a in text.split() if a.startswith("-only=")]
    if path.parent.name == "accept":
        assert load_template(path, only=only).builds
    else:
        with pytest.raises(TemplateError) as info:
            load_template(path, only=only)
        assert all(p.line for p in info.value.problems)


def test_dynamic_provisioners_and_post_processors_of_a_build_keep_the_file_order() -> None:
    (build,) = load_template(CORPUS / "accept" / "hcl2-dynamic-build-blocks.pkr.hcl").builds
    assert [p.config.inline for p in build.provisioners] == [
        ["echo first"],
        ["echo 0 one on deb"],
        ["echo 1 two on deb"],
        ["echo last"],
    ]
    assert [[p.config.inline for p in chain] for chain in build.post_processors] == [
        [["echo pp1"]],
        [["echo a=x"]],
    ]
