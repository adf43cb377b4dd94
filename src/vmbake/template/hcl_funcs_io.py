"""Packer's HCL2 functions: crypto, date and time, encoding, UUIDs, the environment, and the secret stores
(which vmbake does not reach, and says so). Files and IP networks: hcl_funcs_fsnet."""

from __future__ import annotations

import base64
import codecs
import csv
import gzip
import hashlib
import io
import json
import os
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from vmbake.template.gotime import go_format as go_time_format
from vmbake.template.hcl_errors import ExprError
from vmbake.template.hcl_funcs_core import integer, text
from vmbake.template.packer_funcs import INIT_TIME
from vmbake.units import parse_duration

# legacy_isotime / legacy_strftime render the run's one start instant, as JSON's isotime does.
START = INIT_TIME


# -- crypto ------------------------------------------------------------------------------------------------
def _digest(name: str) -> Callable[[Any], str]:
    return lambda s: hashlib.new(name, text(s).encode()).hexdigest()


def _b64digest(name: str) -> Callable[[Any], str]:
    return lambda s: base64.b64encode(hashlib.new(name, text(s).encode()).digest()).decode()


def _bcrypt(string: Any, *cost: Any) -> str:
    import bcrypt  # paramiko's dependency, so always present

    rounds = integer(cost[0]) if cost else 10
    if not 4 <= rounds <= 31:
        raise ExprError("bcrypt: the cost must be between 4 and 31")
    salt = bcrypt.gensalt(rounds=rounds, prefix=b"2a")  # Go's x/crypto/bcrypt writes $2a$
    return str(bcrypt.hashpw(text(string).encode(), salt).decode())


