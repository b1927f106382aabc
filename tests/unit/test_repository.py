"""The README's first lines are the commands CI and new users run; keep them honest."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    lines = (ROOT / "README.md").read_text().splitlines()
    return [line.strip() for line in lines[2:4]]


def test_readme_starts_with_the_serve_and_test_commands():
    serve, test = readme_commands()
    assert serve == "bash environments.example/run.sh"
    assert "pytest" in test and "pip install" in test


def test_ci_runs_the_readme_test_command_verbatim():
    _, test = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci
