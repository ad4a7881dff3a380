#!/usr/bin/env python3
"""Check that the bench's modules import each other without a circle (`make lint`).

Reads every `bench/*.py` with `ast` (nothing is imported or run) and collects the imports
of other bench modules, at the top of a file or inside a function alike: `import wan`,
`import bench as b`, `from fanout import Moto`. Those edges must form a DAG: `bench.py` the
entry point on top, the scenario modules (`wan.py`, `fanout.py`, `scale.py`,
`coldstart.py`) below it, and the shared helpers (`harness.py`, `report.py`,
`services.py`, `datasets.py`, `runs.py`, `registries.py`) at the bottom. A module
importing itself counts as a circle too.

Prints the graph, one module a line with what it imports; exits 1 and names the circle
if there is one. `--quiet`: print only a circle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def bench_imports(path: Path, modules: set[str]) -> set[str]:
    """The bench modules that `path` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(n.split(".")[0] for n in names if n.split(".")[0] in modules)
    return found


def graph(directory: Path = HERE) -> dict[str, set[str]]:
    files = {p.stem: p for p in sorted(directory.glob("*.py"))}
    return {name: bench_imports(path, set(files)) for name, path in files.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A circle as a path `[a, b, ..., a]`, or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # absent: not seen; 1: on the current path; 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def main(argv: list[str]) -> int:
    edges = graph()
    if "--quiet" not in argv:
        for name in sorted(edges):
            print(f"{name}: {', '.join(sorted(edges[name])) or '-'}")
    cycle = find_cycle(edges)
    if cycle:
        print(f"check_imports: bench modules import each other in a circle: {' -> '.join(cycle)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
