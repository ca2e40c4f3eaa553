"""Boundaries a machine checks (issue 11, point 4): the apps' domain modules form layers without an import cycle.

Domain modules are every module of an app (relais/<app>/) except its entry points: views, web views, URL confs, forms,
the REST API's handlers and schemas (any module that imports django-ninja), management commands, template tags, admin
and migrations. Entry points sit on top and may import any app. Every import counts, at module level or inside a
function, type-only ones too: an import moved into a function to dodge a cycle is still a cycle. Standard library only
(ast), so it runs wherever the tests run.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

RELAIS = Path(__file__).resolve().parent.parent / "relais"

# Module names (last dotted part, or a package on the path) that are entry points.
ENTRY_NAMES = ("views", "web_views", "urls", "web_urls", "forms", "admin", "schemas", "routers", "handlers")
ENTRY_PACKAGES = {"migrations", "templatetags", "tests", "views", "routers"}


def is_entry_point(parts: tuple[str, ...], imports: frozenset[str] = frozenset()) -> bool:
    """``parts`` is a module path inside relais, e.g. ("api", "views") or ("transfer", "management", "commands", "x");
    ``imports``: the modules it imports (one that imports django-ninja is an API handler, its schemas or its glue)."""
    if set(parts[1:-1]) & ENTRY_PACKAGES or tuple(parts[1:3]) == ("management", "commands"):
        return True
    if any(module == "ninja" or module.startswith("ninja.") for module in imports):
        return True
    name = parts[-1]
    if name == "__init__" and len(parts) > 2:
        name = parts[-2]
    return any(name == entry or name.startswith(entry + "_") for entry in ENTRY_NAMES)


def app_modules() -> Iterator[tuple[str, tuple[str, ...], Path]]:
    """(app, module parts, path) for every Python module inside an app package."""
    for app_dir in sorted(p for p in RELAIS.iterdir() if (p / "__init__.py").exists()):
        for path in sorted(app_dir.rglob("*.py")):
            parts = path.relative_to(RELAIS).with_suffix("").parts
            yield app_dir.name, parts, path


def imported_modules(path: Path, parts: tuple[str, ...]) -> Iterator[tuple[str, int]]:
    """(dotted module, line) for every import in the file, wherever it sits; relative imports resolved."""
    package = ("relais", *parts[:-1])  # a module's package, or the package itself for an __init__
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield module, node.lineno
            for alias in node.names:  # `from relais import notify` names a package
                yield f"{module}.{alias.name}", node.lineno


def domain_graph() -> dict[str, dict[str, list[str]]]:
    """app -> imported app -> where (``relais/x/y.py:12 -> relais.z.w``), for domain modules only."""
    apps = {app for app, _, _ in app_modules()}
    graph: dict[str, dict[str, list[str]]] = {app: {} for app in apps}
    for app, parts, path in app_modules():
        imports = list(imported_modules(path, parts))
        if is_entry_point(parts, frozenset(module for module, _ in imports)):
            continue
        for module, line in imports:
            dotted = module.split(".")
            if len(dotted) < 2 or dotted[0] != "relais" or dotted[1] not in apps or dotted[1] == app:
                continue
            where = f"{path.relative_to(RELAIS.parent)}:{line} -> {module}"
            sites = graph[app].setdefault(dotted[1], [])
            if not sites or sites[-1].split(" -> ")[0] != where.split(" -> ")[0]:
                sites.append(where)
    return graph


def find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str]:
    """One cycle of apps (first app repeated at the end), or [] when the graph is layered."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(app: str) -> list[str]:
        state[app] = 1
        path.append(app)
        for target in sorted(graph[app]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[app] = 2
        path.pop()
        return []

    for app in sorted(graph):
        if app not in state and (cycle := visit(app)):
            return cycle
    return []


def layers(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Apps by layer, lowest first: an app sits one layer above the highest app its domain modules import."""
    level: dict[str, int] = {}
    remaining = set(graph)
    while remaining:
        ready = sorted(a for a in remaining if all(t in level for t in graph[a]))
        if not ready:  # a cycle: find_cycle reports it
            break
        for app in ready:
            level[app] = 1 + max((level[t] for t in graph[app]), default=-1)
        remaining -= set(ready)
    out: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for app, n in sorted(level.items()):
        out[n].append(app)
    return out


def describe(graph: dict[str, dict[str, list[str]]], cycle: list[str]) -> str:
    lines = ["Import cycle between apps' domain modules: " + " -> ".join(cycle)]
    for source, target in itertools.pairwise(cycle):
        lines.append(f"  {source} -> {target}:")
        lines.extend(f"    {site}" for site in graph[source][target])
    lines.append("Move the function to the lower app, or let the lower app offer a hook the higher one registers in ready().")
    lines.append("Layers found so far (lowest first): " + " | ".join(", ".join(layer) for layer in layers(graph)))
    return "\n".join(lines)


def test_domain_modules_of_the_apps_form_layers() -> None:
    graph = domain_graph()
    cycle = find_cycle(graph)
    assert not cycle, describe(graph, cycle)
    # The layer order, lowest first, for whoever reads the output with -rA or -s.
    print("layers:", " | ".join(", ".join(layer) for layer in layers(graph)))


def test_the_checker_sees_a_cycle_through_a_function_local_import(tmp_path: Path) -> None:
    graph = {"a": {"b": ["relais/a/services.py:3 -> relais.b.models"]}, "b": {"a": ["relais/b/models.py:40 -> relais.a.x"]}, "c": {}}
    assert find_cycle(graph) == ["a", "b", "a"]
    assert "relais/b/models.py:40" in describe(graph, ["a", "b", "a"])
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from relais.notify import services\n")
    assert ("relais.notify.services", 2) in list(imported_modules(source, ("screenings", "m")))


def test_entry_points_are_told_apart_from_domain_modules() -> None:
    for parts in [("api", "views"), ("api", "web_views"), ("notify", "urls"), ("api", "forms"), ("api", "management", "commands", "x")]:
        assert is_entry_point(parts), parts
    for parts in [("api", "services"), ("transfer", "models"), ("api", "management", "__init__"), ("intake", "effects")]:
        assert not is_entry_point(parts), parts
    assert is_entry_point(("api", "common"), frozenset({"ninja", "relais.api.models"}))
    assert not is_entry_point(("api", "idempotency"), frozenset({"django.db", "relais.api.models"}))
