"""Packer's HCL2 function library: each function against the examples of its documentation page
(developer.hashicorp.com/packer/docs/templates/hcl_templates/functions/...), evaluated as expressions."""

from __future__ import annotations

import base64
import gzip
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vmbake.template.hcl_expr import FUNCTIONS, Evaluator, ExprError

DATA = Path(__file__).resolve().parents[1] / "data" / "hclfn"


def ev(expr: str, **scope: Any) -> Any:
    return Evaluator(scope).expression(expr)


# (expression, documented result); the first word of the expression is the function under test.
EXAMPLES: list[tuple[str, Any]] = [
    # collection
    ('alltrue(["true", true])', True),
    ("alltrue([true, false])", False),
    ('anytrue(["true"])', True),
    ("anytrue([])", False),
    ('chunklist(["a", "b", "c", "d", "e"], 2)', [["a", "b"], ["c", "d"], ["e"]]),
    ('coalesce("", "b")', "b"),
    ("coalesce(1, 2)", 1),
    ('coalescelist([], ["c", "d"])', ["c", "d"]),
    ('compact(["a", "", "b", "c"])', ["a", "b", "c"]),
    ('concat(["a", ""], ["b", "c"])', ["a", "", "b", "c"]),
    ('contains(["a", "b", "c"], "d")', False),
    ('distinct(["a", "b", "a", "c", "d", "b"])', ["a", "b", "c", "d"]),
    ('element(["a", "b", "c"], 3)', "a"),
    ('flatten([[["a", "b"], []], ["c"]])', ["a", "b", "c"]),
    ('index(["a", "b", "c"], "b")', 1),
    ("keys({a=1, c=2, d=3})", ["a", "c", "d"]),
    ('length({"a" = "b"})', 1),
    ('lookup({a="ay", b="bee"}, "c", "what?")', "what?"),
    (
        'matchkeys(["i-123", "i-abc", "i-def"], ["us-west", "us-east", "us-east"], ["us-east"])',
        ["i-abc", "i-def"],
    ),
    ('merge({a="b", c="d"}, {e="f", c="z"})', {"a": "b", "c": "z", "e": "f"}),
    ("one([])", None),
    ("range(1, 8, 2)", [1, 3, 5, 7]),
    ("range(4, 1)", [4, 3, 2]),
    ("reverse([1, 2, 3])", [3, 2, 1]),
    ('setintersection(["a", "b"], ["b", "c"], ["b", "d"])', ["b"]),
    (
        'setproduct(["development", "staging"], ["app1", "app2"])',
        [["development", "app1"], ["development", "app2"], ["staging", "app1"], ["staging", "app2"]],
    ),
    ('setsubtract(["a", "b", "c"], ["a", "c"])', ["b"]),
    ('setunion(["a", "b"], ["b", "c"], ["d"])', ["a", "b", "c", "d"]),
    ('slice(["a", "b", "c", "d"], 1, 3)', ["b", "c"]),
    ('sort(["e", "d", "a", "x"])', ["a", "d", "e", "x"]),
    ("sum([10, 13, 6, 4.5])", 33.5),
    ('transpose({"a" = ["1", "2"], "b" = ["2", "3"]})', {"1": ["a"], "2": ["a", "b"], "3": ["b"]}),
    ("values({a=3, c=2, d=1})", [3, 2, 1]),
    ('zipmap(["a", "b"], [1, 2])', {"a": 1, "b": 2}),
    # conversion
    ('tobool("true")', True),
    ("tobool(null)", None),
    ('tolist(["a", "b", "c"])', ["a", "b", "c"]),
    ('tomap({"a" = 1, "b" = 2})', {"a": 1, "b": 2}),
    ('tonumber("1")', 1),
    ('toset(["c", "b", "b"])', ["b", "c"]),
    ("tostring(true)", "true"),
    ("convert([1, 2], list(string))", ["1", "2"]),
    ('try(tonumber("x"), 0)', 0),
    ("can(var.missing)", False),
    # numeric
    ("abs(-12.4)", 12.4),
    ("ceil(5.1)", 6),
    ("floor(4.9)", 4),
    ("log(16, 2)", 4.0),
    ("max(12, 54, 3)", 54),
    ("min(12, 54, 3)", 3),
    ('parseint("-10", 16)', -16),
    ('parseint("aA", 62)', 656),
    ("pow(3, 2)", 9),
    ("signum(-13)", -1),
    # string
    ('chomp("hello\\r\\n")', "hello"),
    ('format("There are %d lights", 4)', "There are 4 lights"),
    ('format("%-5s|%5.2f|%q|%v", "ab", 3.14159, "x", true)', 'ab   | 3.14|"x"|true'),
    ('format("%10s|%05d|%[1]s", "ab", -7)', "        ab|-0007|ab"),
    ('formatlist("Hello, %s!", ["Valentina", "Ander"])', ["Hello, Valentina!", "Hello, Ander!"]),
    ('indent(2, "[\\n  foo,\\n]\\n")', "[\n    foo,\n  ]\n  "),
    ('join(", ", ["foo", "bar", "baz"])', "foo, bar, baz"),
    ('lower("HELLO")', "hello"),
    ('regex("(\\\\d\\\\d\\\\d\\\\d)-(\\\\d\\\\d)-(\\\\d\\\\d)", "2019-02-01")', ["2019", "02", "01"]),
    ('regex("[a-z]+", "53453453.345345aaabbbccc23454")', "aaabbbccc"),
    ('regexall("[a-z]+", "1234abcd5678efgh9")', ["abcd", "efgh"]),
    ('regex_replace("abc123", "([a-z]+)(\\\\d+)", "$2-$${1}")', "123-abc"),
    ('replace("hello world", "/w.*d/", "everybody")', "hello everybody"),
    ('split(",", "foo,bar,baz")', ["foo", "bar", "baz"]),
    ('startswith("hello world", "hello")', True),
    ('endswith("hello world", "world")', True),
    ('strcontains("hello world", "wor")', True),
    ('strrev("hello")', "olleh"),
    ('substr("hello world", -5, -1)', "world"),
    ('title("hello world")', "Hello World"),
    ('trim("?!hello?!", "!?")', "hello"),
    ('trimprefix("helloworld", "hello")', "world"),
    ('trimsuffix("helloworld", "world")', "hello"),
    ('trimspace("  hello\\n\\n")', "hello"),
    ('upper("hello")', "HELLO"),
    # encoding
    ('base64decode("SGVsbG8gV29ybGQ=")', "Hello World"),
    ('base64encode("Hello World")', "SGVsbG8gV29ybGQ="),
    ('csvdecode("a,b\\n1,2\\n4,5")', [{"a": "1", "b": "2"}, {"a": "4", "b": "5"}]),
    ('jsondecode("{\\"hello\\": \\"world\\"}")', {"hello": "world"}),
    ('jsonencode({"hello"="<world>"})', '{"hello":"\\u003cworld\\u003e"}'),
    ('textencodebase64("Hello World", "UTF-16LE")', "SABlAGwAbABvACAAVwBvAHIAbABkAA=="),
    ('textdecodebase64("SABlAGwAbABvACAAVwBvAHIAbABkAA==", "UTF-16LE")', "Hello World"),
    ('urlencode("foo:bar@localhost?foo=bar&bar=baz")', "foo%3Abar%40localhost%3Ffoo%3Dbar%26bar%3Dbaz"),
    ('yamldecode("{a: &foo [1, 2, 3], b: *foo}")', {"a": [1, 2, 3], "b": [1, 2, 3]}),
    ('yamlencode({"foo":[1,2,3],"bar": "baz"})', '"bar": "baz"\n"foo":\n- 1\n- 2\n- 3\n'),
    # crypto
    ('md5("hello world")', "5eb63bbbe01eeed093cb22bb8f5acdc3"),
    ('sha1("hello world")', "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"),
    ('sha256("hello world")', "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"),
    (
        'sha512("hello world")',
        "309ecc489c12d6eb4cc40f50c902f2b4d0ed77ee511a7c7a9bcd3ca86d4cd86f"
        "989dd35bc5ff499670da34255b45b0cfd830e81f605dcf7dc5542e93ae9cd76f",
    ),
    ('base64sha256("hello world")', "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="),
    (
        'base64sha512("hello world")',
        "MJ7MSJwS1utMxA9QyQLytNDtd+5RGnx6m808qG1M2G+YndNbxf9JlnDaNCVbRbDP2DDoH2Bdz33FVC6TrpzXbw==",
    ),
    # date and time
    ('formatdate("EEEE, DD-MMM-YY hh:mm:ss ZZZ", "2018-01-02T23:12:01Z")', "Tuesday, 02-Jan-18 23:12:01 UTC"),
    (
        'formatdate("EEE, DD MMM YYYY hh:mm:ss ZZZ", "2018-01-02T23:12:01-08:00")',
        "Tue, 02 Jan 2018 23:12:01 -0800",
    ),
    ('formatdate("YYYY-MM-DD\'T\'HH:mmaa", "2018-01-02T23:12:01Z")', "2018-01-02T11:12pm"),
    ('timeadd("2017-11-22T00:00:00Z", "10m")', "2017-11-22T00:10:00Z"),
    ('timeadd("2017-11-22T00:00:00Z", "-1h30m")', "2017-11-21T22:30:00Z"),
    # filesystem
    ('basename("foo/bar/baz.txt")', "baz.txt"),
    ('dirname("foo/bar/baz.txt")', "foo/bar"),
    # IP network
    ('cidrhost("10.12.112.0/20", 268)', "10.12.113.12"),
    ('cidrhost("fd00:fd12:3456:7890:00a2::/72", 34)', "fd00:fd12:3456:7890::22"),
    ('cidrnetmask("172.16.0.0/12")', "255.240.0.0"),
    ('cidrsubnet("10.1.2.0/24", 4, 15)', "10.1.2.240/28"),
    ('cidrsubnet("fd00:fd12:3456:7890::/56", 16, 162)', "fd00:fd12:3456:7800:a200::/72"),
    (
        'cidrsubnets("10.1.0.0/16", 4, 4, 8, 4)',
        ["10.1.0.0/20", "10.1.16.0/20", "10.1.32.0/24", "10.1.48.0/20"],
    ),
    # UUID
    ('uuidv5("dns", "www.terraform.io")', "a5008fae-b28c-5ba5-96cd-82b4c53552d6"),
    ('uuidv5("url", "https://www.terraform.io/")', "9db6f67c-dd95-5ea0-aa5b-e70e5c5f7cf5"),
]


