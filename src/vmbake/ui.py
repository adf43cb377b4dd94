"""Build output in Packer's shapes: "==> NAME: say", "    NAME: message", machine-readable lines.

One `Ui` serves the whole run; each build gets a `BuildUi` that prefixes its name. Everything printed
passes through `mask()`, so sensitive values never reach the terminal, logs or machine-readable output.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

SENSITIVE = "<sensitive>"


_log_secrets: set[str] = set()  # every secret of this process, for MaskingFilter
_log_secrets_lock = threading.Lock()


# The password of a URL's user:password@ part, wherever a URL is printed.
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@")


def secret_forms(value: str) -> set[str]:
    """`value` and the encodings it travels in: percent-encoded (as in a URL's path or query, or a form)
    and base64 (as in an Authorization header or a cloud-init payload)."""
    raw = value.encode()
    forms = {
        value,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote(value),
        urllib.parse.quote_plus(value),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
    }
    forms |= {f.rstrip("=") for f in forms}
    return {f for f in forms if len(f) >= 3}


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by <sensitive>, longest first. A line that hides a secret in a
    percent-encoding of its own (each byte escaped, say) is shown decoded, so the secret can be masked."""
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + SENSITIVE + "@", text)
    ordered = sorted(secrets, key=len, reverse=True)
    for secret in ordered:
        if secret in text:
            text = text.replace(secret, SENSITIVE)
    if "%" in text or "+" in text:
        decoded = urllib.parse.unquote_plus(text)
        if decoded != text and any(secret in decoded for secret in ordered):
            return mask_secrets(decoded, ordered)
    return text


def register_secret(value: object) -> None:
    """Never print `value` (and each string in it, for a list or map), from now on, in any output of this
    process: every Ui and the debug log mask it. The template loaders call this as soon as a sensitive
    value, or one built from it, is known, so that even an error about the template masks it."""
    if isinstance(value, dict):
        for item in value.values():
            register_secret(item)
    elif isinstance(value, list | tuple):
        for item in value:
            register_secret(item)
    elif isinstance(value, str | int | float) and not isinstance(value, bool) and len(str(value)) >= 3:
        forms = secret_forms(str(value))
        with _log_secrets_lock:
            _log_secrets.update(forms)


def forget_secrets() -> None:
    """Start a new command with no secrets registered (the tests run many commands in one process)."""
    with _log_secrets_lock:
        _log_secrets.clear()


def mask_logged_secrets(text: str) -> str:
    """`text` masked with every secret registered in this process (for output that has no Ui)."""
    with _log_secrets_lock:
        secrets = set(_log_secrets)
    return mask_secrets(text, secrets)


