"""The house's floors, read with `ast` over src/: only the builders (and build.py, cli, commands) import
steps, and no step imports another step. Helper modules of steps/ (a leading underscore) are not steps."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
# Modules above the steps: they put the steps together or run them.
MAY_IMPORT_STEPS = ("vmbake.build", "vmbake.builders", "vmbake.cli", "vmbake.commands")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    base = SRC.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imported(path: Path) -> set[str]:
    """Every vmbake module the file imports, at its top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from vmbake.steps import run_qemu` imports a module; `from vmbake.steps import Step` does not.
            names.update(
                f"{node.module}.{a.name}" for a in node.names if is_module(f"{node.module}.{a.name}")
            )
    return {name for name in names if name.startswith("vmbake")}


def is_step_module(name: str) -> bool:
    """vmbake.steps.<module>: a step's own module (not the package, not an _helper)."""
    parts = name.split(".")
    return len(parts) == 3 and parts[:2] == ["vmbake", "steps"] and not parts[2].startswith("_")


def modules() -> dict[str, set[str]]:
    return {module_name(path): imported(path) for path in sorted(SRC.rglob("*.py"))}


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_only_the_builders_and_above_import_steps() -> None:
    wrong = {
        name: sorted(i for i in imports if within(i, "vmbake.steps"))
        for name, imports in modules().items()
        if not within(name, "vmbake.steps") and not any(within(name, top) for top in MAY_IMPORT_STEPS)
    }
    wrong = {name: found for name, found in wrong.items() if found}
    assert not wrong, f"modules below steps/ import from it: {wrong}"


def test_no_step_imports_another_step() -> None:
    wrong = {
        name: sorted(i for i in imports if is_step_module(i) and i != name)
        for name, imports in modules().items()
        if is_step_module(name)
    }
    wrong = {name: found for name, found in wrong.items() if found}
    assert not wrong, f"steps that import other steps: {wrong}"


def test_the_checks_see_imports() -> None:
    """The checks can fail: the builders are seen importing steps, and a step module is seen as one."""
    found = modules()
    assert "vmbake.steps.run_qemu" in found["vmbake.builders.qemu"]
    assert is_step_module("vmbake.steps.run_qemu") and not is_step_module("vmbake.steps._qemu")
    assert "vmbake.vm" in found["vmbake.steps.run_qemu"]


def test_nothing_loads_a_module_by_name() -> None:
    """A renamed class must fail at import and in mypy, not drop a step quietly."""
    users = sorted(name for name, imports in modules().items() if "importlib" in str(imports))
    text_users = sorted(module_name(path) for path in SRC.rglob("*.py") if "importlib" in path.read_text())
    assert users == [] and text_users == [], text_users