@pytest.mark.parametrize(("expr", "expected"), EXAMPLES, ids=[e for e, _ in EXAMPLES])
def test_documented_example(expr: str, expected: Any) -> None:
    assert ev(expr, var={}) == expected


def test_files(tmp_path: Path) -> None:
    d = str(DATA)
    assert ev("file(p)", p=f"{d}/hello.txt") == "Hello World"
    assert ev("fileexists(p)", p=f"{d}/hello.txt") is True
    assert ev("fileexists(p)", p=f"{d}/nope.txt") is False
    assert ev('fileset(p, "*.txt")', p=f"{d}/files") == ["a.txt", "b.txt"]
    assert ev('fileset(p, "**/*.txt")', p=f"{d}/files") == ["a.txt", "b.txt", "sub/c.txt"]
    assert ev('fileset(p, "{a,d}.*")', p=f"{d}/files") == ["a.txt", "d.md"]
    assert ev("filebase64(p)", p=f"{d}/hello.txt") == "SGVsbG8gV29ybGQ="
    assert ev("filemd5(p)", p=f"{d}/hello.txt") == "b10a8db164e0754105b7a99be72e3fe5"
    assert ev("filesha1(p)", p=f"{d}/hello.txt") == "0a4d55a8d778e5022fab701977c5d840bbc486d0"
    assert ev("filesha256(p)", p=f"{d}/hello.txt") == ev('sha256("Hello World")')
    assert ev("filesha512(p)", p=f"{d}/hello.txt") == ev('sha512("Hello World")')
    assert ev("filebase64sha256(p)", p=f"{d}/hello.txt") == ev('base64sha256("Hello World")')
    assert ev("filebase64sha512(p)", p=f"{d}/hello.txt") == ev('base64sha512("Hello World")')
    assert ev('abspath("x/y")') == os.path.join(os.getcwd(), "x/y")
    assert ev('pathexpand("~/.ssh/id_rsa")') == str(Path.home() / ".ssh/id_rsa")
    rendered = ev(
        'templatefile(p, { name = "vm", addrs = ["10.0.0.1", "10.0.0.2"] })', p=f"{d}/backends.tftpl"
    )
    assert rendered == "Hello, vm!\nbackend 10.0.0.1:8080\nbackend 10.0.0.2:8080\n"
    with pytest.raises(ExprError, match=r"file: .*missing does not exist"):
        ev("file(p)", p=str(tmp_path / "missing"))


