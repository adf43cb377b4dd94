"""The error of HCL2 expression evaluation, shared by the evaluator and the function library."""

from __future__ import annotations

from typing import Any


class ExprError(ValueError):
    """An expression that cannot be evaluated; the message says which part."""


class UnavailableError(ExprError):
    """A value that vmbake cannot compute (a data source it does not run) was used."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class Unavailable:
    """The value of a data source vmbake does not run: an error only where something uses it."""

    def __init__(
        self, reason: str, hint: str = "remove the reference, or give the value another way (-var)"
    ) -> None:
        self.reason = reason
        self.hint = hint

    def __repr__(self) -> str:
        return f"<unavailable: {self.reason}>"

    def fail(self) -> UnavailableError:
        return UnavailableError(self.reason, self.hint)


def has_unavailable(value: Any) -> bool:
    if isinstance(value, Unavailable):
        return True
    if isinstance(value, list):
        return any(has_unavailable(v) for v in value)
    if isinstance(value, dict):
        return any(has_unavailable(v) for v in value.values())
    return False
