"""A small QMP client: QEMU's JSON control protocol over the unix socket vmbake always opens.

`Qmp.connect()` polls the socket until QEMU answers or the deadline passes (QEMU creates the socket a
moment after it starts), then negotiates capabilities. `execute()` sends one command and returns its
result; asynchronous events that arrive meanwhile are kept and can be read with `events()`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmbake.errors import VmbakeError

JsonObject = dict[str, Any]


class QmpError(VmbakeError):
    """QEMU answered a command with an error, or the connection failed."""


class Qmp:
    """One QMP connection. Thread-safe: one command at a time."""

    def __init__(self, sock: socket.socket, path: Path) -> None:
        self._sock = sock
        self._path = path
        self._buffer = b""
        self._lock = threading.Lock()
        self._events: list[JsonObject] = []
        self.greeting: JsonObject = {}

    # -- connecting ----------------------------------------------------------------
    @classmethod
    def connect(
        cls,
        path: Path,
        *,
        timeout: float = 30.0,
        alive: Callable[[], bool] = lambda: True,
        per_try: float = 2.0,
    ) -> Qmp:
        """Connect to `path`, polling until QEMU listens; stop early when `alive()` turns False."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            if not alive():
                raise QmpError("QEMU exited before its QMP socket answered")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(per_try)
            try:
                sock.connect(str(path))
                qmp = cls(sock, path)
                qmp._handshake()
                return qmp
            except (OSError, QmpError) as exc:
                sock.close()
                last = exc
            if time.monotonic() >= deadline:
                raise QmpError(
                    f"QEMU's QMP socket {path} did not answer within {timeout:.0f}s: {last}",
                    hint="run with -debug to see QEMU's command line and output",
                )
            time.sleep(0.05)

    def _handshake(self) -> None:
        greeting = self._read_message()
        if "QMP" not in greeting:
            raise QmpError(f"unexpected QMP greeting: {greeting!r}")
        self.greeting = greeting
        self.execute("qmp_capabilities")

    # -- wire ------------------------------------------------------------------------
    def _read_message(self, timeout: float | None = None) -> JsonObject:
        if timeout is not None:
            self._sock.settimeout(timeout)
        while b"\n" not in self._buffer:
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError as exc:
                raise QmpError("QEMU did not answer on QMP in time") from exc
            except OSError as exc:
                raise QmpError(f"QMP connection failed: {exc}") from exc
            if not chunk:
                raise QmpError("QEMU closed the QMP connection")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message = json.loads(line)
        if not isinstance(message, dict):
            raise QmpError(f"unexpected QMP message: {message!r}")
        return message

    def execute(self, command: str, arguments: JsonObject | None = None, *, timeout: float = 10.0) -> Any:
        """Run one QMP command and return its "return" value; a QMP error raises QmpError."""
        request: JsonObject = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        with self._lock:
            try:
                self._sock.sendall(json.dumps(request).encode() + b"\n")
            except OSError as exc:
                raise QmpError(f"QMP connection failed: {exc}") from exc
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise QmpError(f"QEMU did not answer the QMP command {command!r} within {timeout:.0f}s")
                message = self._read_message(remaining)
                if "event" in message:
                    self._events.append(message)
                    continue
                if "error" in message:
                    error = message["error"]
                    raise QmpError(f"QMP command {command!r} failed: {error.get('desc', error)}")
                if "return" in message:
                    return message["return"]

    def events(self, name: str | None = None) -> list[JsonObject]:
        """Events received so far (and forgotten once returned), optionally only those named `name`."""
        with self._lock:
            kept = [e for e in self._events if name is not None and e.get("event") != name]
            taken = [e for e in self._events if name is None or e.get("event") == name]
            self._events = kept
        return taken

    def wait_event(self, name: str, timeout: float) -> JsonObject | None:
        """Wait for the event `name`; None after `timeout` seconds or when QEMU closes the socket."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.events(name)
            if found:
                return found[0]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            with self._lock:
                try:
                    message = self._read_message(min(remaining, 1.0))
                except QmpError as exc:
                    if "in time" in str(exc):
                        continue
                    return None
                self._events.append(message)

    # -- commands vmbake uses ----------------------------------------------------------
    def query_status(self) -> str:
        """The VM's run state: 'running', 'paused', 'shutdown', ..."""
        result = self.execute("query-status")
        return str(result.get("status", "")) if isinstance(result, dict) else ""

    def system_powerdown(self) -> None:
        """Press the ACPI power button (the guest decides to shut down)."""
        self.execute("system_powerdown")

    def quit(self) -> None:
        """Ask QEMU to exit at once; the connection may drop before the answer arrives."""
        with contextlib.suppress(QmpError):
            self.execute("quit", timeout=5.0)

    def change_vnc_password(self, password: str) -> None:
        self.execute("change-vnc-password", {"password": password})

    def send_keys(self, events: list[JsonObject]) -> None:
        """input-send-event with a list of InputEvent objects (see make_key_event)."""
        self.execute("input-send-event", {"events": events})

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> Qmp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_key_event(qcode: str, down: bool) -> JsonObject:
    """One InputEvent for input-send-event: a key (QEMU qcode name, e.g. 'ret', 'a', 'esc') down or up."""
    return {"type": "key", "data": {"down": down, "key": {"type": "qcode", "data": qcode}}}