class MaskingFilter(logging.Filter):
    """A logging filter that replaces every registered secret by <sensitive> (PACKER_LOG output),
    in the message and in any traceback attached to the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        with _log_secrets_lock:
            secrets = set(_log_secrets)
        if secrets:
            record.msg, record.args = mask_secrets(record.getMessage(), secrets), None
            if record.exc_info:
                text = "".join(traceback.format_exception(*record.exc_info))
                record.exc_info, record.exc_text = None, None
                record.msg += "\n" + mask_secrets(text.rstrip("\n"), secrets)
            elif record.exc_text:
                record.exc_text = mask_secrets(record.exc_text, secrets)
        return True


class ProgressHandle(Protocol):
    def advance(self, amount: float) -> None: ...

    def update(self, completed: float, total: float | None = None) -> None: ...

    def describe(self, description: str) -> None: ...


class _NullProgress:
    def advance(self, amount: float) -> None:
        pass

    def update(self, completed: float, total: float | None = None) -> None:
        pass

    def describe(self, description: str) -> None:
        pass


class _RichProgress:
    def __init__(self, progress: Progress, task: TaskID, prefix: str) -> None:
        self._progress = progress
        self._task = task
        self._prefix = prefix

    def advance(self, amount: float) -> None:
        self._progress.advance(self._task, amount)

    def update(self, completed: float, total: float | None = None) -> None:
        self._progress.update(self._task, completed=completed, total=total)

    def describe(self, description: str) -> None:
        """Change the text before the bar (a status line, such as the installer's current step)."""
        self._progress.update(self._task, description=self._prefix + description)


class _TransferColumn(ProgressColumn):
    """Size and speed, for the tasks that are transfers (one Progress holds every build's bars)."""

    def __init__(self) -> None:
        super().__init__()
        self._size = DownloadColumn(binary_units=True)
        self._speed = TransferSpeedColumn()

    def render(self, task: Task) -> Text:
        if not task.fields.get("transfer"):
            return Text("")
        return Text.assemble(self._size.render(task), " ", self._speed.render(task))


class Ui:
    """Thread-safe output for a whole vmbake run."""

    def __init__(
        self,
        *,
        out: IO[str] | None = None,
        err: IO[str] | None = None,
        inp: IO[str] | None = None,
        machine_readable: bool = False,
        timestamps: bool = False,
        color: bool | None = None,
        debug: bool = False,
    ) -> None:
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.inp = inp if inp is not None else sys.stdin
        self.machine_readable = machine_readable
        self.timestamps = timestamps
        self.debug = debug
        if color is None:
            color = self.out.isatty()
        self.color = color and not machine_readable
        self._console = Console(file=self.out, highlight=False, markup=False, no_color=not self.color)
        self._lock = threading.RLock()
        self._secrets: set[str] = set()
        # One live progress display for the whole run (rich allows only one at a time): the bars of
        # builds running in parallel are tasks of it, and leave when their transfer ends.
        self._progress: Progress | None = None
        self._progress_users = 0

    # -- secrets ---------------------------------------------------------------
    def add_secret(self, value: str | None) -> None:
        """Never print `value`: it is replaced by <sensitive> wherever it appears (debug logs included)."""
        if value and len(value) >= 3:
            forms = secret_forms(value)
            with self._lock:
                self._secrets |= forms
            with _log_secrets_lock:
                _log_secrets.update(forms)

    def mask(self, text: str) -> str:
        with self._lock:
            secrets = set(self._secrets)
        with _log_secrets_lock:
            secrets |= _log_secrets
        return mask_secrets(text, secrets)

    # -- lines -----------------------------------------------------------------
    def _emit(
        self, target: str, kind: str, text: str, style: str | None, stream: IO[str] | None = None
    ) -> None:
        text = self.mask(text)
        with self._lock:
            if self.machine_readable:
                self._write_machine(target, "ui", kind, text)
                return
            if self.timestamps:
                text = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + ": " + text
            if stream is not None and stream is not self.out:
                stream.write(text + "\n")
                stream.flush()
            elif (self.color and style) or self._progress is not None:
                # rich prints the line above a live progress display; a raw write would tear it
                self._console.print(text, style=style if self.color else None, soft_wrap=True)
            else:
                self.out.write(text + "\n")
                self.out.flush()

    def _write_machine(self, target: str, kind: str, *data: str) -> None:
        fields = [str(int(time.time())), target, kind]
        fields += [d.replace(",", "%!(PACKER_COMMA)").replace("\n", "\\n").replace("\r", "\\r") for d in data]
        self.out.write(",".join(fields) + "\n")
        self.out.flush()

    def machine(self, target: str, kind: str, *data: str) -> None:
        """A machine-readable record (only printed with -machine-readable)."""
        if self.machine_readable:
            with self._lock:
                self._write_machine(target, kind, *(self.mask(d) for d in data))

    def say(self, text: str, target: str = "") -> None:
        self._emit(target, "say", text, "bold")

    def message(self, text: str, target: str = "") -> None:
        self._emit(target, "message", text, None)

    def error(self, text: str, target: str = "") -> None:
        self._emit(target, "error", text, "bold red", stream=self.err if not self.machine_readable else None)

    def warn(self, text: str, target: str = "") -> None:
        self._emit(target, "say", text, "yellow")

    # -- questions -------------------------------------------------------------
    def interactive(self) -> bool:
        """True when someone can answer ask(): input is a terminal and output is not machine-readable."""
        isatty = getattr(self.inp, "isatty", None)
        return not self.machine_readable and callable(isatty) and bool(isatty())

    def ask(self, prompt: str) -> str:
        """Print `prompt` and read one line; an empty string when input is closed."""
        with self._lock:  # held until the answer: builds running in parallel ask one at a time
            self.out.write(self.mask(prompt) + " ")
            self.out.flush()
            line = self.inp.readline()
        return line.strip()

    # -- progress --------------------------------------------------------------
    @contextlib.contextmanager
    def progress(
        self, description: str, total: float | None, *, transfer: bool = True, prefix: str = ""
    ) -> Iterator[ProgressHandle]:
        """A progress bar (only on a terminal, never in machine-readable mode). `prefix` starts every
        description the handle is given later."""
        if self.machine_readable or not self.out.isatty():
            yield _NullProgress()
            return
        with self._lock:
            if self._progress is None:
                self._progress = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    TaskProgressColumn(),
                    _TransferColumn(),
                    TimeRemainingColumn(),
                    console=self._console,
                    transient=False,
                )
                self._progress.start()
            progress = self._progress
            self._progress_users += 1
            task = progress.add_task(prefix + description, total=total, transfer=transfer)
        try:
            yield _RichProgress(progress, task, prefix)
        finally:
            with self._lock:  # a finished bar stays on screen until the last running one ends
                progress.refresh()
                self._progress_users -= 1
                if self._progress_users == 0:
                    progress.stop()
                    self._progress = None


class BuildUi:
    """The Ui seen by one build: every line carries the build's name, as Packer prints it."""

    def __init__(self, ui: Ui, name: str) -> None:
        self.ui = ui
        self.name = name

    def _prefixed(self, lead: str, text: str) -> str:
        """Every line of `text` with the build's prefix, as Packer does: the lines of builds running
        at the same time interleave, and each must still say whose it is."""
        return "\n".join(f"{lead} {self.name}: {line}" for line in text.split("\n"))

    def say(self, text: str) -> None:
        self.ui.say(self._prefixed("==>", text), self.name)

    def message(self, text: str) -> None:
        self.ui.message(self._prefixed("   ", text), self.name)

    def error(self, text: str) -> None:
        self.ui.error(self._prefixed("==>", text), self.name)

    def warn(self, text: str) -> None:
        self.ui.warn(self._prefixed("==>", f"Warning: {text}"), self.name)

    def debug(self, text: str) -> None:
        if self.ui.debug:
            self.ui.message(self._prefixed("   ", f"[debug] {text}"), self.name)

    def interactive(self) -> bool:
        return self.ui.interactive()

    def ask(self, prompt: str) -> str:
        return self.ui.ask(f"==> {self.name}: {prompt}")

    def progress(
        self, description: str, total: float | None, *, transfer: bool = True
    ) -> contextlib.AbstractContextManager[ProgressHandle]:
        return self.ui.progress(description, total, transfer=transfer, prefix=f"{self.name}: ")

    def add_secret(self, value: str | None) -> None:
        self.ui.add_secret(value)
