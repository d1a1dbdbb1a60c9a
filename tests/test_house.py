"""House order: the import graph and how library code builds configs (read from the source, so a
change that breaks the order fails here, not in a later refactor)."""
import ast
import re
from collections import defaultdict
from pathlib import Path

from _fixtures import REPO

PKG = REPO / "fape"
# a registry filling itself (models.py imports the model files, which register into it) is allowed
ALLOWED_CYCLES = [{"fape.classifiers.models", "fape.classifiers.lightcnn", "fape.classifiers.baselines",
                   "fape.classifiers.mobilenet", "fape.classifiers.xception"}]


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PKG.rglob("*.py"):
        name = ".".join(p.relative_to(REPO).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    return mods


def import_graph() -> dict[str, set[str]]:
    """Module -> fape modules it imports, at any level (function-level imports count too)."""
    mods = _modules()

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = defaultdict(set)
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                o = owner(t)
                if o and o.startswith("fape") and o != mod:
                    graph[mod].add(o)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_known_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_library_module_imports_the_cli():
    graph = import_graph()
    assert graph, "no modules found"
    offenders = sorted(m for m, deps in graph.items() if "fape.cli" in deps and m != "fape.__main__")
    assert offenders == []


def test_no_import_cycle_but_the_model_registry():
    found = [c for c in cycles(import_graph()) if c not in ALLOWED_CYCLES]
    assert found == [], found


def test_library_code_passes_typed_values_not_override_strings():
    # "--data.mix=..." strings parsed back into floats were how configs were built; library code
    # uses fape.config.override / load_config(values=...) instead (messages may quote a flag)
    pattern = re.compile(r"""f?["']--[a-z_]+\.[a-z_.]+=""")
    bad = [f"{p.relative_to(REPO)}: {ln.strip()}" for p in sorted(PKG.rglob("*.py"))
           for ln in p.read_text().splitlines()
           if pattern.search(ln) and not re.search(r"raise|Error|help=|\"\"\"|>>>", ln)]
    assert pattern.search('cfg = load_config(C, None, [f"--data.mix={mix}"])')  # the pattern sees one
    assert bad == []
