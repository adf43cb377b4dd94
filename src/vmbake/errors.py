"""Errors are values: the library raises, only the CLI turns them into exit codes."""

from __future__ import annotations

from dataclasses import dataclass


class VmbakeError(Exception):
    """A failure a user can act on: what went wrong (message) and what to do (hint)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(VmbakeError):
    """A command line that cannot be run as given: an unknown flag, a missing argument, a bad value."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a template, located as precisely as the format allows."""

    file: str
    key: str
    message: str
    hint: str = ""
    line: int | None = None

    def render(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        key = f" {self.key}:" if self.key else ""
        text = f"{where}:{key} {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class TemplateError(VmbakeError):
    """A template (or its variables) is invalid; carries every problem found at once."""

    def __init__(self, problems: list[Problem]) -> None:
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(
            f"template has {count} {noun}:\n" + "\n".join("  * " + p.render() for p in problems),
            hint="fix the keys named above, then run 'vmbake validate' again",
        )
        self.problems = problems


class StepError(VmbakeError):
    """A build step failed; names the step so the user knows where the build stopped."""

    def __init__(self, step: str, message: str, hint: str | None = None) -> None:
        super().__init__(f"{step}: {message}", hint)
        self.step = step


class BuildCancelled(BaseException):
    """The user interrupted the build (Ctrl-C, SIGTERM, SIGHUP).

    Like KeyboardInterrupt it is no Exception, so no `except VmbakeError` (or `except Exception`) around a
    step's work can mistake a cancel for a failure of that work: it always reaches the runner, which
    cleans up and exits 130."""

    def __init__(self, why: str = "build cancelled by user") -> None:
        super().__init__(why)
        self.message = why
        self.hint: str | None = None

    def __str__(self) -> str:
        return self.message
