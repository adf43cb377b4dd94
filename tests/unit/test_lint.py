"""Lint is part of the tests: ruff (lint and format) and mypy --strict over the whole package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], cwd=REPO, capture_output=True, text=True, timeout=600,
                          check=False)  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [
        ("ruff", "check", "src"),
        ("ruff", "format", "--check", "src"),
        ("mypy",),  # files and --strict come from pyproject.toml
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_lint(argv: tuple[str, ...]) -> None:
    proc = run(*argv)
    assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}"
