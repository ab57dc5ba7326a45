"""The modules of each package import each other without circles, the packages import each other only
downwards, and nothing the ``morph-worker`` entry point can reach imports discord.py.

The graph is read from the source with ``ast``. Every import counts: at module level, inside functions
(an import moved into a function to dodge a circle is still the same dependency) and under
``TYPE_CHECKING`` (a type from a module above is a dependency on it too). So the layers can be read off
the imports: a module never needs one that needs it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def modules(package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package`` (a package is named by its ``__init__``)."""
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports. ``from a.b import c`` names ``a.b.c`` when that is a
    module, else ``a.b``; relative imports are resolved. Importing a submodule also runs its parent
    package's ``__init__``, but that edge is Python's, not the code's, and is left out."""
    mods = modules(package)

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                found = known(target)
                if found is not None and found != name:
                    graph[name].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted: every circle of
    imports lies inside one of them."""
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
    return sorted(found)


def test_the_graph_is_read_as_python_imports_it():
    """The reader itself, on modules it must see: a top-level, a function-level and a TYPE_CHECKING import."""
    graph = import_graph("bot")
    assert "bot.store" in graph["bot.worker"]  # module level
    assert "bot.worker" in graph["bot.bot"]  # TYPE_CHECKING (and the worker is imported in setup_hook)
    assert "bot.messages" in graph["bot.views"]  # `from bot import messages as msg` names the module
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


PACKAGES = ["bot", "morph", "fakediscord", "testkit", "toykit", "bench"]

#: Which of our packages each package may import (directly or inside functions). The product (``bot``,
#: ``morph``) never imports the harness; the fake Discord imports nothing of ours.
MAY_IMPORT = {
    "morph": set(),
    "bot": {"morph", "fakediscord"},  # the fake Discord: only the playground (bot/playground/)
    "fakediscord": set(),
    "testkit": {"fakediscord"},
    "toykit": {"morph"},
    "bench": {"bot", "morph", "fakediscord", "testkit", "toykit"},
}


def imported_names(path: Path) -> set[str]:
    """Every absolute module name that ``path`` imports (anywhere in it)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circles(package):
    assert cycles(import_graph(package)) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_what_they_may(package):
    ours = set(PACKAGES)
    found = {(name, target.split(".")[0]) for name, path in modules(package).items()
             for target in imported_names(path) if target.split(".")[0] in ours - {package}}
    assert {(name, top) for name, top in found if top not in MAY_IMPORT[package]} == set()
    if package == "bot":  # the fake Discord is the playground's, no other part of the bot's
        assert {name for name, top in found if top == "fakediscord"} <= set(modules("bot/playground"))


def test_nothing_the_worker_reaches_imports_discord():
    """Every module of ``bot`` reachable from ``morph-worker``'s entry (any import, also inside functions)
    imports neither discord.py nor the front's entry (``tests/test_worker_main.py`` runs it for real)."""
    graph = import_graph("bot")
    reached, todo = set(), ["bot.worker_main"]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(graph[name])
    assert "bot.worker" in reached and "bot.store" in reached  # the walk itself
    assert not reached & {"bot.main", "bot.bot", "bot.cogs", "bot.delivery", "bot.views", "bot.playground"}
    paths = modules("bot")
    assert {name for name in reached if any(target.split(".")[0] == "discord"
                                            for target in imported_names(paths[name]))} == set()
