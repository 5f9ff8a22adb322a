"""The architecture as a test: packages import only downward, and nothing imports in a circle.

Layers of ``pipeline/`` (docs/architecture.md), bottom to top; a module may import its own layer
and the layers below it, never a layer above:

    0  pipeline.config, pipeline.cli
    1  pipeline.geometry, pipeline.store
    2  pipeline.data, pipeline.models
    3  pipeline.method
    4  pipeline.evaluation, pipeline.reporting
    5  pipeline.run_setup, pipeline.export
    6  pipeline.trainer

Above ``pipeline/``: ``actors/`` (may import pipeline), then ``jobs/`` and ``bench/`` (entry
points: nothing in pipeline/ or actors/ imports them). ``pipeline/`` never imports Ray. Imports
inside functions count the same as those at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOP_PACKAGES = ("pipeline", "actors", "jobs", "bench")

LAYERS: dict[str, int] = {
    "pipeline.config": 0,
    "pipeline.cli": 0,
    "pipeline.geometry": 1,
    "pipeline.store": 1,
    "pipeline.data": 2,
    "pipeline.models": 2,
    "pipeline.method": 3,
    "pipeline.evaluation": 4,
    "pipeline.reporting": 4,
    "pipeline.run_setup": 5,
    "pipeline.export": 5,
    "pipeline.trainer": 6,
}
# Top-level packages a package must never import.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "pipeline": ("ray", "actors", "jobs", "bench"),
    "actors": ("jobs", "bench"),
    "jobs": ("bench",),
}


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_sources(root: Path = REPO) -> dict[str, str]:
    """Module name -> source of every .py file of the four top-level packages."""
    sources = {}
    for top in TOP_PACKAGES:
        for path in sorted((root / top).rglob("*.py")):
            sources[module_name(path, root)] = path.read_text()
    return sources


def imported_modules(source: str, known: set[str]) -> set[str]:
    """Every module ``source`` imports (at any depth of the file). ``from a.b import c`` counts as
    ``a.b.c`` when that is a known module (a submodule), else as ``a.b``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return found


def layer_of(module: str) -> int | None:
    """The layer of a ``pipeline`` module (by its longest listed prefix); None if unlisted."""
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return LAYERS[prefix]
    return None


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    known = set(sources)
    return {name: imported_modules(src, known) for name, src in sources.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``importer -> imported`` for every pipeline import of a higher layer (or of an unlisted module)."""
    found = []
    for importer, targets in graph.items():
        if not importer.startswith("pipeline.") or importer == "pipeline":
            continue
        own = layer_of(importer)
        if own is None:
            found.append(f"{importer}: not in any layer")
            continue
        for target in sorted(targets):
            if target.startswith("pipeline."):
                theirs = layer_of(target)
                if theirs is None or theirs > own:
                    found.append(f"{importer} (layer {own}) -> {target} (layer {theirs})")
    return found


def forbidden_imports(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for importer, targets in graph.items():
        banned = FORBIDDEN.get(importer.split(".")[0], ())
        found += [f"{importer} -> {t}" for t in sorted(targets) if t.split(".")[0] in banned]
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself)."""
    edges = {m: {t for t in ts if t in graph and t != m} for m, ts in graph.items()}
    # a module's import also runs its parent packages' __init__, but that is not an edge back
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan, recursive: the graph is a few dozen modules
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return cycles


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(read_sources())


def test_every_pipeline_module_is_in_a_layer(graph):
    unlisted = [m for m in graph if m.startswith("pipeline.") and layer_of(m) is None]
    assert not unlisted, f"add these to LAYERS (and to docs/architecture.md): {unlisted}"


def test_pipeline_imports_only_downward(graph):
    found = upward_imports(graph)
    assert not found, "\n".join(found)


def test_no_forbidden_imports(graph):
    found = forbidden_imports(graph)
    assert not found, "\n".join(found)


def test_no_import_cycles(graph):
    cycles = import_cycles(graph)
    assert not cycles, cycles


def test_the_checker_catches_what_it_should():
    """Plant offences in a copy of the real graph: each check must fail on its own offence."""
    sources = read_sources()
    planted = dict(sources)
    planted["pipeline.data.planted"] = "from pipeline.trainer import Trainer\n"  # layer 2 -> 6
    assert upward_imports(import_graph(planted)) == [
        "pipeline.data.planted (layer 2) -> pipeline.trainer (layer 6)"
    ]
    planted = dict(sources)
    planted["pipeline.method.planted"] = "def f():\n    import ray\n    from actors.driver import x\n"
    assert forbidden_imports(import_graph(planted)) == [
        "pipeline.method.planted -> actors.driver",
        "pipeline.method.planted -> ray",
    ]
    planted = dict(sources)
    planted["pipeline.store.planted_a"] = "import pipeline.store.planted_b\n"
    planted["pipeline.store.planted_b"] = "from pipeline.store import planted_a\n"
    assert import_cycles(import_graph(planted)) == [["pipeline.store.planted_a", "pipeline.store.planted_b"]]
    planted = dict(sources)
    planted["pipeline.planted"] = ""
    assert layer_of("pipeline.planted") is None
    assert "pipeline.planted: not in any layer" in upward_imports(import_graph(planted))
