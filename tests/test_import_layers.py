"""The packages import one way, as docs/DESIGN.md draws them, and no module imports itself back.

Read from the source with ``ast``, as a linter would: every ``import`` statement counts, also the
lazy ones inside functions (they run too, only later); imports under ``if TYPE_CHECKING:`` do not.

    hbnn                    the application (CLI); nothing imports it
    converters              training and export; may import edge to write and check .hbn files
    edge                    the on-board runtime
    cy_kernels, firmware_bridge   the bottom: kernels and the autopilot link, independent of each other

``benchmarks/`` sits beside the packages: it may import any of them, and none imports it.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set

ROOT = Path(__file__).resolve().parents[1]
LAYER = {"cy_kernels": 0, "firmware_bridge": 0, "edge": 1, "converters": 2, "hbnn": 3, "benchmarks": 4}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> Dict[str, Path]:
    """Python modules and Cython extensions (a .pyx is a module too; its own imports are C-level)."""
    return {module_name(p): p for package in LAYER for pattern in ("*.py", "*.pyx")
            for p in sorted((ROOT / package).rglob(pattern))}


def _under_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> Iterator[ast.stmt]:
    stack: List[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _under_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, path: Path, modules: Dict[str, Path]) -> Set[str]:
    """The project modules ``name`` imports (the deepest existing module each import names)."""
    if path.suffix != ".py":
        return set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import sub` imports the submodule pkg.sub when there is one
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> Dict[str, Set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_the_walk_sees_every_package_and_lazy_imports():
    graph = import_graph()
    assert {name.split(".")[0] for name in graph} == set(LAYER)
    assert "edge.interpreter" in graph["hbnn.run_commands"]  # imported inside a handler
    assert "cy_kernels.reference" in graph["edge.format_graph"]


def test_no_package_imports_one_above_it_or_beside_it():
    wrong = []
    for name, targets in import_graph().items():
        here = name.split(".")[0]
        for target in targets:
            there = target.split(".")[0]
            if there != here and LAYER[there] >= LAYER[here]:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "Expected imports to point down the layers only, got:\n" + "\n".join(sorted(wrong))


def strongly_connected(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Tarjan's algorithm, iterative; components of more than one module are import cycles."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[List[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_import_cycles():
    cycles = strongly_connected(import_graph())
    assert not cycles, f"Expected no import cycles, got {cycles}"


def test_the_cycle_finder_finds_one():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
