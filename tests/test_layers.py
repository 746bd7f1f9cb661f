"""The import structure of trainer/ and explorer/ stays as designed: no import cycle (imports
inside functions count: they are the same dependency, met later), and no import that runs up
the layers, lowest first:

    config, paths, files, text -> models, losses -> data -> evaluate, latent, posterior -> loop
    -> checkpoint -> export, film, runs -> examples -> figures -> cli, __main__ -> explorer

A package whose ``__init__`` re-exports its modules' names on first use (a module
``__getattr__``) counts as importing each of its modules. Read from the source with
:mod:`ast`: nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("trainer", "explorer")

# the layers, lowest first: a module is in the first layer one of whose prefixes it has
LAYERS = (
    ("trainer.config", "trainer.paths", "trainer.files", "trainer.text", "trainer.lazy"),
    ("trainer.models", "trainer.losses", "trainer.foreign"),
    ("trainer.data",),
    (
        "trainer.evaluate",
        "trainer.latent",
        "trainer.posterior",
        "trainer.maps",
        "trainer.neighbours",
        "trainer.directions",
    ),
    ("trainer.loop",),
    ("trainer.checkpoint",),
    (
        "trainer.export",
        "trainer.film",
        "trainer.film_file",
        "trainer.runs",
        "trainer.onnx_pair",
        "trainer.user_code",
        "trainer.codes",
    ),
    ("trainer.examples",),
    # the paper's figures are drawn from the example models (and rebuild a missing one)
    ("trainer.figures",),
    ("trainer.cli", "trainer.__main__"),
    ("explorer",),
)

# Known imports that break the rules, each with its reason. Keep it short: a new entry needs
# a reason a reviewer accepts.
ALLOWED: set[tuple[str, str]] = set()


def modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = f
    return found


def imports(mods: dict[str, Path]) -> dict[str, dict[str, int]]:
    """module -> {imported module: the line of its first import there}."""

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {m: {} for m in mods}
    for m, f in mods.items():
        is_pkg = f.name == "__init__.py"
        tree = ast.parse(f.read_text(encoding="utf-8"), str(f))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    here = m.split(".") if is_pkg else m.split(".")[:-1]
                    here = here[: len(here) - (node.level - 1)]
                    base = ".".join(here + ([node.module] if node.module else []))
                # ``from pkg import mod`` imports the module; ``from mod import name``, mod
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    targets.append(sub if sub in mods else base)
            for t in targets:
                if t.split(".")[0] not in PACKAGES:
                    continue
                r = resolve(t)
                if r is not None and r != m:
                    graph[m].setdefault(r, node.lineno)
        lazy = any(  # a module ``__getattr__``, defined or assigned (trainer.lazy.lazy_names)
            (isinstance(n, ast.FunctionDef) and n.name == "__getattr__")
            or (isinstance(n, ast.Assign) and "__getattr__" in ast.dump(n.targets[0]))
            for n in tree.body
        )
        if is_pkg and lazy:  # a package that re-exports its modules' names, on first use
            for sub in mods:
                if sub.rpartition(".")[0] == m:
                    graph[m].setdefault(sub, 0)
    return graph


def layer(module: str) -> int:
    for i, names in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Each strongly connected component of more than one module, as a cycle through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
                found.append(_cycle_in(graph, set(comp)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _cycle_in(graph: dict[str, dict[str, int]], comp: set[str]) -> list[str]:
    """A cycle through the component ``comp``: the shortest back to its first module."""
    start = min(comp)
    paths = {start: [start]}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph[v]):
            if w == start:
                return paths[v] + [start]
            if w in comp and w not in paths:
                paths[w] = paths[v] + [w]
                todo.append(w)
    raise AssertionError(comp)


def _graph() -> tuple[dict[str, Path], dict[str, dict[str, int]]]:
    mods = modules()
    graph = imports(mods)
    for a, b in ALLOWED:
        graph.get(a, {}).pop(b, None)
    return mods, graph


def _where(mods: dict[str, Path], a: str, b: str, line: int) -> str:
    at = f"{mods[a].relative_to(ROOT)}:{line}" if line else f"{mods[a].relative_to(ROOT)}"
    how = "imports" if line else "re-exports"
    return f"{at}: {a} {how} {b}"


def test_no_import_cycle_counting_imports_inside_functions():
    mods, graph = _graph()
    found = cycles(graph)
    lines = []
    for c in found:
        lines.append("an import cycle of " + " -> ".join(c) + ":")
        lines += [f"    {_where(mods, a, b, graph[a][b])}" for a, b in zip(c, c[1:])]
    assert not found, "\n".join(lines)


def test_no_import_runs_up_the_layers():
    mods, graph = _graph()
    order = " -> ".join(", ".join(n.rpartition(".")[2] for n in names) for names in LAYERS)
    bad = [
        f"{_where(mods, a, b, line)}: a lower layer may not import a higher one"
        for a, targets in sorted(graph.items())
        for b, line in sorted(targets.items())
        if layer(b) > layer(a)
    ]
    assert not bad, "\n".join(bad) + f"\n(layers, lowest first: {order})"


def test_the_allowed_exceptions_still_exist():
    """An exception whose import is gone is taken off ALLOWED (it would let one back in)."""
    graph = imports(modules())
    gone = [(a, b) for a, b in sorted(ALLOWED) if b not in graph.get(a, {})]
    assert not gone, f"no longer imported, remove from ALLOWED: {gone}"


def test_the_checks_see_a_cycle_inside_a_function_and_an_import_up_the_layers(tmp_path):
    """The checks themselves: a lazy import that closes a cycle, and one going up, are found."""
    graph = {
        "trainer.data.spec": {"trainer.loop.fit": 7},  # up: data below loop
        "trainer.loop.fit": {"trainer.data.spec": 3},
    }
    assert cycles(graph) == [["trainer.data.spec", "trainer.loop.fit", "trainer.data.spec"]]
    assert layer("trainer.data.spec") < layer("trainer.loop.fit")
    src = tmp_path / "trainer" / "m.py"
    src.parent.mkdir()
    src.write_text("def f():\n    from . import n\n")
    (tmp_path / "trainer" / "n.py").write_text("import trainer.m\n")
    (tmp_path / "trainer" / "__init__.py").write_text("")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        g = imports(modules())
    finally:
        ROOT = saved
    assert g["trainer.m"] == {"trainer.n": 2} and g["trainer.n"] == {"trainer.m": 1}
