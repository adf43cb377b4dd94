"""The error of HCL2 expression evaluation, shared by the evaluator and the function library."""

from __future__ import annotations


class ExprError(ValueError):
    """An expression that cannot be evaluated; the message says which part."""
