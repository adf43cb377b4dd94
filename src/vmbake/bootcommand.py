"""The boot command language: `<esc><wait5>expert<spacebar>url=...<enter>` turned into key events.

`parse(text)` reads the language into actions; `to_events(actions)` turns them into key presses and
releases that carry both an X11 keysym (for VNC) and a QEMU qcode (for QMP `input-send-event`).

The grammar follows Packer's:

* `<name>` for a special key (names are case-insensitive: `<Enter>`, `<ENTER>`, `<enter>`);
* `<nameOn>` / `<nameOff>` hold or release a special key, and `<cOn>` / `<cOff>` a single character;
* `<wait>` pauses 1 s, `<wait5>` 5 s, `<wait1m30s>` or `<wait300ms>` a Go-style duration;
* anything else, including a lone `<` or an unknown `<tag>`, is typed literally, character by character.

One deliberate difference: where Packer would silently type a malformed wait such as `<wait0>`,
`<wait-5s>`, `<wait 5>` or `<Wait5>` as literal text, vmbake rejects it, so the mistake shows at
validate time rather than as a mangled installer command line.

This module imports nothing heavy: the template validator calls `parse()` on every boot command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from vmbake.units import LONGEST_WAIT

__all__ = [
    "SPECIAL_KEYS",
    "Action",
    "BootCommandError",
    "KeyAction",
    "KeyEvent",
    "KeyPress",
    "Literal",
    "Wait",
    "parse",
    "strokes",
    "to_events",
]


class BootCommandError(ValueError):
    """A boot command that cannot be typed; `offset` is where the problem starts in the text."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset


class KeyAction(Enum):
    """What to do with a key: press and release it, hold it down, or let it go."""

    TAP = "tap"
    PRESS = "press"
    RELEASE = "release"


@dataclass(frozen=True)
class KeyPress:
    """A special key such as `enter` (canonical lower-case name)."""

    key: str
    action: KeyAction = KeyAction.TAP
    end: int = field(default=0, compare=False)  # offset just past this action in the source text


@dataclass(frozen=True)
class Literal:
    """One character typed as it is."""

    char: str
    action: KeyAction = KeyAction.TAP
    end: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Wait:
    """A pause, in seconds."""

    seconds: float
    end: int = field(default=0, compare=False)


Action = KeyPress | Literal | Wait


@dataclass(frozen=True)
class KeyEvent:
    """One key going down or up. `qcode` is None when no key of a US keyboard produces the character."""

    keysym: int
    down: bool
    qcode: str | None
    end: int = field(default=0, compare=False)


# Special key name -> X11 keysym. The Mac names are Packer's, with the keysyms Packer sends for them.
SPECIAL_KEYS: dict[str, int] = {
    "bs": 0xFF08,
    "del": 0xFFFF,
    "enter": 0xFF0D,
    "return": 0xFF0D,
    "esc": 0xFF1B,
    "tab": 0xFF09,
    "spacebar": 0x0020,
    "insert": 0xFF63,
    "home": 0xFF50,
    "end": 0xFF57,
    "pageup": 0xFF55,
    "pagedown": 0xFF56,
    "up": 0xFF52,
    "down": 0xFF54,
    "left": 0xFF51,
    "right": 0xFF53,
    **{f"f{n}": 0xFFBE + n - 1 for n in range(1, 13)},
    "leftalt": 0xFFE9,
    "rightalt": 0xFFEA,
    "leftctrl": 0xFFE3,
    "rightctrl": 0xFFE4,
    "leftshift": 0xFFE1,
    "rightshift": 0xFFE2,
    "leftsuper": 0xFFEB,
    "rightsuper": 0xFFEC,
    "menu": 0xFF67,
    "leftcommand": 0xFFE9,
    "rightcommand": 0xFFEA,
    "leftoption": 0xFFE7,
    "rightoption": 0xFFE8,
}

