"""Every command that prints a table or a list takes ``--json``, and docs/cli.md says
what it prints for each (issue 19, item 5)."""

from __future__ import annotations

import argparse
from pathlib import Path

from condaops.reconciler.cli import COMMANDS
from condaops.reconciler.cli.parser import build_parser

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
# What prints no table: long-running services, and one-line confirmations of an action.
NO_TABLE = {"serve", "worker", "migrate", "rollback", "retire"}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_command_that_prints_a_table_takes_json() -> None:
    parsers = _subparsers()
    assert set(parsers) == set(COMMANDS)
    for name, parser in parsers.items():
        has_json = any("--json" in a.option_strings for a in parser._actions)
        assert has_json == (name not in NO_TABLE), name


def test_the_docs_say_what_each_json_holds() -> None:
    rows = {
        line.split("`")[1].split()[0]: line.rsplit("|", 2)[1].strip()
        for line in DOCS.read_text().splitlines()
        if line.startswith("| `") and line.count("|") >= 4
    }
    for name in COMMANDS:
        assert name in rows, f"docs/cli.md has no row for {name}"
        documented = rows[name] not in ("–", "-", "")
        assert documented == (name not in NO_TABLE), (name, rows[name])
