"""The package layout of ../shared/docs/DESIGN.md: dependencies run one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_roots(package: str) -> dict[str, set[str]]:
    """File -> top-level names of every module it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        roots: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = roots
    return found


@pytest.mark.parametrize(
    ("package", "banned"),
    [
        ("models", {"backtrader", "simulator", "strategies"}),
        ("strategies", {"torch", "models", "simulator", "mlflow"}),
    ],
)
def test_dependency_direction(package: str, banned: set[str]) -> None:
    offenders = {f: sorted(r & banned) for f, r in imported_roots(package).items() if r & banned}
    assert offenders == {}