# Keysym of a special key -> QEMU qcode (the key's position on a PC keyboard).
_SPECIAL_QCODES: dict[int, str] = {
    0xFF08: "backspace",
    0xFFFF: "delete",
    0xFF0D: "ret",
    0xFF1B: "esc",
    0xFF09: "tab",
    0x0020: "spc",
    0xFF63: "insert",
    0xFF50: "home",
    0xFF57: "end",
    0xFF55: "pgup",
    0xFF56: "pgdn",
    0xFF52: "up",
    0xFF54: "down",
    0xFF51: "left",
    0xFF53: "right",
    **{0xFFBE + n - 1: f"f{n}" for n in range(1, 13)},
    0xFFE9: "alt",
    0xFFEA: "alt_r",
    0xFFE3: "ctrl",
    0xFFE4: "ctrl_r",
    0xFFE1: "shift",
    0xFFE2: "shift_r",
    0xFFEB: "meta_l",
    0xFFEC: "meta_r",
    0xFFE7: "meta_l",
    0xFFE8: "meta_r",
    0xFF67: "compose",  # the PC "application menu" key
}

LEFT_SHIFT = 0xFFE1

# Characters that need Shift on a US keyboard (Packer's list), and the key that carries each.
_SHIFTED_CHARS = '~!@#$%^&*()_+{}|:"<>?'
_US_SYMBOL_KEYS: dict[str, str] = {
    " ": "spc",
    "-": "minus", "_": "minus",
    "=": "equal", "+": "equal",
    "[": "bracket_left", "{": "bracket_left",
    "]": "bracket_right", "}": "bracket_right",
    "\\": "backslash", "|": "backslash",
    ";": "semicolon", ":": "semicolon",
    "'": "apostrophe", '"': "apostrophe",
    "`": "grave_accent", "~": "grave_accent",
    ",": "comma", "<": "comma",
    ".": "dot", ">": "dot",
    "/": "slash", "?": "slash",
    "!": "1", "@": "2", "#": "3", "$": "4", "%": "5", "^": "6", "&": "7", "*": "8", "(": "9", ")": "0",
}  # fmt: skip

