"""Dependencies point one way: explorer -> vae_core -> torch (STYLE rule 1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_modules(package: str) -> dict[str, set[str]]:
    """Top-level module names each .py file under `package` imports."""
    found = {}
    for path in sorted((REPO / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(REPO))] = names
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("vae_core", {"streamlit", "explorer", "plotly"}), ("explorer", {"torch", "torchvision"})],
)
def test_package_does_not_import_the_layer_it_must_not_know(package, forbidden):
    offenders = {f: sorted(m & forbidden) for f, m in imported_modules(package).items()}
    assert {f: m for f, m in offenders.items() if m} == {}
