"""The boot command language: pure tests of parse(), to_events() and strokes()."""

from __future__ import annotations

import pytest

from vmbake.bootcommand import (
    SPECIAL_KEYS,
    BootCommandError,
    KeyAction,
    KeyEvent,
    KeyPress,
    Literal,
    Wait,
    parse,
    strokes,
    to_events,
)

SEED = (
    "<esc><wait5>expert<spacebar>ipv6.disable=1<spacebar>net.ifnames=0<spacebar>auto=true<spacebar>"
    "priority=critical<spacebar>url=http://10.0.2.2:8080/virtual-host.cfg<wait5><enter>"
)

TAP, PRESS, RELEASE = KeyAction.TAP, KeyAction.PRESS, KeyAction.RELEASE
SHIFT_DOWN = KeyEvent(0xFFE1, True, "shift")
SHIFT_UP = KeyEvent(0xFFE1, False, "shift")

DOCUMENTED_KEYS = [
    *(
        "bs",
        "del",
        "enter",
        "return",
        "esc",
        "tab",
        "spacebar",
        "insert",
        "home",
        "end",
        "pageUp",
        "pageDown",
    ),
    *("up", "down", "left", "right", *(f"f{n}" for n in range(1, 13))),
    *("leftAlt", "rightAlt", "leftCtrl", "rightCtrl", "leftShift", "rightShift", "leftSuper", "rightSuper"),
    *("menu", "leftCommand", "rightCommand", "leftOption", "rightOption"),
]


def test_empty_command_has_no_actions() -> None:
    assert parse("") == []
    assert to_events([]) == []


@pytest.mark.parametrize("name", DOCUMENTED_KEYS)
def test_every_special_key_in_any_case(name: str) -> None:
    for spelling in (name, name.lower(), name.upper()):
        assert parse(f"<{spelling}>") == [KeyPress(name.lower(), TAP)]
        assert parse(f"<{spelling}On>") == [KeyPress(name.lower(), PRESS)]
        assert parse(f"<{spelling}off>") == [KeyPress(name.lower(), RELEASE)]
        assert parse(f"<{spelling}ON><{spelling}OFF>") == [
            KeyPress(name.lower(), PRESS),
            KeyPress(name.lower(), RELEASE),
        ]


def test_every_special_key_has_a_keysym_and_a_qcode() -> None:
    assert set(SPECIAL_KEYS) == {k.lower() for k in DOCUMENTED_KEYS}
    for name, keysym in SPECIAL_KEYS.items():
        events = to_events(parse(f"<{name}>"))
        assert events == [KeyEvent(keysym, True, events[0].qcode), KeyEvent(keysym, False, events[0].qcode)]  # type: ignore[union-attr]
        assert isinstance(events[0], KeyEvent) and events[0].qcode, name


def test_known_keysyms_and_qcodes() -> None:
    def first(text: str) -> KeyEvent:
        event = to_events(parse(text))[0]
        assert isinstance(event, KeyEvent)
        return event

    assert (first("<enter>").keysym, first("<enter>").qcode) == (0xFF0D, "ret")
    assert (first("<return>").keysym, first("<return>").qcode) == (0xFF0D, "ret")
    assert (first("<esc>").keysym, first("<esc>").qcode) == (0xFF1B, "esc")
    assert (first("<spacebar>").keysym, first("<spacebar>").qcode) == (0x20, "spc")
    assert (first("<f12>").keysym, first("<f12>").qcode) == (0xFFC9, "f12")
    assert (first("<leftCtrl>").keysym, first("<leftCtrl>").qcode) == (0xFFE3, "ctrl")
    assert (first("<pageDown>").keysym, first("<pageDown>").qcode) == (0xFF56, "pgdn")
    assert (first("<menu>").keysym, first("<menu>").qcode) == (0xFF67, "compose")


