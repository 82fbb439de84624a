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


def import_graph() -> dict[str, set[str]]:
    """Module -> the project's modules it imports, imports inside functions included and those
    under ``if TYPE_CHECKING:`` left out (as ../shared/tools/import_cycles.py counts them)."""
    paths = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for package in ("simulator", "strategies", "models")
        for p in (ROOT / package).rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        hidden = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for stmt in node.body
            for inner in ast.walk(stmt)
        }
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in hidden:
                continue
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([base] if base else [])])
                targets.add(base)
                targets.update(f"{base}.{alias.name}" for alias in node.names)
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected sets of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            members = set()
            while True:
                top = stack.pop()
                members.add(top)
                if top == node:
                    break
            if len(members) > 1:
                found.append(frozenset(members))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle() -> None:
    """Regressions: explain imported replay and stress_inputs imported recommend (inside
    functions), closing a loop of five use-case modules through backtest; writing a run
    directory imported the tear sheet, whose sections read run directories."""
    assert cycles(import_graph()) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]


#: The faces: the command line, the web app (and the ``foliosim`` package, outside this
#: graph). They render documents and may import anything below them.
FACES = ("simulator.cli", "simulator.cli_replay", "simulator.clikit", "simulator.web")

#: The entry points: one short function per use over a session (DESIGN.md, "Round 3").
ENTRY_POINTS = frozenset(
    {
        "simulator.backtest",
        "simulator.recommend",
        "simulator.stepping",
        "simulator.account_report",
        "simulator.audit",
        "simulator.lookahead",
        "simulator.sweep",
        "simulator.stress_inputs",
    }
)


def is_face(module: str) -> bool:
    return any(module == f or module.startswith(f"{f}.") for f in FACES)


def layer_breaches(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports against the layers: a face imported by anything but a face; an entry point
    imported by anything but a face (another entry point included)."""
    return sorted(
        (module, target)
        for module, targets in graph.items()
        for target in targets
        if not is_face(module) and (is_face(target) or target in ENTRY_POINTS)
    )


def test_layers_point_one_way() -> None:
    """Faces -> entry points -> session, results and analyses -> data, strategies, models:
    nothing below an entry point imports one, and entry points never import each other
    (function-level imports counted). Regressions: the audit imported the backtest entry
    point for its runs, a paper account's report imported stepping for its pinned models."""
    graph = import_graph()
    assert set(ENTRY_POINTS) <= set(graph)  # a renamed module must be renamed here too
    assert layer_breaches(graph) == []
    made_up = {"simulator.audit": {"simulator.backtest"}, "simulator.results": {"simulator.cli"}}
    assert layer_breaches(made_up) == [
        ("simulator.audit", "simulator.backtest"),
        ("simulator.results", "simulator.cli"),
    ]
