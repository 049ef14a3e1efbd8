"""The runtime dependency list covers every third-party import of the shipped packages.

`screening serve --demo` once failed on a fresh machine because the demo imported httpx,
which only the `test` extra installed: CI passed (it installs the extra), the README's
run command broke. Every module imported anywhere under the shipped packages, at the top
of a file or inside a function, must come from the standard library, the project itself,
or a distribution named in `[project] dependencies`.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("screening", "pooling", "lab_io", "reports")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set()
    for requirement in project["dependencies"]:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert match, requirement
        names.add(_normalise(match.group(0)))
    return names


def _imported_top_level_modules() -> dict[str, str]:
    """Top-level module name -> one file importing it (absolute imports only)."""
    found: dict[str, str] = {}
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_a_runtime_dependency() -> None:
    declared = _runtime_distributions()
    providers = packages_distributions()
    missing = []
    for module, where in sorted(_imported_top_level_modules().items()):
        if module in sys.stdlib_module_names or module in SHIPPED or module == "__future__":
            continue
        distributions = {_normalise(d) for d in providers.get(module, [])}
        if not distributions & declared:
            missing.append(f"{module} (imported in {where}; from {sorted(distributions)})")
    assert not missing, "not in [project] dependencies: " + "; ".join(missing)


def test_the_check_sees_imports_inside_functions() -> None:
    # the demo's httpx import was at the top of a module only reached from a function
    modules = _imported_top_level_modules()
    assert "httpx" in modules
    assert "uvicorn" in modules  # imported inside `screening serve`
