"""SIGTERM, SIGHUP and SIGINT turned into a cancellation, for the whole command and for each build."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from vmbake.errors import BuildCancelled


@contextlib.contextmanager
def cancel_on_signals(on_signal: Callable[[str], None]) -> Iterator[None]:
    """Turn SIGTERM, SIGHUP and SIGINT into a cancellation (main thread only; elsewhere a no-op).

    Each also sets the build's cancel event, which every waiting step polls, so a signal that lands
    where Python cannot raise (a fork hook, a finaliser) still stops the build."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    fired: list[str] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        on_signal(name)  # set first: Python drops an exception raised inside an at-fork hook or __del__
        if not fired:  # only the first signal interrupts; later ones must not break the cleanups
            fired.append(name)
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise BuildCancelled(f"build cancelled by {name}")

    for sig in (int(signal.SIGTERM), int(signal.SIGHUP), int(signal.SIGINT)):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
