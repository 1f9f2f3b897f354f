"""The library's shape: lines of code, the module import graph and its cycles, and layer violations.

Every ``import`` counts, those inside functions included (an import deferred into a function to
dodge a cycle is still a cycle), except under ``if __name__ == "__main__":`` (there the module runs
as ``__main__``, a module of its own: ``python -m il_toolkit.train.il.dagger`` hands over to the CLI). Modules are the installed names (``il_toolkit.envs`` is
``envs/``, ``il_toolkit.experts`` is ``experts/``). A layer violation is a lower layer importing
a higher one: features, model and policies must not import trainers (``il_toolkit.train``),
experts, datasets or the benchmark harness.

    .venv/bin/python benchmarks/code_stats.py

Writes ``benchmarks/results/code_stats.json``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"il_toolkit": ROOT / "il_toolkit", "il_toolkit.envs": ROOT / "envs", "il_toolkit.experts": ROOT / "experts"}
LOWER = ("il_toolkit.features", "il_toolkit.model", "il_toolkit.policies")
HIGHER = ("il_toolkit.train", "il_toolkit.experts", "il_toolkit.bench")


def modules() -> dict[str, Path]:
    found = {}
    for package, directory in PACKAGES.items():
        for path in sorted(directory.rglob("*.py")):
            parts = list(path.relative_to(directory).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Toolkit modules ``name`` imports anywhere in its source (resolved to the longest known module)."""
    tree = ast.parse(path.read_text())
    targets = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _walk_outside_main(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    resolved = set()
    for target in targets:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.add(target)
    return resolved


def _is_main_guard(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__" and any(isinstance(c, ast.Constant) and c.value == "__main__"
                                                   for c in test.comparators))


def _walk_outside_main(tree: ast.AST):
    """``ast.walk`` without the bodies of ``if __name__ == "__main__":`` blocks."""
    pending = [tree]
    while pending:
        node = pending.pop()
        yield node
        pending.extend(child for child in ast.iter_child_nodes(node) if not _is_main_guard(child))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def import_graph(found: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the toolkit modules it imports. A package's ``__init__`` re-exporting its own
    submodules is not an edge (that is not a cycle between them)."""
    known = set(found)
    graph = {name: imports_of(name, path, known) for name, path in found.items()}
    return {name: {t for t in targets if not (t.startswith(name + ".") and found[name].name == "__init__.py")}
            for name, targets in graph.items()}


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if a.startswith(LOWER) and b.startswith(HIGHER))


def main() -> None:
    found = modules()
    graph = import_graph(found)
    loops = cycles(graph)
    violations = layer_violations(graph)
    lines = sum(len(path.read_text().splitlines()) for path in found.values())
    print(f"{len(found)} modules, {lines} lines")
    print(f"{len(loops)} import cycles:")
    for loop in loops:
        print("  " + ", ".join(loop))
    print(f"{len(violations)} layer violations:")
    for violation in violations:
        print("  " + violation)
    write_results("code_stats", {"modules": len(found), "lines": lines, "import_cycles": loops,
                                 "layer_violations": violations})


if __name__ == "__main__":
    main()
