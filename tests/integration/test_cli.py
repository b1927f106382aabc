"""The ``condaops`` command as users run it: the installed console script, in a process.

Covers the forgiving CLI of issue 19 (global options on either side of the command,
``--version``, read commands that neither create nor migrate a state DB, unknown
environments, ``history`` with times and durations, ``reconcile`` alone, ``--json`` on
every table, shell completion) and the read commands' promise of issue 14/15: they open
the state DB only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from sqlalchemy import text

from condaops.reconciler.state.db import head_revision, make_engine
from tests.integration.conftest import ALIAS

EXE = Path(sys.executable).with_name("condaops")


def condaops(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real console script; CONDAOPS_* of the test run are not passed on."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONDAOPS_")}
    return subprocess.run(
        [str(EXE), *args], cwd=cwd, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=300
    )


def tool_env(constraint: str) -> str:
    return f"channels: [testchan]\ndependencies:\n  - {constraint}\n"


@pytest.fixture
def built(project, tool_channel):  # type: ignore[no-untyped-def]
    """A project whose ``team/tool`` was built twice by ``condaops reconcile`` (no --once)."""
    p = project({ALIAS + "testchan": tool_channel})
    for constraint in ("tool=1.0", "tool=2.0"):
        p.write_env("team/tool.yaml", tool_env(constraint))
        done = condaops("reconcile", "--config", str(p.config_file), cwd=p.root)
        assert done.returncode == 0, done.stderr
    return p


def test_version_comes_from_the_package_metadata(tmp_path: Path) -> None:
    done = condaops("--version", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.strip() == f"condaops {version('condaops')}" == "condaops 0.2.0"


def test_help_names_every_command_and_the_global_options(tmp_path: Path) -> None:
    done = condaops("--help", cwd=tmp_path)
    assert done.returncode == 0
    for word in ("status", "history", "plan", "reconcile", "--config", "--log-level", "--version"):
        assert word in done.stdout
    sub = condaops("history", "--help", cwd=tmp_path)
    assert "--config" in sub.stdout and "--log-level" in sub.stdout and "--json" in sub.stdout


@pytest.mark.parametrize("command", [["status"], ["history", "team/tool"], ["plan"], ["changes"]])
def test_read_commands_without_settings_or_store_say_where_they_looked(tmp_path: Path, command: list[str]) -> None:
    done = condaops(*command, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert str(tmp_path / "condaops.yaml") in done.stderr and "CONDAOPS_CONFIG" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # no ./.condaops, no database


def test_read_commands_with_settings_but_no_store_create_nothing(project, tool_channel) -> None:  # type: ignore[no-untyped-def]
    p = project({ALIAS + "testchan": tool_channel})
    p.write_env("team/tool.yaml", tool_env("tool=1.0"))
    status = condaops("status", "--config", str(p.config_file), cwd=p.root)
    assert status.returncode == 2
    assert f"no state database at {p.store / 'condaops.db'}" in status.stderr
    assert "condaops reconcile" in status.stderr
    plan = condaops("plan", "--json", "--config", str(p.config_file), cwd=p.root)  # plans against nothing
    assert plan.returncode == 1, plan.stderr
    assert [(a["environment"], a["reason"]) for a in json.loads(plan.stdout)["actions"]] == [
        ("team/tool", "NewEnvironment")
    ]
    assert "planning against nothing recorded" in plan.stderr
    assert not p.store.exists()


def test_global_options_before_or_after_the_command(built) -> None:  # type: ignore[no-untyped-def]
    config = str(built.config_file)
    elsewhere = built.root.parent  # not the folder holding condaops.yaml
    before = condaops("--config", config, "--log-level", "warning", "status", "--json", cwd=elsewhere)
    after = condaops("status", "--json", "--config", config, "--log-level", "warning", cwd=elsewhere)
    mixed = condaops("--log-level", "error", "status", "--config", config, "--json", cwd=elsewhere)
    assert before.returncode == after.returncode == mixed.returncode == 0, after.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout) == json.loads(mixed.stdout)
    assert [i["state"] for i in json.loads(after.stdout)] == ["ready"]
    bad = condaops("status", "--log-level", "loud", cwd=elsewhere)
    assert bad.returncode == 2 and "invalid choice: 'loud'" in bad.stderr


def test_unknown_environments_exit_1_naming_them(built) -> None:  # type: ignore[no-untyped-def]
    config = ("--config", str(built.config_file))
    for command in (["status", "nope/nope"], ["history", "nope/nope"], ["rollback", "nope/nope", "1"]):
        done = condaops(*command, *config, cwd=built.root)
        assert done.returncode == 1, (command, done.stderr)
        assert "no environment nope/nope is recorded" in done.stderr
    partly = condaops("status", "team/tool", "nope/nope", *config, cwd=built.root)
    assert partly.returncode == 1 and partly.stdout.startswith("team/tool") and "nope/nope" in partly.stderr
    malformed = condaops("history", "nonsense", *config, cwd=built.root)
    assert malformed.returncode == 2 and "'nonsense' is not <namespace>/<name>" in malformed.stderr


def test_history_shows_times_durations_and_revisions(built) -> None:  # type: ignore[no-untyped-def]
    done = condaops("history", "team/tool", "--config", str(built.config_file), cwd=built.root)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["BUILD", "STATE", "ATTEMPT", "QUEUED", "FINISHED", "TOOK", "REVISION", "SUBJECT", "NOTE"]
    assert [r.split()[:3] for r in rows] == [["2", "completed", "1"], ["1", "completed", "1"]]
    builds = json.loads(
        condaops("history", "team/tool", "--json", "--config", str(built.config_file), cwd=built.root).stdout
    )
    for row, build in zip(rows, builds, strict=True):
        queued, finished = build["queued_at"], build["finished_at"]
        assert f"{queued[:10]} {queued[11:19]}Z" in row and f"{finished[:10]} {finished[11:19]}Z" in row
        assert build["duration_seconds"] > 0
        assert build["revision"].startswith("dir:") and build["revision"][:16] in row
        assert "tool.yaml" in row and build["path"].endswith("tool.yaml")
        # a directory source's subject is the environment file, by its full path
        assert build["subject"].endswith("/team/tool.yaml") and Path(build["subject"]).is_file()
        assert build["subject"][-40:] in row  # a long path keeps its end in the table
    assert done.stderr == ""  # every revision has its subject: nothing to explain


def test_reconcile_alone_is_one_pass(project, tool_channel) -> None:  # type: ignore[no-untyped-def]
    p = project({ALIAS + "testchan": tool_channel})
    p.write_env("team/tool.yaml", tool_env("tool=1.0"))
    done = condaops("reconcile", "--json", "--config", str(p.config_file), cwd=p.root)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"counts": {"ready": 1}, "failed": []}
    once = condaops("reconcile", "--once", "--config", str(p.config_file), cwd=p.root)  # the old spelling
    assert once.returncode == 0 and "1 ready" in once.stderr


def test_json_everywhere_a_table_is_printed(built) -> None:  # type: ignore[no-untyped-def]
    config = ("--config", str(built.config_file))
    status = json.loads(condaops("status", "--json", *config, cwd=built.root).stdout)
    assert [(i["namespace"], i["name"], i["build_id"]) for i in status] == [("team", "tool", 2)]
    plan = condaops("plan", "--json", *config, cwd=built.root)
    assert plan.returncode == 0 and json.loads(plan.stdout)["actions"][0]["reason"] == "UpToDate"
    changes = condaops("changes", "--json", *config, cwd=built.root)
    assert changes.returncode == 0 and json.loads(changes.stdout) == []
    gc = condaops("gc", "--keep", "0", "--dry-run", "--json", *config, cwd=built.root)
    assert gc.returncode == 0, gc.stderr
    report = json.loads(gc.stdout)
    assert [(x["environment"], x["build_id"]) for x in report["prefixes"]] == [("team/tool", 1)]
    assert report["dry_run"] is True and report["registry"]["uploads"] == 0


def test_read_commands_refuse_a_database_behind_this_version(built) -> None:  # type: ignore[no-untyped-def]
    db = built.store / "condaops.db"
    engine = make_engine(f"sqlite:///{db}")
    with engine.begin() as conn:  # as an older condaops left it
        conn.execute(text("UPDATE alembic_version SET version_num = '0009'"))
    engine.dispose()
    for command in (["status"], ["history", "team/tool"], ["plan"]):
        done = condaops(*command, "--config", str(built.config_file), cwd=built.root)
        assert done.returncode == 2, done.stderr
        assert f"at schema revision 0009, this condaops reads {head_revision()}" in done.stderr
        assert "condaops migrate" in done.stderr
    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as conn:  # nothing was migrated behind the operator's back
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0009"
    engine.dispose()


def test_shell_completion_with_argcomplete(built) -> None:  # type: ignore[no-untyped-def]
    """What docs/cli.md says to put in ~/.bashrc, in a real bash."""
    bash = shutil.which("bash")
    assert bash is not None
    register = EXE.with_name("register-python-argcomplete")

    def complete(line: str) -> list[str]:
        words = line.split() + ([""] if line.endswith(" ") else [])
        script = (
            f'eval "$({register} condaops)"; COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}; '
            f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; "
            f'_python_argcomplete condaops "{words[-1]}" "{words[-2]}"; printf "%s\\n" "${{COMPREPLY[@]}}"'
        )
        env = {**os.environ, "PATH": f"{EXE.parent}:{os.environ['PATH']}", "CONDAOPS_CONFIG": str(built.config_file)}
        done = subprocess.run([bash, "-c", script], cwd=built.root, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return [w.strip() for w in done.stdout.splitlines() if w.strip()]

    assert complete("condaops sta") == ["status"]
    assert complete("condaops history --j") == ["--json"]
    assert complete("condaops history te") == ["team/tool"]  # environment names from the state DB


NOT_FOR_READING = ("alembic", "apscheduler", "uvicorn", "litestar", "condaops.web", "condaops.reconciler.runtime")


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["history", "team/tool"], ["plan"], ["--help"]])
def test_read_commands_load_no_migrations_scheduler_worker_or_site(built, command: list[str]) -> None:  # type: ignore[no-untyped-def]
    """The console script under ``-X importtime``: what each read command imports."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(EXE), *command, "--config", str(built.config_file)],
        cwd=built.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "condaops.reconciler.cli" in imported
    loaded = sorted(m for m in imported for banned in NOT_FOR_READING if m == banned or m.startswith(banned + "."))
    assert loaded == [], f"{' '.join(command)} imports {loaded}"
    if command != ["status", "--json"]:  # the table, history and plan read with the DB-API (state.readonly)
        orm = sorted(m for m in imported if m.split(".")[0] in ("sqlalchemy", "alembic"))
        assert orm == [], f"{' '.join(command)} imports {orm[:5]}"
    if command == ["--help"]:
        assert not any(m.startswith(("sqlalchemy", "condaops.config", "yaml")) for m in imported)


def test_plan_takes_the_reconcilers_parse_results_and_says_the_same(built) -> None:  # type: ignore[no-untyped-def]
    """``reconcile`` keeps what it parsed (``sources.parsecache``); ``plan`` reads it
    instead of parsing unchanged files, prints the same, and writes nothing itself."""
    config = ("--config", str(built.config_file))
    kept = built.store / ".cache" / "specs"
    assert [p.suffix for p in kept.iterdir()] == [".json"]
    warm = condaops("plan", "--json", *config, cwd=built.root)
    shutil.rmtree(kept)
    cold = condaops("plan", "--json", *config, cwd=built.root)
    assert (warm.returncode, warm.stdout) == (cold.returncode, cold.stdout) == (0, cold.stdout)
    assert json.loads(cold.stdout)["actions"][0]["reason"] == "UpToDate"
    assert not kept.exists()  # plan creates nothing
    built.write_env("team/tool.yaml", tool_env("tool=1.0"))  # changed since the reconciler's parse
    changed = condaops("plan", *config, cwd=built.root)
    assert changed.returncode == 1 and "team/tool" in changed.stdout