def test_generated_values() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ev("timestamp()"))
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", ev("uuidv4()")
    )
    assert ev('legacy_isotime("2006")') == str(datetime.now(UTC).year)
    assert ev('legacy_strftime("%Y")') == str(datetime.now(UTC).year)
    assert gzip.decompress(base64.b64decode(ev('base64gzip("hello")'))) == b"hello"
    os.environ["VMBAKE_TEST_ENV"] = "yes"
    assert ev('env("VMBAKE_TEST_ENV")') == "yes"
    assert ev('env("VMBAKE_TEST_ENV_UNSET")') == ""


def test_bcrypt_and_rsadecrypt() -> None:
    import bcrypt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    hashed = ev('bcrypt("hello world", 4)')
    assert hashed.startswith("$2a$04$") and bcrypt.checkpw(b"hello world", hashed.encode())
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    secret = base64.b64encode(key.public_key().encrypt(b"s3cret", padding.PKCS1v15())).decode()
    assert ev("rsadecrypt(c, k)", c=secret, k=pem) == "s3cret"
    with pytest.raises(ExprError, match="rsadecrypt: cannot read the private key"):
        ev('rsadecrypt(c, "not a key")', c=secret)


@pytest.mark.parametrize("name", ["vault", "consul_key", "aws_secretsmanager", "aws_secretsmanager_raw"])
def test_outside_services_are_refused_with_the_reason(name: str) -> None:
    with pytest.raises(ExprError, match=f"{name}\\(\\) reads secrets from .*vmbake does not contact"):
        ev(f'{name}("a", "b")')


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("element([], 0)", "element: cannot use element"),
        ('cidrhost("10.0.0.0/30", 9)', "cidrhost: prefix 10.0.0.0/30 has no host number 9"),
        ('formatdate("Tuesday", "2018-01-02T23:12:01Z")', "formatdate: unknown sequence"),
        ('regex("x", "abc")', "regex: pattern"),
        ('jsondecode("{")', "jsondecode"),
        ("frobnicate(1)", "not one of Packer's HCL2 functions"),
    ],
)
def test_bad_arguments_say_which_function(expr: str, message: str) -> None:
    with pytest.raises(ExprError, match=re.escape(message)):
        ev(expr)