_WAIT_RE = re.compile(r"<(wait)([^<>]*)>", re.IGNORECASE)
_SECONDS_RE = re.compile(r"(?:0|[1-9][0-9]*)")
_DURATION_RE = re.compile(r"-?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+")
_DURATION_PART_RE = re.compile(r"((?:0|[1-9][0-9]*)(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TOGGLE_RE = re.compile(r"(on|off)>", re.IGNORECASE)
_WAIT_HINT = "write <wait> (1s), a whole number of seconds such as <wait5>, or a duration such as <wait1m30s>"


def _wait_seconds(tag: str, word: str, arg: str, offset: int) -> float:
    if word != "wait":
        raise BootCommandError(
            f"{tag} at offset {offset} is not a wait: waits are written in lower case", offset
        )
    if arg == "":
        return 1.0
    if len(arg) > 40:
        raise BootCommandError(f"wait {tag[:40]}... at offset {offset} is too long to be a wait", offset)
    if _SECONDS_RE.fullmatch(arg):
        seconds = float(int(arg))
    elif _DURATION_RE.fullmatch(arg):
        sign = -1.0 if arg.startswith("-") else 1.0
        seconds = sign * sum(
            float(m.group(1)) * _UNIT_SECONDS[m.group(2)] for m in _DURATION_PART_RE.finditer(arg)
        )
    else:
        raise BootCommandError(f"malformed wait {tag} at offset {offset}: {_WAIT_HINT}", offset)
    if seconds <= 0:
        raise BootCommandError(f"wait {tag} at offset {offset} must be longer than zero", offset)
    if seconds > LONGEST_WAIT:
        raise BootCommandError(
            f"wait {tag[:40]} at offset {offset} is longer than a year, the longest wait (as for boot_wait)",
            offset,
        )
    return seconds


def _toggle(word: str) -> KeyAction:
    return KeyAction.PRESS if word.lower() == "on" else KeyAction.RELEASE


def _special(inner: str) -> tuple[str, KeyAction] | None:
    name = inner.lower()
    if name in SPECIAL_KEYS:
        return name, KeyAction.TAP
    for suffix, action in (("on", KeyAction.PRESS), ("off", KeyAction.RELEASE)):
        if name.endswith(suffix) and name[: -len(suffix)] in SPECIAL_KEYS:
            return name[: -len(suffix)], action
    return None


def parse(text: str) -> list[Action]:
    """The actions of a (rendered) boot command. Raises BootCommandError for a malformed wait."""
    actions: list[Action] = []
    i = 0
    n = len(text)
    while i < n:
        if text[i] == "<":
            wait = _WAIT_RE.match(text, i)
            if wait:
                seconds = _wait_seconds(wait.group(0), wait.group(1), wait.group(2), i)
                actions.append(Wait(seconds, end=wait.end()))
                i = wait.end()
                continue
            if i + 1 < n:
                toggle = _TOGGLE_RE.match(text, i + 2)
                if toggle:
                    actions.append(Literal(text[i + 1], _toggle(toggle.group(1)), end=toggle.end()))
                    i = toggle.end()
                    continue
            close = text.find(">", i + 1)
            if close > 0:
                special = _special(text[i + 1 : close])
                if special:
                    actions.append(KeyPress(special[0], special[1], end=close + 1))
                    i = close + 1
                    continue
        actions.append(Literal(text[i], end=i + 1))
        i += 1
    return actions


def _char_keysym(char: str) -> int | None:
    code = ord(char)
    if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF:
        return code  # Latin-1 keysyms equal their code points
    if code > 0xFF:
        return 0x01000000 | code  # X11 Unicode keysym
    return None  # control characters: no key types them (Packer's QEMU drops them too)


def _char_qcode(char: str) -> str | None:
    if char.isascii() and char.isalpha():
        return char.lower()
    if char.isascii() and char.isdigit():
        return char
    return _US_SYMBOL_KEYS.get(char)


def _needs_shift(char: str) -> bool:
    return char.isupper() or char in _SHIFTED_CHARS


def _key_events(keysym: int, qcode: str | None, action: KeyAction, shift: bool, end: int) -> list[KeyEvent]:
    shift_down = [KeyEvent(LEFT_SHIFT, True, "shift", end)] if shift else []
    shift_up = [KeyEvent(LEFT_SHIFT, False, "shift", end)] if shift else []
    down = KeyEvent(keysym, True, qcode, end)
    up = KeyEvent(keysym, False, qcode, end)
    if action is KeyAction.PRESS:
        return [*shift_down, down]
    if action is KeyAction.RELEASE:
        return [up, *shift_up]
    return [*shift_down, down, up, *shift_up]


def to_events(actions: list[Action]) -> list[KeyEvent | Wait]:
    """Key events (US layout: upper case and shifted symbols wrapped in Left Shift) and waits."""
    events: list[KeyEvent | Wait] = []
    for action in actions:
        if isinstance(action, Wait):
            events.append(action)
        elif isinstance(action, KeyPress):
            keysym = SPECIAL_KEYS[action.key]
            events += _key_events(keysym, _SPECIAL_QCODES[keysym], action.action, False, action.end)
        else:
            keysym_or_none = _char_keysym(action.char)
            if keysym_or_none is None:
                continue
            shift = _needs_shift(action.char)
            events += _key_events(keysym_or_none, _char_qcode(action.char), action.action, shift, action.end)
    return events


def strokes(events: list[KeyEvent | Wait], limit: int = 8) -> list[list[KeyEvent] | Wait]:
    """Events grouped into key strokes: a group ends when every key it pressed is up again.

    QMP sends one group per `input-send-event`, so a shifted letter never arrives split in two."""
    groups: list[list[KeyEvent] | Wait] = []
    current: list[KeyEvent] = []
    held: set[int] = set()
    for event in events:
        if isinstance(event, Wait):
            if current:
                groups.append(current)
                current, held = [], set()
            groups.append(event)
            continue
        current.append(event)
        if event.down:
            held.add(event.keysym)
        else:
            held.discard(event.keysym)
        if not held or len(current) >= limit:
            groups.append(current)
            current, held = [], set()
    if current:
        groups.append(current)
    return groups
