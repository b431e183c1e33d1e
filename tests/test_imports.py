"""Dependencies point one way: no import cycle between dr_inspect's modules.

Every `import` / `from ... import` in dr_inspect/ counts, at module level and inside functions
alike (a deferred import hides a cycle at run time, not from a reader), except those under
`if TYPE_CHECKING:`. Importing a.b.c runs the packages a.b and a first, so it depends on them too,
except on the packages the importer itself is in (Python has started those before it: a
package's __init__ importing its own modules, which import each other, is no cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "dr_inspect"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The dr_inspect modules `name` depends on (targets and their parent packages)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in modules else base)
    own = {name.rsplit(".", k)[0] for k in range(name.count(".") + 1)}   # name and its packages
    deps = set()
    for target in targets:
        while target:                        # the module and its packages
            if target in modules and target not in own:
                deps.add(target)
            target = target.rpartition(".")[0]
    return deps


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_imports():
    graph = import_graph()
    assert "dr_inspect.correlate.forwards" in graph["dr_inspect.analysis.correlation"]
    assert "dr_inspect.topology" in graph["dr_inspect.correlate.forwards"]  # its package runs first
    assert "dr_inspect.analysis.paths" in graph["dr_inspect"]              # deferred imports count
    assert "dr_inspect.decode" not in graph["dr_inspect.decode.api"]       # its own package


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_in_dr_inspect():
    cycles = _cycles(import_graph())
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


# The analysis core's packages, lowest first: a package imports only those before it (the
# pipeline's order; rules read correlate's column contract, analysis runs the rules, report
# renders the analysis).
LAYERS = ["decode", "columnar", "topology", "correlate", "rules", "analysis", "report"]


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def back_edges(graph: dict[str, set[str]]) -> list[str]:
    """'a.b -> c.d' for each import from a core package to one after it in LAYERS."""
    rank = {p: i for i, p in enumerate(LAYERS)}
    found = []
    for module, deps in sorted(graph.items()):
        for dep in sorted(deps):
            a, b = _package(module), _package(dep)
            if a in rank and b in rank and rank[a] < rank[b]:
                found.append(f"{module} -> {dep}")
    return found


def test_the_layer_check_finds_a_back_edge():
    graph = {"dr_inspect.topology.learn": {"dr_inspect.correlate.columns",
                                           "dr_inspect.columnar.ids"},
             "dr_inspect.correlate.flows": {"dr_inspect.topology.model"}}
    assert back_edges(graph) == ["dr_inspect.topology.learn -> dr_inspect.correlate.columns"]


def test_core_packages_depend_one_way():
    found = back_edges(import_graph())
    assert found == [], "imports against the layers " + " < ".join(LAYERS) + ": " + "; ".join(found)
