"""Removed environments and unusable file names, end to end on a real Git repository:
a file removed with ``git rm`` shows its environment ``removed (kept)`` with the commit
that removed it, nothing is retried and its build stays linked; ``condaops retire``
retires it on purpose, ``prune: true`` automatically, each with a reason; files whose
path gives no valid name are reported per file (``NameInvalid``) and in the log."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from condaops.config import load_settings
from condaops.registry.api import open_registry
from tests.integration.conftest import ALIAS
from tests.support.channels import closed_port_url
from tests.support.gitserver import GitRepo

pytestmark = pytest.mark.integration

TOOL = "channels: [testchan]\ndependencies: [tool=1.0]\n"
GONE = "channels: [gone]\ndependencies: [tool]\n"
ODD_NAMES = ["a..b.yaml", "..yaml", "UPPER Case name.yaml", "y" * 246 + ".yaml", "a\u202eb.yaml", "a\u200bb.yaml"]


def history(p, ref: str) -> list[dict]:  # type: ignore[no-untyped-def]
    code, out, _ = p.cli("history", ref, "--json")
    assert code == 0
    return list(json.loads(out))


def test_a_removed_file_is_shown_kept_then_retired(project, tool_channel, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"team/a.yaml": TOOL, "team/b.yaml": TOOL, "team/c.yaml": GONE})
    mirrors = {ALIAS + "testchan": tool_channel, ALIAS + "gone": closed_port_url()}
    p = project(mirrors, sources=[{"git": str(repo.path), "name": "envs"}])
    p.cli("reconcile", "--once")
    status = p.status()
    assert status["team/b"]["state"] == "ready"
    assert (status["team/c"]["state"], status["team/c"]["reason"]) == ("pending", "RetryPending")
    b_link = p.link("team/b").resolve()

    removed_in = repo.commit({"team/b.yaml": None, "team/c.yaml": None}, "git rm b and c")
    for _ in range(2):  # and again, as after a restart: nothing comes back, nothing is retried
        assert p.cli("reconcile", "--once")[0] == 0
        status = p.status()
        for ref in ("team/b", "team/c"):
            item = status[ref]
            assert (item["state"], item["reason"]) == ("removed", "SourceRemovedKept"), item
            assert item["removed_revision"] == removed_in and removed_in[:12] in item["message"]
        assert p.link("team/b").resolve() == b_link  # its build stays linked
    assert len(history(p, "team/c")) == 1  # no retry after the file went
    code, out, _ = p.cli("status")
    assert "removed (kept)" in out and "condaops retire team/b" in out

    code, _, err = p.cli("retire", "team/a")
    assert code == 2 and "still defined by envs:team/a.yaml" in err
    registry = open_registry(load_settings(p.config_file, environ={}))
    assert "latest" in registry.tags("team/b")
    code, out, err = p.cli("retire", "team/b", "--note", "replaced by team/a")
    assert code == 0, err
    assert not p.link("team/b").exists() and b_link.is_dir()  # unlinked, its build kept for gc
    assert "latest" not in registry.tags("team/b") and registry.tags("team/b")  # other tags stay
    assert all(Path(p.store / path).is_file() for path in p.status()["team/a"]["artifacts"].values())
    assert "team/b" not in p.status()
    code, out, _ = p.cli("status", "--json", "team/b")
    (item,) = json.loads(out)
    assert (item["state"], item["reason"]) == ("retired", "Retired")
    assert "replaced by team/a" in item["message"] and "condaops retire" in item["message"]
    assert any(b["artifacts"].get("conda-lock") for b in history(p, "team/b"))  # lockfiles kept

    p.write_config(prune=True)  # prune retires what is left removed, recording why
    assert p.cli("reconcile", "--once")[0] == 0
    code, out, _ = p.cli("status", "--json", "team/c")
    (item,) = json.loads(out)
    assert (item["state"], item["reason"]) == ("retired", "SourceRemoved")
    assert removed_in[:12] in item["message"] and "prune is on" in item["message"]

    repo.commit({"team/b.yaml": TOOL}, "b is back")
    assert p.cli("reconcile", "--once", "--wait")[0] == 0
    assert p.status()["team/b"]["state"] == "ready"


def test_files_that_name_no_environment_are_reported_per_file(  # type: ignore[no-untyped-def]
    project, tool_channel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"team/a.yaml": TOOL, **dict.fromkeys(ODD_NAMES, TOOL)})
    p = project({ALIAS + "testchan": tool_channel}, sources=[{"git": str(repo.path), "name": "envs"}])
    with caplog.at_level(logging.WARNING, logger="condaops.reconcile"):
        assert p.cli("reconcile", "--once")[0] == 0
    code, out, _ = p.cli("status", "--json")
    files = {item["path"]: item for item in json.loads(out) if item["namespace"] is None}
    assert set(files) == set(ODD_NAMES)
    for item in files.values():
        assert (item["state"], item["reason"], item["source"]) == ("failed", "NameInvalid", "envs")
        assert item["message"].isprintable() and "name" in item["message"]
    assert "'a\\u202eb' is not a valid name" in files["a\u202eb.yaml"]["message"]
    assert "at most 128 characters" in files["y" * 246 + ".yaml"]["message"]
    assert caplog.text.count("file_rejected source=envs") == len(ODD_NAMES)  # logged once each
    assert "\u202e" not in caplog.text  # escaped in the log too
    code, out, _ = p.cli("status")
    assert re.search(r"envs:a\\u200bb\.yaml +failed +build=- +- +NameInvalid", out) and "\u200b" not in out
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="condaops.reconcile"):
        p.cli("reconcile", "--once")
    assert "file_rejected" not in caplog.text  # not again while nothing changed

    repo.commit(dict.fromkeys(ODD_NAMES, None), "fix the names")
    p.cli("reconcile", "--once")
    code, out, _ = p.cli("status", "--json")
    assert [item for item in json.loads(out) if item["namespace"] is None] == []
