"""The PR check: ``condaops plan --git ... --ref ... --base ...`` on a real repository."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import ALIAS
from tests.support.ci import skip_or_fail


@pytest.fixture(autouse=True)
def _needs_git() -> None:
    if shutil.which("git") is None:
        skip_or_fail("the git CLI is not installed (apt-get install -y git)")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def commit(repo: Path, files: dict[str, str | None], message: str) -> str:
    for rel, content in files.items():
        path = repo / rel
        if content is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@example.org", "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


def tool(constraint: str) -> str:
    return f"channels: [testchan]\ndependencies: [{constraint}]\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "envs-repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {"envs/team/tool.yaml": tool("tool=1.0"), "envs/team/old.yaml": tool("tool=1.0")}, "base")
    return repo


def pull_request(repo: Path, number: int, files: dict[str, str | None]) -> str:
    git(repo, "checkout", "-q", "-b", f"pr{number}", "main")
    sha = commit(repo, files, f"pr {number}")
    git(repo, "update-ref", f"refs/pull/{number}/head", sha)
    git(repo, "checkout", "-q", "main")
    return sha


def test_pr_check_reports_the_package_diff(project, tool_channel, repo):
    sha = pull_request(
        repo,
        1,
        {"envs/team/tool.yaml": tool("tool=2.0"), "envs/team/old.yaml": None, "envs/data/new.yaml": tool("tool")},
    )
    p = project({ALIAS + "testchan": tool_channel})
    code, out, err = p.cli(
        "plan", "--git", str(repo), "--ref", "refs/pull/1/head", "--base", "main", "--path", "envs", "--format", "json"
    )
    assert code == 1, err
    data = json.loads(out)
    assert data["head_revision"] == sha
    envs = {e["environment"]: e for e in data["environments"]}
    assert {k: e["change"] for k, e in envs.items()} == {
        "team/tool": "changed",
        "team/old": "removed",
        "data/new": "added",
    }
    linux = envs["team/tool"]["packages"]["linux-64"]
    assert linux["upgraded"] == [
        {"name": "tool", "manager": "conda", "old": "1.0", "new": "2.0", "old_build": "0", "new_build": "0"}
    ]
    assert [c["name"] for c in envs["team/old"]["packages"]["linux-64"]["removed"]] == ["libtool-data", "tool"]
    assert {c["name"] for c in envs["data/new"]["packages"]["linux-64"]["added"]} == {"libtool-data", "tool"}

    code, md, _ = p.cli("plan", "--git", str(repo), "--ref", "refs/pull/1/head", "--path", "envs")
    assert code == 1
    assert "| upgraded | `tool` | 1.0=0 | 2.0=0 |" in md


def test_pr_check_exit_codes(project, tool_channel, repo):
    pull_request(repo, 2, {"envs/team/README.md": "docs only\n"})
    pull_request(repo, 3, {"envs/team/tool.yaml": "dependencies: [tool\n"})
    pull_request(repo, 4, {"envs/team/tool.yaml": tool("tool >=9")})
    p = project({ALIAS + "testchan": tool_channel})
    review = ["plan", "--git", str(repo), "--base", "main", "--path", "envs", "--ref"]
    code, out, _ = p.cli(*review, "refs/pull/2/head")
    assert code == 0 and "No environment changes." in out
    code, out, _ = p.cli(*review, "refs/pull/3/head")
    assert code == 2 and "SpecYamlInvalid" in out and "team/tool.yaml" in out
    code, out, _ = p.cli(*review, "refs/pull/4/head")
    assert code == 2 and "cannot be built" in out and "tool >=9" in out
    code, _, err = p.cli(*review, "refs/pull/99/head")
    assert code == 2 and "refs/pull/99/head" in err


def test_the_service_reviews_open_change_requests(project, tool_channel, repo):
    pull_request(repo, 1, {"envs/team/tool.yaml": tool("tool=2.0")})
    p = project(
        {ALIAS + "testchan": tool_channel},
        sources=[{"git": str(repo), "branch": "main", "path": "envs", "change_requests": True, "change_grace": "0s"}],
    )
    assert p.cli("reconcile", "--once", "--wait")[0] == 0
    item = p.status()["team/tool"]
    assert item["state"] == "ready"  # production builds main, not the PR
    main_sha = git(repo, "rev-parse", "main")
    assert item["built_from_revision"] == item["latest_revision"] == item["revision"] == main_sha
    assert p.link("team/tool").resolve().name.endswith("-tool")

    code, out, _ = p.cli("changes", "--format", "json")
    (review,) = json.loads(out)
    assert (review["ref"], review["state"], review["has_changes"]) == ("refs/pull/1/head", "open", True)
    envs = {e["environment"]: e for e in review["report"]["environments"]}
    assert envs["team/tool"]["packages"]["linux-64"]["upgraded"][0]["new"] == "2.0"
    assert "| upgraded | `tool` | 1.0=0 | 2.0=0 |" in p.cli("changes", "--format", "markdown")[1]
    first_head = review["head_revision"]
    _check_site(p)
    (preview,) = review["previews"]  # the changed environment, built in the preview area
    assert (preview["environment"], preview["state"]) == ("team/tool", "completed")
    preview_prefix = Path(preview["prefix"])
    assert p.store / "previews" in preview_prefix.parents
    assert _tool_output(preview_prefix) == f"tool 2.0 {preview_prefix}"
    assert _tool_output(p.link("team/tool")).startswith("tool 1.0 ")  # production untouched
    assert "conda-lock" in preview["artifacts"]

    # The PR gets a new commit: reviewed again at the next pass.
    git(repo, "checkout", "-q", "pr1")
    sha = commit(repo, {"envs/data/new.yaml": tool("tool")}, "more")
    git(repo, "update-ref", "refs/pull/1/head", sha)
    git(repo, "checkout", "-q", "main")
    assert p.cli("reconcile", "--once")[0] == 0
    (review,) = json.loads(p.cli("changes", "--format", "json")[1])
    assert review["head_revision"] == sha != first_head
    assert {e["environment"] for e in review["report"]["environments"]} == {"team/tool", "data/new"}
    assert "data/new" not in p.status()  # never built in production
    assert p.cli("reconcile", "--once", "--wait")[0] == 0  # the new head's previews are built
    (review,) = json.loads(p.cli("changes", "--format", "json")[1])
    assert {(x["environment"], x["state"]) for x in review["previews"]} == {
        ("team/tool", "completed"),
        ("data/new", "completed"),
    }
    # team/tool did not change in the new head: its earlier preview is reused, not rebuilt.
    reused = next(x for x in review["previews"] if x["environment"] == "team/tool")
    assert (reused["reason"], reused["prefix"]) == ("PreviewReused", str(preview_prefix))
    assert _tool_output(preview_prefix) == f"tool 2.0 {preview_prefix}"

    # The PR is closed (its ref disappears): closed, then forgotten after the grace period.
    git(repo, "update-ref", "-d", "refs/pull/1/head")
    assert p.cli("reconcile", "--once")[0] == 0
    assert json.loads(p.cli("changes", "--format", "json")[1]) == []  # grace 0 s: gone at once
    assert not any((p.store / "previews").rglob("*-tool"))  # and so are its preview builds


def _tool_output(prefix: Path) -> str:
    return subprocess.run([prefix / "bin/tool"], capture_output=True, text=True, check=True).stdout.strip()


def _check_site(p) -> None:  # type: ignore[no-untyped-def]
    """The status site and API show the recorded review."""
    from litestar.testing import TestClient

    from condaops.config import load_settings
    from condaops.reconciler.state.db import make_engine
    from condaops.web.app import create_app

    settings = load_settings(p.config_file)
    engine = make_engine(settings.database_url)
    with TestClient(create_app(settings, engine, cache_seconds=0)) as client:
        data = client.get("/api/v1/change-requests").json()
        assert data["total"] == 1
        (item,) = data["items"]
        assert (item["ref"], item["state"], item["has_changes"]) == ("refs/pull/1/head", "open", True)
        assert item["report"]["environments"][0]["environment"] == "team/tool"
        assert (item["key"], item["verdict"], item["counts"]) == ("1", "success", {"changed": 1})
        page = client.get("/change-requests").text
        assert "refs/pull/1/head" in page and 'href="/change-requests/envs-repo/1"' in page
        page = client.get("/change-requests/envs-repo/1").text
        assert "| upgraded | `tool` | 1.0=0 | 2.0=0 |" in page  # the Markdown, ready to copy
        assert '<span class="badge badge-upgraded">upgraded</span>' in page
        detail = client.get("/api/v1/change-requests/envs-repo/1").json()
        assert [p["environment"] for p in detail["previews"]] == ["team/tool"]
        assert client.get("/change-requests/envs-repo/2").status_code == 404
    engine.dispose()
