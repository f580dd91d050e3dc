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


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_exists(name: str) -> bool:
    base = REPO.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def project_imports(package: str) -> dict[str, set[str]]:
    """Project modules each module under `package` imports, at any depth (lazy imports in
    functions count: they tie the modules together all the same)."""
    graph = {}
    for path in sorted((REPO / package).rglob("*.py")):
        name = _module_name(path)
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if _module_exists(a.name)}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    if _module_exists(sub):
                        targets.add(sub)
                    elif _module_exists(node.module):
                        targets.add(node.module)
        graph[name] = targets - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _package_init_edges_removed(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's __init__ re-exporting its own submodules is not a cycle to report."""
    return {
        module: {t for t in targets if not (module.startswith(t + ".") and t in graph)}
        for module, targets in graph.items()
    }


# None: build_model lives above the models and the wrapper of your own VAE (vae_core.build),
# and making a run of it (vae_core.import_run) sits above both.
KNOWN_CYCLES: dict[str, list] = {"explorer": [], "vae_core": []}


@pytest.mark.parametrize("package", ["explorer", "vae_core"])
def test_no_import_cycle(package):
    graph = _package_init_edges_removed(project_imports(package))
    assert _cycles(graph) == KNOWN_CYCLES[package]


def test_a_view_never_imports_another_view():
    """Views share code through explorer/panels and the helpers, never through each other."""
    graph = project_imports("explorer")
    offenders = {
        module: sorted(t for t in targets if t.startswith("explorer.views."))
        for module, targets in graph.items()
        if module.startswith(("explorer.views.", "explorer.panels"))
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
