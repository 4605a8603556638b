"""The package's shape: no import cycles, and every import points down the layers of DESIGN.md.

Imports are read from the source (ast), function-level ones included: a lazy
import that points upward is still an upward dependency.
"""

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hfcls"

# Lowest first. A unit is a top-level module or sub-package of hfcls.
LAYERS = [
    {"version", "errors", "extras", "files", "unpickle", "logs", "labels", "recipe"},
    {"modeling", "models", "timm_models", "metrics"},
    {"data"},
    {"predict"},
    {"artifacts"},
    {"engine"},
    {"evaluation", "inference"},
    {"analysis", "bench", "api", "app"},
    {"cli", "train", "__init__"},
]
LAYER = {unit: depth for depth, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def hfcls_imports(path: Path, modules) -> set:
    """The hfcls modules `path` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "hfcls"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hfcls":
            # `from hfcls.x import y` imports module hfcls.x.y when there is one, else names of hfcls.x
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found


@functools.cache  # parsed once, not once per parametrized case
def import_graph() -> dict:
    # The evaluate metric modules (metrics/<name>/<name>.py) are loaded by path, not imported.
    files = [p for p in PACKAGE.rglob("*.py") if not (p.parent.parent.name == "metrics" and p.parent.name != "metrics")]
    modules = {module_name(p): p for p in files}
    graph = {}
    for name, path in modules.items():
        graph[name] = {t for t in hfcls_imports(path, modules) if t in modules and t != name}
    return graph


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def find_cycle(graph: dict) -> list | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_module_imports_itself_in_a_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_packages_form_no_cycle_either():
    units = {}
    for source, targets in import_graph().items():
        units.setdefault(unit(source), set()).update(unit(t) for t in targets if unit(t) != unit(source))
    cycle = find_cycle(units)
    assert cycle is None, " -> ".join(cycle)


def test_every_unit_has_a_layer():
    assert {unit(m) for m in import_graph()} <= set(LAYER)


@pytest.mark.parametrize("source", sorted(import_graph()))
def test_imports_point_down_the_layers(source):
    upward = [t for t in import_graph()[source] if LAYER[unit(t)] > LAYER[unit(source)]]
    assert not upward, f"{source} (layer {LAYER[unit(source)]}) imports {upward} from a layer above"


def test_the_checker_sees_a_cycle_and_an_upward_import():
    # The two rules are not vacuous: a made-up graph with a cycle is caught ...
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    # ... and the real graph has imports in it to check.
    graph = import_graph()
    assert "hfcls.artifacts.weights" in graph["hfcls.inference"]
    assert LAYER[unit("hfcls.engine.loop")] > LAYER[unit("hfcls.data.build")]


def test_only_hfcls_bench_imports_the_benchmark_harnesses():
    graph = import_graph()
    importers = {
        source
        for source, targets in graph.items()
        if unit(source) != "bench" and any(unit(target) == "bench" for target in targets)
    }
    assert importers == {"hfcls.cli.bench"}
