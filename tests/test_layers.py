"""The import graph of aspectrag: no cycles, no import from a higher layer.

Every module's imports are read with ``ast`` (function-level and ``TYPE_CHECKING`` imports
included), so an upward import hidden inside a function is caught too. The layer table is
``aspectrag/layers.py``; the retriever table's builders (imported by name at run time) are
checked against it as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import aspectrag
from aspectrag.layers import LAYERS, layer_of

ROOT = Path(aspectrag.__file__).parent


def _modules() -> dict[str, Path]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = ("aspectrag", *p.relative_to(ROOT).with_suffix("").parts)
        mods[".".join(parts).removesuffix(".__init__")] = p
    return mods


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> dict[str, int]:
    """aspectrag modules imported by ``module`` -> first line number."""
    pkg = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for t in targets:
            r = _resolve(t) if t.split(".")[0] == "aspectrag" else None
            # importing a package's own __init__ from inside it is Python's doing, not an edge
            if r and r != module and not (MODULES[r].name == "__init__.py"
                                          and module.startswith(r + ".")):
                out.setdefault(r, node.lineno)
    return out


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def test_every_module_has_a_layer() -> None:
    for m in MODULES:
        layer_of(m)  # raises KeyError naming the module


def test_no_import_from_a_higher_layer() -> None:
    bad = []
    for m, deps in GRAPH.items():
        for d, line in deps.items():
            if layer_of(d) > layer_of(m):
                bad.append(f"{MODULES[m].relative_to(ROOT)}:{line}: {m} "
                           f"({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})")
    assert not bad, "upward imports:\n" + "\n".join(sorted(bad))


def test_no_import_cycles() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in sorted(GRAPH):
        if m not in index:
            visit(m)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checks_catch_an_upward_import_and_a_cycle() -> None:
    """The walker sees function-level imports: an ingest module importing the multi-head
    package inside a function (as ingest/pipeline.py once did) is reported."""
    src = "def f():\n    from aspectrag.multihead.stats import HeadStatsTracker\n"
    tree_mod = "aspectrag.ingest.pipeline"
    path = ROOT / "ingest" / "_probe_.py"
    try:
        path.write_text(src)
        deps = _imports("aspectrag.ingest._probe_", path)
    finally:
        path.unlink()
    assert deps == {"aspectrag.multihead.stats": 2}
    assert layer_of("aspectrag.multihead.stats") > layer_of(tree_mod)


def test_retriever_table_builders_sit_below_the_factory() -> None:
    from aspectrag.retrieve.factory import RETRIEVERS

    factory = layer_of("aspectrag.retrieve.factory")
    for entry in RETRIEVERS.values():
        module = entry.target.partition(":")[0]
        assert module in MODULES, f"{entry.name}: {module} does not exist"
        assert layer_of(module) < factory, f"{entry.name}: {module} is not below the factory"