def test_character_toggles() -> None:
    assert parse("<aOn>") == [Literal("a", PRESS)]
    assert parse("<aoff>") == [Literal("a", RELEASE)]
    assert parse("<<On>") == [Literal("<", PRESS)]
    assert parse("<>Off>") == [Literal(">", RELEASE)]
    assert parse("< ON>") == [Literal(" ", PRESS)]
    assert parse("<leftCtrlOn>c<leftCtrlOff>") == [
        KeyPress("leftctrl", PRESS),
        Literal("c"),
        KeyPress("leftctrl", RELEASE),
    ]
    # An upper-case character held down keeps Shift down until it is released.
    assert to_events(parse("<AOn><AOff>")) == [
        SHIFT_DOWN,
        KeyEvent(0x41, True, "a"),
        KeyEvent(0x41, False, "a"),
        SHIFT_UP,
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("<wait>", 1.0),
        ("<wait1>", 1.0),
        ("<wait5>", 5.0),
        ("<wait10>", 10.0),
        ("<wait120>", 120.0),
        ("<wait3s>", 3.0),
        ("<wait1m30s>", 90.0),
        ("<wait300ms>", 0.3),
        ("<wait1.5h>", 5400.0),
        ("<wait2h45m>", 9900.0),
        ("<wait4m2ns>", 240.000000002),
        ("<wait500us>", 0.0005),
        ("<wait500µs>", 0.0005),
    ],
)
def test_every_wait_form(text: str, seconds: float) -> None:
    (action,) = parse(text)
    assert isinstance(action, Wait)
    assert action.seconds == pytest.approx(seconds)
    assert to_events([action]) == [action]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("<wait0>", "longer than zero"),
        ("<wait0s>", "longer than zero"),
        ("<wait-1s>", "longer than zero"),
        ("<wait-1m>", "longer than zero"),
        ("<wait 5>", "malformed wait"),
        ("<wait5 >", "malformed wait"),
        ("<wait05>", "malformed wait"),
        ("<wait1x>", "malformed wait"),
        ("<wait1.s>", "malformed wait"),
        ("<wait-5>", "malformed wait"),
        ("<waitOn>", "malformed wait"),
        ("<Wait5>", "lower case"),
        ("<WAIT>", "lower case"),
    ],
)
def test_malformed_waits_are_rejected(text: str, words: str) -> None:
    with pytest.raises(BootCommandError, match=words) as caught:
        parse("abc" + text)
    assert caught.value.offset == 3
    assert text in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_literal_angle_brackets_and_unknown_tags() -> None:
    # '<wait5 x' is not closed before the next '<', so it is text and only '<enter>' is a key.
    actions = parse("<wait5 x<enter>")
    assert actions[:-1] == [Literal(c) for c in "<wait5 x"]
    assert actions[-1] == KeyPress("enter")
    actions = parse("if a < b then <foo> or <<enter>")
    typed = "".join(a.char for a in actions if isinstance(a, Literal))
    assert typed == "if a < b then <foo> or <"
    assert actions[-1] == KeyPress("enter", TAP)
    assert parse("<") == [Literal("<")]
    assert parse("<wait") == [Literal(c) for c in "<wait"]
    assert parse("<>") == [Literal("<"), Literal(">")]
    assert parse("<f13>") == [Literal(c) for c in "<f13>"]


def test_ends_point_just_past_each_action() -> None:
    actions = parse("<esc>ab<wait>")
    assert [a.end for a in actions] == [5, 6, 7, 13]


def test_exact_event_sequence_for_mixed_case_and_symbols() -> None:
    def tap(keysym: int, qcode: str) -> list[KeyEvent]:
        return [KeyEvent(keysym, True, qcode), KeyEvent(keysym, False, qcode)]

    def shifted(keysym: int, qcode: str) -> list[KeyEvent]:
        return [SHIFT_DOWN, *tap(keysym, qcode), SHIFT_UP]

    events = to_events(parse("aB1!~ Z_<enter>"))
    assert events == [
        *tap(ord("a"), "a"),
        *shifted(ord("B"), "b"),
        *tap(ord("1"), "1"),
        *shifted(ord("!"), "1"),
        *shifted(ord("~"), "grave_accent"),
        *tap(ord(" "), "spc"),
        *shifted(ord("Z"), "z"),
        *shifted(ord("_"), "minus"),
        *tap(0xFF0D, "ret"),
    ]


def test_us_layout_symbols_all_have_keys() -> None:
    for (
        char
    ) in "`1234567890-=qwertyuiop[]\\asdfghjkl;'zxcvbnm,./ ~!@#$%^&*()_+QWERTYUIOP{}|ASDFGHJKL:\"ZXCVBNM<>?":
        events = to_events([Literal(char)])
        assert all(isinstance(e, KeyEvent) and e.qcode for e in events), char
        shift = char.isupper() or char in '~!@#$%^&*()_+{}|:"<>?'
        assert (events[0] == SHIFT_DOWN) == shift, char
        assert len(events) == (4 if shift else 2)


def test_characters_beyond_a_us_keyboard() -> None:
    (down, _up) = to_events(parse("é"))
    assert isinstance(down, KeyEvent) and down.keysym == 0xE9 and down.qcode is None
    (down, _up) = to_events(parse("界"))
    assert isinstance(down, KeyEvent) and down.keysym == 0x01000000 | ord("界")
    # Control characters have no key: they are not typed (use <enter> and <tab>).
    assert to_events(parse("a\nb\t")) == to_events(parse("ab"))


def test_seed_boot_command() -> None:
    actions = parse(SEED)
    assert actions[0] == KeyPress("esc")
    assert actions[1] == Wait(5.0)
    assert actions[-2:] == [Wait(5.0), KeyPress("enter")]
    typed = "".join(
        a.char if isinstance(a, Literal) else " " if isinstance(a, KeyPress) and a.key == "spacebar" else ""
        for a in actions
    )
    assert typed == (
        "expert ipv6.disable=1 net.ifnames=0 auto=true priority=critical url=http://10.0.2.2:8080/virtual-host.cfg"
    )
    groups = strokes(to_events(actions))
    assert groups[1] == Wait(5.0)
    assert all(isinstance(g, Wait) or len(g) in (2, 4) for g in groups)


def test_strokes_keep_held_keys_together() -> None:
    groups = strokes(to_events(parse("<leftCtrlOn>c<leftCtrlOff>x<wait>y")))
    assert [len(g) if isinstance(g, list) else "wait" for g in groups] == [4, 2, "wait", 2]
    # A key held for a long time is sent in bounded groups.
    groups = strokes(to_events(parse("<leftShiftOn>" + "a" * 20)), limit=8)
    assert all(isinstance(g, list) and len(g) <= 8 for g in groups)
    assert sum(len(g) for g in groups if isinstance(g, list)) == 41