def test_go_regex_syntax() -> None:
    assert ev('regex("[[:digit:]]+\\\\z", "abc123")') == "123"
    assert ev('regexall("(?P<k>\\\\w+)=(?P<v>\\\\w+)", "a=1 b=2")') == [
        {"k": "a", "v": "1"},
        {"k": "b", "v": "2"},
    ]


# Packer's function documentation, section by section.
DOCUMENTED = re.findall(
    r"\S+",
    """
alltrue anytrue chunklist coalesce coalescelist compact concat contains distinct element flatten index keys
length lookup matchkeys merge one range reverse setintersection setproduct setsubtract setunion slice sort
sum transpose values zipmap
can convert tobool tolist tomap tonumber toset tostring try
aws_secretsmanager consul_key env vault
bcrypt md5 rsadecrypt sha1 sha256 sha512
formatdate legacy_isotime legacy_strftime timeadd timestamp
base64decode base64encode base64gzip csvdecode jsondecode jsonencode textdecodebase64 textencodebase64
urlencode yamldecode yamlencode
abspath basename dirname file fileexists fileset pathexpand templatefile
cidrhost cidrnetmask cidrsubnet cidrsubnets
abs ceil floor log max min parseint pow signum
chomp endswith format formatlist indent join lower regex_replace regex regexall replace split startswith
strcontains strrev substr title trim trimprefix trimspace trimsuffix upper
uuidv4 uuidv5
""",
)


def test_every_documented_function_is_present() -> None:
    assert sorted(set(DOCUMENTED) - set(FUNCTIONS) - {"try", "can", "convert"}) == []


def test_every_function_has_a_test() -> None:
    text = Path(__file__).read_text()
    untested = [name for name in FUNCTIONS if f"{name}(" not in text and f'"{name}"' not in text]
    assert untested == []
