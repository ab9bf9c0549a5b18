"""The shape of the library (docs/architecture.md): layers with one direction, no import
cycle, the ais_bench contract importing nothing above it, no module over 400 lines.
Imports inside functions count too."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

PKG = ROOT / "lib" / "zoorepro"

# lower numbers are lower layers; a module imports only its own layer or lower ones
LAYERS = {
    0: {"errors", "files", "names", "addresses"},
    1: {"config", "data", "references", "host", "provenance", "aisformat", "aiscommands", "atc",
        "shell", "preprocess", "aipp", "weights", "export", "evaluate", "bench", "inputs",
        "backends", "backends.ort", "backends.pytorch", "backends.ascend", "configspec",
        "aisclues", "hostload", "plotstyle"},
    2: {"records", "recordcheck", "recordcsv", "run", "runlock"},
    3: {"stages", "report", "report_core", "report_sections", "kit", "ingest", "compare", "index", "tables",
        "report_bench", "runner", "cluster", "shards", "matrix", "ingestchecks", "lab",
        "ingesthost"},
    4: {"cli", "__main__", ""},
}
LEVEL = {m: lvl for lvl, mods in LAYERS.items() for m in mods}


def modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        name = p.relative_to(PKG).with_suffix("").as_posix().replace("/", ".")
        out[name.removesuffix(".__init__").removesuffix("__init__")] = p
    return out


def imports(name: str, path: Path, known) -> set[str]:
    """zoorepro modules that ``name`` imports, anywhere in the file."""
    pkg_parts = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    if name == "":
        pkg_parts = []
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - node.level + 1]
                base = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("zoorepro"):
                base = node.module[len("zoorepro"):].lstrip(".")
            else:
                continue
            for alias in node.names:
                for cand in (f"{base}.{alias.name}".strip("."), base):
                    if cand in known and cand != name:
                        found.add(cand)
                        break
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("zoorepro."):
                    cand = alias.name[len("zoorepro."):]
                    if cand in known and cand != name:
                        found.add(cand)
    return found


@pytest.fixture(scope="module")
def graph():
    mods = modules()
    return {m: imports(m, p, mods) for m, p in mods.items()}


def test_every_module_has_a_layer(graph):
    assert sorted(set(graph) - set(LEVEL)) == []


def test_no_upward_import(graph):
    bad = [f"{m} (layer {LEVEL[m]}) imports {d} (layer {LEVEL[d]})"
           for m, deps in graph.items() for d in deps if LEVEL[d] > LEVEL[m]]
    assert bad == []


def test_no_import_cycle(graph):
    seen, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(stack[stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for d in sorted(graph[m]):
            visit(d)
        stack.pop()

    for m in sorted(graph):
        visit(m)
    assert cycles == []


def test_the_ais_bench_contract_imports_nothing_above_it(graph):
    assert graph["aisformat"] <= {"errors", "files"}


def test_the_backend_registry_imports_no_backend(graph):
    assert not any(d.startswith("backends.") for d in graph["backends"])


def test_no_library_module_over_400_lines():
    long = {p.relative_to(PKG).as_posix(): n for p in PKG.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_one_error_base_class():
    from zoorepro import errors
    classes = [c for c in vars(errors).values() if isinstance(c, type) and
               issubclass(c, Exception) and c.__module__ == "zoorepro.errors"]
    assert all(issubclass(c, errors.ZooreproError) for c in classes)
    defined_elsewhere = [f"{p.name}: {n.name}" for p in PKG.rglob("*.py") if p.name != "errors.py"
                         for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.ClassDef)
                         and any(getattr(b, "id", "").endswith(("Error", "Exception"))
                                 for b in n.bases)]
    assert defined_elsewhere == []
