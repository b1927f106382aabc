"""The reasons vocabulary: one module, used everywhere, listed in docs/operations.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from condaops.reconciler.reasons import Reason, markdown_table

ROOT = Path(__file__).resolve().parents[2]
CODE = ("reconciler", "web", "registry", "config")
REASONS_FILE = ROOT / "reconciler" / "reasons.py"
CAMEL = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)*$")  # one word or more

# Literals equal to a reason that are something else there (file, value): why.
NOT_REASONS = {
    ("web/errors.py", "Error"),  # the title of an HTTP error page
    ("registry/s3_storage.py", "Error"),  # the key of botocore's error document
}


def _code_files() -> list[Path]:
    return sorted(p for part in CODE for p in (ROOT / part).rglob("*.py") if p != REASONS_FILE)


def _docstrings(tree: ast.AST) -> set[int]:
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, kinds)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }


def _reason_slots(tree: ast.AST) -> list[ast.expr]:
    """Expressions that hold a reason by their place: ``reason=...``, ``reason = ...``,
    ``*_REASON(S) = ...``."""
    slots: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg and node.arg.lower().endswith("reason"):
            slots.append(node.value)
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [
                t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else "" for t in targets
            ]
            if any(n.lower().rstrip("s").endswith("reason") for n in names):
                slots.append(node.value)
    return slots


def _stray_literals(source: str, rel: str) -> list[str]:
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if node.value in Reason.__members__.values() and (rel, node.value) not in NOT_REASONS:
                found.append(f"{rel}:{node.lineno}: '{node.value}' (use Reason.{Reason(node.value).name})")
    for slot in _reason_slots(tree):
        for node in ast.walk(slot):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CAMEL.match(node.value):
                if node.value not in Reason.__members__.values():
                    found.append(f"{rel}:{node.lineno}: '{node.value}' is not in reconciler/reasons.py: add it there")
    return found


def test_no_reason_is_written_outside_the_vocabulary() -> None:
    stray = [
        line
        for path in _code_files()
        for line in _stray_literals(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())
    ]
    assert stray == [], "reason literals outside reconciler/reasons.py:\n" + "\n".join(stray)


def test_the_scan_finds_stray_literals() -> None:
    """The scan above sees the forms reasons are written in (it is not vacuous)."""
    sample = (
        '"""A docstring may say DiskFull."""\n'
        'class E:\n    reason = "SolveFailed"\n'
        'def f(g):\n    g(error_reason="BrandNewReason")\n    return "DiskFull"\n'
        'DOC_REASONS = frozenset({"NotListedAnywhere"})\n'
        'TITLE = "Error"\n'
    )
    assert _stray_literals(sample, "web/errors.py") == [
        "web/errors.py:3: 'SolveFailed' (use Reason.SOLVE_FAILED)",
        "web/errors.py:6: 'DiskFull' (use Reason.DISK_FULL)",
        "web/errors.py:7: 'NotListedAnywhere' is not in reconciler/reasons.py: add it there",
        "web/errors.py:5: 'BrandNewReason' is not in reconciler/reasons.py: add it there",
    ]


@pytest.mark.parametrize("reason", list(Reason), ids=lambda r: r.value)
def test_each_reason_is_camel_case_with_a_one_line_meaning(reason: Reason) -> None:
    assert CAMEL.match(reason.value)
    assert reason.meaning and "\n" not in reason.meaning and len(reason.meaning) <= 120
    assert reason == reason.value and isinstance(reason, str)  # stored and compared as a plain string


def test_values_are_unique_and_stable() -> None:
    values = [r.value for r in Reason]
    assert len(values) == len(set(values))
    # A few values the state DB already holds: renaming one would orphan recorded rows.
    assert Reason.SPEC_CHANGED == "SpecChanged" and Reason.SOURCE_UNREADABLE == "SourceUnreadable"
    assert Reason.DISK_FULL == "DiskFull" and Reason.NAME_INVALID == "NameInvalid"


def test_operations_doc_lists_every_reason() -> None:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- reasons:begin[^\n]*-->\n(.*?)<!-- reasons:end -->", text, re.S)
    assert match, "docs/operations.md lost its generated reasons table markers"
    assert match.group(1) == markdown_table(), (
        "docs/operations.md's reasons table differs from reconciler/reasons.py: "
        "replace it with the output of `.venv/bin/python -m condaops.reconciler.reasons`"
    )
