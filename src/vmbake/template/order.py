"""Values that refer to each other (HCL2 locals and data sources, JSON user variables), put in an order
where each comes after those it refers to, so that one pass resolves them all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")


def dependencies_first(items: Mapping[str, T], refs: Mapping[str, Sequence[str]]) -> dict[str, T]:
    """`items` reordered so that each follows the items its `refs` name (names not in `items` are
    ignored). Items in a loop keep their relative order: the caller reports the loop. Linear in the
    number of items and references, without recursion, so a chain of thousands of locals is quick."""
    ordered: dict[str, T] = {}
    state: dict[str, int] = {}  # 1: being visited, 2: placed
    for start in items:
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            name, i = stack.pop()
            if i == 0:
                if state.get(name):
                    continue
                state[name] = 1
            deps = [d for d in refs.get(name, ()) if d in items and d != name]
            while i < len(deps) and state.get(deps[i]):
                i += 1
            if i < len(deps):
                stack += [(name, i + 1), (deps[i], 0)]
                continue
            state[name] = 2
            ordered[name] = items[name]
    return ordered
