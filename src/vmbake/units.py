"""Packer's units: Go durations ("1m30s") and disk sizes ("5120M", "40G")."""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_SIZE_RE = re.compile(r"^(\d+)([bkmgt]?)(?:i?b)?$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


# The longest wait a template may ask for, in a duration key (boot_wait, ssh_timeout, ...) or a boot
# command's <waitN>: anything longer is a typo, and would overflow threading's timeouts.
LONGEST_WAIT = 366 * 24 * 3600.0
# Numbers of more digits are refused before Python converts them (its own limit is 4300 digits), so that
# no float becomes inf and no int is too long to print; what is left is bounded by each key's own check.
_MAX_DIGITS = 30


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string such as "5s", "1m30s" or "300ms". Raises ValueError."""
    s = text.strip()
    if s in ("0", ""):
        if s == "":
            raise ValueError("empty duration")
        return 0.0
    sign = 1.0
    if s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    pos = 0
    total = 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m and len(m.group(1)) > _MAX_DIGITS:
            raise ValueError(f"invalid duration {text[:40]!r}...: the number is too long")
        if not m:
            raise ValueError(f"invalid duration {text!r}: use a number with a unit, like 5s, 1m30s or 300ms")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos == 0:
        raise ValueError(f"invalid duration {text!r}")
    return sign * total


def format_duration(seconds: float) -> str:
    """A short human form: 95.2 -> "1m35s"."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s"


def go_duration(seconds: float) -> str:
    """A duration as Go prints it: 5s, 1m30s, 1h0m0s, 300ms."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 1:
        for unit, scale in (("ms", 1e3), ("µs", 1e6), ("ns", 1e9)):
            if seconds * scale >= 1 or unit == "ns":
                return f"{sign}{seconds * scale:.6f}".rstrip("0").rstrip(".") + unit
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{sign}{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{sign}{int(minutes)}m{text}"
    return sign + text


def parse_size(text: str | int, default_unit: str = "M") -> int:
    """Bytes in a disk size: Packer reads a bare number as MiB. Raises ValueError."""
    if isinstance(text, bool):
        raise ValueError("a size is a number with an optional unit, not a boolean")
    if isinstance(text, int):
        if abs(text) >= 10**_MAX_DIGITS:
            raise ValueError("size too large: no disk is that large")
        text = str(text)
    if len(text) > _MAX_DIGITS + 4:
        raise ValueError(f"invalid size {text[:40]!r}...: too long for a size")
    m = _SIZE_RE.match(text.strip())
    if not m:
        raise ValueError(
            f"invalid size {text!r}: use a whole number with an optional unit (5120M, 40G, 512K)"
        )
    unit = (m.group(2) or default_unit).lower()
    return int(m.group(1)) * _SIZE_UNITS[unit]


def size_text(nbytes: int) -> str:
    """A size in the largest unit that holds it exactly, as a template writes it: 2147483648 -> "2G",
    5368709120 -> "5G", 1536 KiB -> "1536K"; parse_size reads it back to the same number."""
    for suffix, scale in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if nbytes and nbytes % scale == 0:
            return f"{nbytes // scale}{suffix}"
    return f"{nbytes}B"


def format_size(nbytes: float) -> str:
    """Bytes as a short binary-unit string: 303038464 -> "289.0 MiB"."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
