"""The layers of the project and what each may import (README "Architecture"), checked over the source tree
with `ast`: every `import` and `from ... import`, at module level or inside a function, counts.

    grove_api  <-  kube  <-  {webhook, reconciler, admitter, initc, certs}  <-  grove_operator
                                                                 localcluster, tools on top of everything

Pure parts (the API package, the reconciler's planner, the admitter's core) import no Kubernetes or HTTP
client: their tests need no cluster.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ("webhook", "reconciler", "admitter", "initc", "certs")
# package -> the project's packages it may import (besides itself)
ALLOWED: dict[str, frozenset[str]] = {
    "grove_api": frozenset(),
    "kube": frozenset({"grove_api"}),
    **{name: frozenset({"grove_api", "kube"}) for name in COMPONENTS},
    "grove_operator": frozenset({"grove_api", "kube", *COMPONENTS}),
    "localcluster": frozenset({"grove_api", "kube", *COMPONENTS, "grove_operator"}),
    "tools": frozenset({"grove_api", "kube", *COMPONENTS, "grove_operator", "localcluster"}),
}
PROJECT = frozenset(ALLOWED)
# module prefix -> module prefixes it must not import (within what its package may import)
PURE_CLIENTS = ("kubernetes_asyncio", "aiohttp")
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "grove_api": PURE_CLIENTS,
    "reconciler.planner": (
        *PURE_CLIENTS,
        "kube",
        "reconciler.manager",
        "reconciler.executor",
        "reconciler.events",
    ),
    "admitter.core": (*PURE_CLIENTS, "kube", "admitter.controller"),
}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file; relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                yield node.lineno, ".".join([*base, *([node.module] if node.module else [])])
            elif node.module:
                yield node.lineno, node.module


def violations(root: Path = ROOT) -> list[str]:
    """Every import that breaks a rule, as `file:line: module -> imported (why)`."""
    found = []
    for package in sorted(ALLOWED):
        for path in sorted((root / package).rglob("*.py")):
            module = module_name(path, root)
            for line, imported in imports(path, root):
                top = imported.split(".")[0]
                where = f"{path.relative_to(root)}:{line}: {module} -> {imported}"
                if top in PROJECT and top != package and top not in ALLOWED[package]:
                    found.append(f"{where} ({package} may import only {sorted(ALLOWED[package])})")
                for prefix, banned in FORBIDDEN.items():
                    if module == prefix or module.startswith(prefix + "."):
                        for ban in banned:
                            if imported == ban or imported.startswith(ban + "."):
                                found.append(f"{where} ({prefix} is pure: no {ban})")
    return found


def test_every_package_of_the_project_has_a_layer() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == PROJECT, "a new package needs its place in ALLOWED (and in README's layer table)"


def test_imports_flow_one_way() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("package", "source", "why"),
    [
        ("admitter", "from reconciler.planner.status import podgang_running\n", "may import only"),
        ("kube", "from reconciler.planner.actions import Create\n", "may import only"),
        ("initc", "from webhook.server import WebhookServer\n", "may import only"),
        ("grove_api", "import kube.client\n", "may import only"),
        ("reconciler/planner", "from kube.client import KubeClient\n", "is pure"),
        ("admitter/core", "def f():\n    from kube import resources\n", "is pure"),
        ("admitter/core", "from ..controller import Admitter\n", "is pure"),
    ],
)
def test_a_back_edge_is_caught(tmp_path: Path, package: str, source: str, why: str) -> None:
    """The rule fails on the back-edges the project once had (and on relative imports, in functions)."""
    for top in PROJECT:
        (tmp_path / top).mkdir()
        (tmp_path / top / "__init__.py").write_text("")
    target = tmp_path / package
    target.mkdir(parents=True, exist_ok=True)
    (target / "__init__.py").write_text("")
    (target / "bad.py").write_text(source)
    (found,) = violations(tmp_path)
    assert why in found and "bad.py" in found
