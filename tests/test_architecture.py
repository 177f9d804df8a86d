"""The package's shape, read from its imports (grimp parses every import statement, including the
lazy ones inside functions): production code never reaches the demo, the rooms of costwarden.agent
import each other without cycles, and nothing below the agent imports it."""

from __future__ import annotations

import pytest

grimp = pytest.importorskip("grimp", reason="grimp is in the dev extra: pip install -e '.[dev]'")

AGENT = "costwarden.agent"
DEMO = f"{AGENT}.demo"
DEMO_GLUE = f"{AGENT}.cli.demo"  # the --demo glue of audit, run and report
ROOMS = ("engine", "server", "reports", "cli", "llm", "demo", "config")


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(AGENT, "costwarden.tools", "costwarden.policies", "costwarden.state", cache_dir=None)


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_graph_covers_every_room(graph) -> None:
    for room in ROOMS:
        assert f"{AGENT}.{room}" in graph.modules, room  # a renamed room would make the checks below vacuous


def test_only_the_cli_demo_glue_imports_the_demo(graph) -> None:
    importers = {m for m in graph.modules if not _in(m, DEMO)
                 for target in graph.find_modules_directly_imported_by(m) if _in(target, DEMO)}
    assert importers == {DEMO_GLUE}, (
        f"production code imports the demo: {sorted(importers - {DEMO_GLUE})}; route --demo through {DEMO_GLUE}")


def _room_edges(graph) -> dict[str, set[str]]:
    return {a: {b for b in ROOMS if b != a and graph.direct_import_exists(
        importer=f"{AGENT}.{a}", imported=f"{AGENT}.{b}", as_packages=True)} for a in ROOMS}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle's rooms, found by a depth-first walk from each room (seven rooms: cheap)."""
    found: list[list[str]] = []

    def walk(path: list[str]) -> None:
        for nxt in sorted(edges[path[-1]]):
            if nxt == path[0]:
                found.append(path + [nxt])
            elif nxt not in path and nxt > path[0]:  # each cycle once, from its smallest room
                walk(path + [nxt])

    for room in sorted(edges):
        walk([room])
    return found


def _an_import(graph, a: str, b: str) -> str:
    """One import that makes room `a` depend on room `b`, to name in a failure."""
    for m in sorted(graph.modules):
        if _in(m, f"{AGENT}.{a}"):
            for t in sorted(graph.find_modules_directly_imported_by(m)):
                if _in(t, f"{AGENT}.{b}"):
                    return f"{m} imports {t}"
    return "?"


def test_no_import_cycles_between_the_rooms_of_the_agent(graph) -> None:
    cycles = _cycles(_room_edges(graph))
    detail = [f"{a} -> {b}: {_an_import(graph, a, b)}" for c in cycles for a, b in zip(c, c[1:])]
    assert not cycles, f"import cycles between rooms: {[' -> '.join(c) for c in cycles]}\n" + "\n".join(detail)


def test_the_cycle_finder_finds_a_cycle() -> None:
    edges = {r: set() for r in ROOMS} | {"cli": {"reports"}, "reports": {"engine", "cli"}}
    assert _cycles(edges) == [["cli", "reports", "cli"]]


@pytest.mark.parametrize("lower", ["costwarden.tools", "costwarden.policies", "costwarden.state"])
def test_nothing_below_the_agent_imports_it(graph, lower: str) -> None:
    """DESIGN.md: dependencies point one way, agent -> policies, tools, state (directly or through another)."""
    chain = graph.find_shortest_chain(importer=lower, imported=AGENT, as_packages=True)
    assert chain is None, " -> ".join(chain)


# --- small rooms, public seams ---------------------------------------------------------------------
ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
CODE_DIRS = ("agent", "tools", "policies", "state")
MAX_LINES = 400  # a module past this holds more than one job: split it by job


def _code_files():
    return sorted(p for d in CODE_DIRS for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_is_over_the_size_of_one_job() -> None:
    long = {str(p.relative_to(ROOT)): n for p in _code_files()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_module_imports_another_modules_private_names() -> None:
    """`from costwarden.x import _name` couples to what x may change at will: give it a public name."""
    import ast

    found = []
    for p in [*_code_files(), *sorted((ROOT / "tests").rglob("*.py")), *sorted((ROOT / "bench").rglob("*.py"))]:
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(("costwarden", "tests")):
                found += [f"{p.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, "imports of private names:\n" + "\n".join(found)
