"""Every third-party package the code imports is declared in pyproject.toml (the code's
in ``dependencies``; the tests' and benchmarks' there or in the ``test`` extra), so an
install never works only because another package happened to bring it along."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODE = ("reconciler", "web", "registry", "config")
TESTS = ("tests", "benchmarks")
FIRST_PARTY = {"condaops", "tests", "__future__"}


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0]).lower()


def _declared(*groups: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {_name(r) for r in project["dependencies"]}
    for group in groups:
        names |= {_name(r) for r in project["optional-dependencies"][group]}
    return names


def _imported(folders: tuple[str, ...]) -> dict[str, set[str]]:
    """Top-level module -> files importing it, leaving out the standard library and the
    project's own modules (including scripts beside each other, as in benchmarks/)."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        files = list((ROOT / folder).rglob("*.py"))
        local = {f.stem for f in files}
        for path in files:
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in FIRST_PARTY | local:
                        found.setdefault(top, set()).add(path.relative_to(ROOT).as_posix())
    return found


def _undeclared(folders: tuple[str, ...], declared: set[str]) -> list[str]:
    distributions = importlib.metadata.packages_distributions()
    problems = []
    for module, files in sorted(_imported(folders).items()):
        names = {_name(d) for d in distributions.get(module, [])}
        if not names & declared:
            where = ", ".join(sorted(files)[:3])
            problems.append(f"{module} (from {sorted(names) or 'no installed package'}) imported by {where}")
    return problems


@pytest.mark.parametrize(("folders", "groups"), [(CODE, ()), (TESTS, ("test",))], ids=["code", "tests-and-benchmarks"])
def test_every_imported_package_is_declared(folders: tuple[str, ...], groups: tuple[str, ...]) -> None:
    undeclared = _undeclared(folders, _declared(*groups))
    assert undeclared == [], "imported but not declared in pyproject.toml:\n" + "\n".join(undeclared)


def test_the_check_sees_third_party_imports() -> None:
    """Not vacuous: the code's imports include packages the check must map to declarations."""
    imported = _imported(CODE)
    assert {"yaml", "sqlalchemy", "litestar", "rattler", "requests"} <= set(imported)
    assert "yaml" in importlib.metadata.packages_distributions()
    missing = _undeclared(CODE, _declared() - {"requests"})
    assert [line.split(" imported by ")[0] for line in missing] == ["requests (from ['requests'])"]