def _rsadecrypt(ciphertext: Any, private_key: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        data = base64.b64decode(text(ciphertext), validate=True)
    except ValueError:
        raise ExprError("rsadecrypt: the ciphertext is not valid base64") from None
    try:
        key = load_pem_private_key(text(private_key).encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ExprError(f"rsadecrypt: cannot read the private key (unencrypted PEM wanted): {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ExprError("rsadecrypt: the key is not an RSA key")
    try:
        return key.decrypt(data, padding.PKCS1v15()).decode()
    except ValueError:
        raise ExprError(
            "rsadecrypt: decryption failed (PKCS #1 v1.5 ciphertext and its key wanted)"
        ) from None


# -- date and time -----------------------------------------------------------------------------------------
def _rfc3339(value: Any, fn: str) -> datetime:
    s = text(value)
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)[Tt](\d\d:\d\d:\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)", s)
    if not m:
        raise ExprError(f'{fn}: {s!r} is not an RFC 3339 timestamp (like "2017-11-22T00:00:00Z")')
    zone = "+00:00" if m.group(4) in "Zz" else m.group(4)
    frac = (m.group(3) or "")[:7].ljust(7, "0") if m.group(3) else ""
    return datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}{frac}{zone}")


_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_DATE_TOKEN = re.compile(
    r"'(?:[^']|'')*'|YYYY|YY|MMMM|MMM|MM|M|DD|D|EEEE|EEE|hh|h|HH|H|AA|aa|mm|m|ss|s|ZZZZZ|ZZZZ|ZZZ|Z|[A-Za-z]+|.",
    re.S,
)


def _offset(dt: datetime, colon: bool) -> str:
    total = int((dt.utcoffset() or timedelta()).total_seconds() // 60)
    sign = "-" if total < 0 else "+"
    hours, minutes = divmod(abs(total), 60)
    return f"{sign}{hours:02d}{':' if colon else ''}{minutes:02d}"


def _formatdate(spec: Any, timestamp: Any) -> str:
    dt = _rfc3339(timestamp, "formatdate")
    hour12 = dt.hour % 12 or 12
    table: dict[str, Callable[[], str]] = {
        "YYYY": lambda: f"{dt.year:04d}",
        "YY": lambda: f"{dt.year % 100:02d}",
        "MMMM": lambda: _MONTHS[dt.month - 1],
        "MMM": lambda: _MONTHS[dt.month - 1][:3],
        "MM": lambda: f"{dt.month:02d}",
        "M": lambda: str(dt.month),
        "DD": lambda: f"{dt.day:02d}",
        "D": lambda: str(dt.day),
        "EEEE": lambda: _DAYS[dt.weekday()],
        "EEE": lambda: _DAYS[dt.weekday()][:3],
        "hh": lambda: f"{dt.hour:02d}",
        "h": lambda: str(dt.hour),
        "HH": lambda: f"{hour12:02d}",
        "H": lambda: str(hour12),
        "AA": lambda: "AM" if dt.hour < 12 else "PM",
        "aa": lambda: "am" if dt.hour < 12 else "pm",
        "mm": lambda: f"{dt.minute:02d}",
        "m": lambda: str(dt.minute),
        "ss": lambda: f"{dt.second:02d}",
        "s": lambda: str(dt.second),
        "ZZZZZ": lambda: _offset(dt, True),
        "ZZZZ": lambda: _offset(dt, False),
        "ZZZ": lambda: "UTC" if not dt.utcoffset() else _offset(dt, False),
        "Z": lambda: "Z" if not dt.utcoffset() else _offset(dt, True),
    }
    out: list[str] = []
    for m in _DATE_TOKEN.finditer(text(spec)):
        tok = m.group(0)
        if tok.startswith("'"):
            out.append(tok[1:-1].replace("''", "'") if len(tok) > 2 else "'")
        elif tok in table:
            out.append(table[tok]())
        elif tok[0].isalpha():
            raise ExprError(f"formatdate: unknown sequence {tok!r}; quote literal letters ('T')")
        else:
            out.append(tok)
    return "".join(out)


def _timeadd(timestamp: Any, duration: Any) -> str:
    dt = _rfc3339(timestamp, "timeadd")
    try:
        seconds = parse_duration(text(duration))
    except ValueError as exc:
        raise ExprError(f"timeadd: {exc}") from None
    result = dt + timedelta(seconds=seconds)
    out = result.isoformat().replace("+00:00", "Z")
    return out


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- encoding ----------------------------------------------------------------------------------------------
def _b64decode(value: Any) -> str:
    try:
        return base64.b64decode(text(value), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise ExprError("base64decode: not valid base64 of UTF-8 text") from None


def jsonencode(value: Any) -> str:
    out = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    # Go's encoding/json escapes these three for safe embedding in HTML.
    return out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _jsondecode(value: Any) -> Any:
    try:
        return json.loads(text(value))
    except json.JSONDecodeError as exc:
        raise ExprError(f"jsondecode: {exc}") from None


def _csvdecode(value: Any) -> list[dict[str, str]]:
    rows = list(csv.reader(io.StringIO(text(value))))
    if not rows:
        raise ExprError("csvdecode: missing header line")
    header, body = rows[0], rows[1:]
    for n, row in enumerate(body, 2):
        if len(row) != len(header):
            raise ExprError(f"csvdecode: line {n} has {len(row)} fields, the header has {len(header)}")
    return [dict(zip(header, row, strict=True)) for row in body]


class _YamlDumper(yaml.SafeDumper):  # type: ignore[misc,unused-ignore]
    """Strings always double-quoted, as go-cty-yaml writes them."""


_YamlDumper.add_representer(str, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style='"'))


def _yamlencode(value: Any) -> str:
    return str(
        yaml.dump(value, Dumper=_YamlDumper, default_flow_style=False, sort_keys=True, allow_unicode=True)
    )


def _yamldecode(value: Any) -> Any:
    try:
        docs = list(yaml.safe_load_all(text(value)))
    except yaml.YAMLError as exc:
        raise ExprError(f"yamldecode: {exc}") from None
    if len(docs) > 1:
        raise ExprError("yamldecode: the text holds more than one YAML document")
    return _plain(docs[0]) if docs else None


def _plain(value: Any) -> Any:
    """YAML's dates and other types as HCL values (strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _codec(name: Any, fn: str) -> str:
    try:
        return codecs.lookup(text(name)).name
    except LookupError:
        raise ExprError(f"{fn}: unknown encoding {name!r}") from None


def _textencodebase64(string: Any, encoding: Any) -> str:
    return base64.b64encode(text(string).encode(_codec(encoding, "textencodebase64"))).decode()


def _textdecodebase64(string: Any, encoding: Any) -> str:
    codec = _codec(encoding, "textdecodebase64")
    try:
        return base64.b64decode(text(string), validate=True).decode(codec)
    except (ValueError, UnicodeDecodeError):
        raise ExprError(f"textdecodebase64: not valid base64 of {codec} text") from None


def _urlencode(value: Any) -> str:
    from urllib.parse import quote_plus

    return quote_plus(text(value), safe="")


# -- UUID, environment, secret stores ----------------------------------------------------------------------
_NAMESPACES = {
    "dns": uuid.NAMESPACE_DNS,
    "url": uuid.NAMESPACE_URL,
    "oid": uuid.NAMESPACE_OID,
    "x500": uuid.NAMESPACE_X500,
}


def _uuidv5(namespace: Any, name: Any) -> str:
    ns = _NAMESPACES.get(text(namespace))
    if ns is None:
        try:
            ns = uuid.UUID(text(namespace))
        except ValueError:
            raise ExprError("uuidv5: the namespace is dns, url, oid, x500 or a UUID") from None
    return str(uuid.uuid5(ns, text(name)))


def _unavailable(name: str, service: str) -> Callable[..., Any]:
    def fn(*_args: Any) -> Any:
        raise ExprError(
            f"{name}() reads secrets from {service}; vmbake does not contact {service}. "
            "Pass the value with -var or PKR_VAR_name instead"
        )

    return fn


IO: dict[str, Callable[..., Any]] = {
    # crypto
    "bcrypt": _bcrypt,
    "md5": _digest("md5"),
    "rsadecrypt": _rsadecrypt,
    "sha1": _digest("sha1"),
    "sha256": _digest("sha256"),
    "sha512": _digest("sha512"),
    "base64sha256": _b64digest("sha256"),
    "base64sha512": _b64digest("sha512"),
    # date and time
    "formatdate": _formatdate,
    "legacy_isotime": lambda layout: go_time_format(START, text(layout)),
    "legacy_strftime": lambda layout: START.strftime(text(layout)),
    "timeadd": _timeadd,
    "timestamp": _timestamp,
    # encoding
    "base64decode": _b64decode,
    "base64encode": lambda s: base64.b64encode(text(s).encode()).decode(),
    "base64gzip": lambda s: base64.b64encode(gzip.compress(text(s).encode(), mtime=0)).decode(),
    "csvdecode": _csvdecode,
    "jsondecode": _jsondecode,
    "jsonencode": jsonencode,
    "textdecodebase64": _textdecodebase64,
    "textencodebase64": _textencodebase64,
    "urlencode": _urlencode,
    "yamldecode": _yamldecode,
    "yamlencode": _yamlencode,
    # UUID and environment
    "uuidv4": lambda: str(uuid.uuid4()),
    "uuidv5": _uuidv5,
    "env": lambda name: os.environ.get(text(name), ""),
    # outside services
    "vault": _unavailable("vault", "HashiCorp Vault"),
    "consul_key": _unavailable("consul_key", "Consul"),
    "aws_secretsmanager": _unavailable("aws_secretsmanager", "AWS Secrets Manager"),
    "aws_secretsmanager_raw": _unavailable("aws_secretsmanager_raw", "AWS Secrets Manager"),
}
