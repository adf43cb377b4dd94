"""Go's reference-time layouts ("2006-01-02T15:04:05Z07:00"), as Packer's `isotime` takes them."""

from __future__ import annotations

from datetime import datetime

_MONTHS = (
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
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

RFC3339 = "2006-01-02T15:04:05Z07:00"


def _zone(dt: datetime, colon: bool, seconds: bool, z: bool, hours_only: bool = False) -> str:
    offset = dt.utcoffset()
    total = int(offset.total_seconds()) if offset is not None else 0
    if z and total == 0:
        return "Z"
    sign = "-" if total < 0 else "+"
    total = abs(total)
    hh, rest = divmod(total, 3600)
    mm, ss = divmod(rest, 60)
    if hours_only:
        return f"{sign}{hh:02d}"
    sep = ":" if colon else ""
    text = f"{sign}{hh:02d}{sep}{mm:02d}"
    if seconds:
        text += f"{sep}{ss:02d}"
    return text


def _fraction(dt: datetime, digits: int, trim: bool) -> str:
    frac = f"{dt.microsecond:06d}000"[:digits]
    if trim:
        frac = frac.rstrip("0")
        return "." + frac if frac else ""
    return "." + frac


def _zone_chunks(dt: datetime) -> list[tuple[str, str]]:
    return [
        ("Z07:00:00", _zone(dt, True, True, True)),
        ("-07:00:00", _zone(dt, True, True, False)),
        ("Z070000", _zone(dt, False, True, True)),
        ("-070000", _zone(dt, False, True, False)),
        ("Z07:00", _zone(dt, True, False, True)),
        ("-07:00", _zone(dt, True, False, False)),
        ("Z0700", _zone(dt, False, False, True)),
        ("-0700", _zone(dt, False, False, False)),
        ("Z07", _zone(dt, False, False, True, hours_only=True)),
        ("-07", _zone(dt, False, False, False, hours_only=True)),
    ]


def go_format(dt: datetime, layout: str) -> str:
    """`dt` formatted with a Go layout string, chunk by chunk as Go's time package reads it."""
    hour12 = dt.hour % 12 or 12
    chunks: list[tuple[str, str]] = [
        ("January", _MONTHS[dt.month - 1]),
        ("Jan", _MONTHS[dt.month - 1][:3]),
        ("Monday", _DAYS[dt.weekday()]),
        ("Mon", _DAYS[dt.weekday()][:3]),
        ("MST", dt.tzname() or "UTC"),
        ("2006", f"{dt.year:04d}"),
        ("002", f"{dt.timetuple().tm_yday:03d}"),
        ("01", f"{dt.month:02d}"),
        ("02", f"{dt.day:02d}"),
        ("03", f"{hour12:02d}"),
        ("04", f"{dt.minute:02d}"),
        ("05", f"{dt.second:02d}"),
        ("06", f"{dt.year % 100:02d}"),
        ("15", f"{dt.hour:02d}"),
        ("_2", f"{dt.day:2d}"),
        ("PM", "PM" if dt.hour >= 12 else "AM"),
        ("pm", "pm" if dt.hour >= 12 else "am"),
        *_zone_chunks(dt),
        ("1", str(dt.month)),
        ("2", str(dt.day)),
        ("3", str(hour12)),
        ("4", str(dt.minute)),
        ("5", str(dt.second)),
    ]
    out: list[str] = []
    i = 0
    while i < len(layout):
        c = layout[i]
        if c in ".," and i + 1 < len(layout) and layout[i + 1] in "09":
            j = i + 1
            while j < len(layout) and layout[j] == layout[i + 1]:
                j += 1
            if j == len(layout) or not layout[j].isdigit():
                out.append(_fraction(dt, j - i - 1, trim=layout[i + 1] == "9"))
                i = j
                continue
        for token, value in chunks:
            if layout.startswith(token, i):
                out.append(value)
                i += len(token)
                break
        else:
            out.append(c)
            i += 1
    return "".join(out)
