"""The layout's rules, checked on the source: stages import only to their left, no import circle inside an
app, the Django-free ML package, and services that name tasks instead of importing them."""

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

# Left to right: each may import only those before it (demo_shop, the demo's simulated shop, comes last).
APPS = ["promo_site", "shop", "recommender", "campaigns", "demo_shop"]
PROJECT = set(APPS)


def modules():
    for app in APPS:
        for path in sorted((REPO / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def imports(path: Path, module: str):
    """Every project module this file imports, at any level (a function's deferred import counts too)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PROJECT}


GRAPH = {module: imports(path, module) for module, path in modules()}


def resolve(name):
    """The project module a dotted import name refers to (a module, or the module holding the name)."""
    while name and name not in GRAPH:
        name = name.rpartition(".")[0]
    return name or None


def edges(module):
    return {target for name in GRAPH[module] if (target := resolve(name)) and target != module}


@pytest.mark.parametrize("app", APPS)
def test_no_import_circle_inside_an_app(app):
    inside = [m for m in GRAPH if m.split(".")[0] == app]
    # A depth-first walk that meets a module still on its own path has found a circle.
    state, circles = {}, []

    def walk(module, path):
        state[module] = "open"
        for target in edges(module):
            if target.split(".")[0] != app:
                continue
            if target.startswith(module + ".") or module.startswith(target + "."):
                continue  # a package and its own modules
            if state.get(target) == "open":
                circles.append([*path, target])
            elif target not in state:
                walk(target, [*path, target])
        state[module] = "done"

    for module in inside:
        if module not in state:
            walk(module, [module])
    assert circles == []


@pytest.mark.parametrize("app", APPS)
def test_an_app_imports_only_from_apps_to_its_left(app):
    allowed = set(APPS[: APPS.index(app) + 1])
    wrong = {(m, t) for m in GRAPH if m.split(".")[0] == app for t in edges(m) if t.split(".")[0] not in allowed}
    assert wrong == set()


def test_the_ml_package_imports_neither_django_nor_the_apps():
    for path in sorted((REPO / "recommender" / "ml").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            assert not [n for n in names if n.split(".")[0] in {"django", *PROJECT}], (path, names)


def test_services_name_tasks_instead_of_importing_them():
    services = [m for m in GRAPH if ".services" in m or m.endswith(".outbox") or m.endswith(".approvals")]
    assert services
    assert {(m, t) for m in services for t in edges(m) if t.endswith(".tasks")} == set()
