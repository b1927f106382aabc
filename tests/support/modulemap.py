"""The module map of docs/architecture.md: every module of the four code folders, its
length and the first sentence of its docstring, generated from the code.

    .venv/bin/python -m tests.support.modulemap          # print the map
    .venv/bin/python -m tests.support.modulemap --write  # replace it in docs/architecture.md

``tests/unit/test_architecture_doc.py`` fails when the page lists other modules or other
descriptions than the code has, or a length that is off by more than ``SLACK``.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("config", "reconciler", "registry", "web")
PAGE = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- module-map:begin", "<!-- module-map:end -->"
SKIPPED = ("migrations",)  # Alembic's revisions: one per schema change, listed by `alembic history`


@dataclass(frozen=True)
class Module:
    path: str  # relative to the project root, e.g. reconciler/plan.py
    lines: int
    about: str


def first_sentence(doc: str) -> str:
    """The docstring's first sentence, on one line, with its Markdown table cells kept intact."""
    paragraph = " ".join(doc.split("\n\n", 1)[0].split())
    match = re.match(r"(.+?[.!?])(?:\s|$)", paragraph)
    return (match.group(1) if match else paragraph).replace("|", "\\|")


def modules(root: Path = ROOT) -> list[Module]:
    found = []
    for part in PARTS:
        for path in sorted((root / part).rglob("*.py"), key=lambda p: (p.parent.as_posix(), p.name)):
            rel = path.relative_to(root)
            if any(skip in rel.parts for skip in SKIPPED):
                continue
            text = path.read_text(encoding="utf-8")
            doc = ast.get_docstring(ast.parse(text)) or ""
            found.append(Module(rel.as_posix(), len(text.splitlines()), first_sentence(doc)))
    return found


def render(found: list[Module]) -> str:
    """One table per package, in the order of PARTS; a package's ``__init__`` docstring says
    what the package is (its lines count in the package's total)."""
    out: list[str] = []
    folders = dict.fromkeys(m.path.rsplit("/", 1)[0] for m in found)
    for folder in folders:
        inside = [m for m in found if m.path.rsplit("/", 1)[0] == folder]
        init = next((m for m in inside if m.path.endswith("/__init__.py")), None)
        listed = [m for m in inside if m is not init]
        about = f" {init.about}" if init and init.about not in ("", "condaops.") else ""
        out += ["", f"#### `{folder}/`: {len(listed)} modules, {sum(m.lines for m in inside)} lines", ""]
        out += [about.strip(), ""] if about else []
        out += ["| module | lines | what it is |", "| --- | ---: | --- |"]
        out += [f"| `{m.path.rsplit('/', 1)[1]}` | {m.lines} | {m.about} |" for m in listed]
    return "\n".join(out).lstrip("\n") + "\n"


def section(page: str) -> str | None:
    """The generated part of the page (between the markers), or None without markers."""
    match = re.search(re.escape(BEGIN) + r"[^\n]*-->\n(.*?)" + re.escape(END), page, re.S)
    return match.group(1) if match else None


def write(page_path: Path = PAGE) -> None:
    page = page_path.read_text(encoding="utf-8")
    match = re.search(re.escape(BEGIN) + r"[^\n]*-->\n(.*?)" + re.escape(END), page, re.S)
    if match is None:
        raise SystemExit(f"{page_path}: the markers {BEGIN} ... {END} are missing")
    page = page[: match.start(1)] + render(modules()) + page[match.end(1) :]
    page_path.write_text(page, encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    else:
        print(render(modules()), end="")
