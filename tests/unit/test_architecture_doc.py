"""docs/architecture.md stays true: its module map lists the modules the code has, and
its prose names every import contract pyproject.toml holds."""

from __future__ import annotations

import re
import tomllib

from tests.support.modulemap import PAGE, ROOT, first_sentence, modules, section

REGENERATE = "regenerate it: .venv/bin/python -m tests.support.modulemap --write"


def _slack(lines: int) -> int:
    """How far a listed length may lag behind the code: a quarter, at least 40 lines."""
    return max(40, lines // 4)


def _listed() -> dict[str, tuple[int, str]]:
    """path -> (lines, description) as the page's module map has them."""
    text = section(PAGE.read_text(encoding="utf-8"))
    assert text is not None, "docs/architecture.md lost its module-map markers"
    listed: dict[str, tuple[int, str]] = {}
    folder = None
    for line in text.splitlines():
        if heading := re.match(r"#### `([^`]+)/`", line):
            folder = heading.group(1)
        elif row := re.match(r"\| `([^`]+)` \| (\d+) \| (.*) \|$", line):
            assert folder is not None, f"a row before any package heading: {line}"
            listed[f"{folder}/{row.group(1)}"] = (int(row.group(2)), row.group(3))
    return listed


def test_the_module_map_lists_every_module_with_its_docstring() -> None:
    code = {m.path: m for m in modules() if not m.path.endswith("/__init__.py")}
    listed = _listed()
    assert sorted(set(code) - set(listed)) == [], f"modules missing from docs/architecture.md; {REGENERATE}"
    assert sorted(set(listed) - set(code)) == [], f"modules listed that no longer exist; {REGENERATE}"
    changed = [path for path, module in code.items() if listed[path][1] != module.about]
    assert changed == [], f"docstrings changed since the map was made; {REGENERATE}"


def test_the_module_map_lengths_are_close_to_the_code() -> None:
    listed = _listed()
    off = [
        f"{m.path}: listed {listed[m.path][0]}, now {m.lines}"
        for m in modules()
        if m.path in listed and abs(listed[m.path][0] - m.lines) > _slack(m.lines)
    ]
    assert off == [], f"lengths drifted; {REGENERATE}:\n" + "\n".join(off)


def test_the_page_names_every_import_contract() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    page = PAGE.read_text(encoding="utf-8")
    missing = [c["name"] for c in contracts["contracts"] if f"**{c['name']}.**" not in page]
    assert missing == [], "contracts in pyproject.toml that docs/architecture.md does not explain"


def test_the_readme_links_the_page() -> None:
    assert "(docs/architecture.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_first_sentence() -> None:
    assert first_sentence("Plan: the pure diff.\n\nMore.") == "Plan: the pure diff."
    assert first_sentence("Two lines\nof one sentence. Then more.") == "Two lines of one sentence."
    assert first_sentence("A | in a table cell") == "A \\| in a table cell"
    assert first_sentence("") == ""
