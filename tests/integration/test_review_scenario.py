"""The review flow as reviewers meet it, replayed with real ``git`` and ``git daemon`` on
127.0.0.1 and one running service (its solve cache lives across passes):

* a pull request that never touched ``ds/base`` is not shown changing it after ``main``
  moves on, and the push to ``main`` solves nothing new and re-runs no preview;
* the target changing the same environment is told apart ("target moved");
* a force-pushed head, a deleted ref, a fork with no merge base and a request deleting
  every environment file each get a clear reason, and production never changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from condaops.config import load_settings
from condaops.reconciler.runtime import Runtime
from condaops.reconciler.state.queries import list_environments
from condaops.reconciler.state.review_queries import list_change_requests, list_previews
from tests.integration.conftest import ALIAS
from tests.support.gitserver import GitRepo, require_git, serve_git_daemon

pytestmark = pytest.mark.integration


def tool(constraint: str) -> str:
    return f"channels: [testchan]\ndependencies: [{constraint}]\n"


@dataclass
class Scenario:
    repo: GitRepo
    runtime: Runtime

    def pull_request(self, number: int, files: dict[str, str | None], *, start: str = "main") -> str:
        self.repo.git("checkout", "-q", "-B", f"pr{number}", start)
        sha = self.repo.commit(files, f"pr {number}")
        self.repo.update_ref(f"refs/pull/{number}/head", sha)
        self.repo.git("checkout", "-q", "main")
        return sha

    def push_main(self, files: dict[str, str | None]) -> str:
        return self.repo.commit(files, "main moves on")

    def reconcile(self) -> None:
        anyio.run(lambda: self.runtime.run_once(wait_retries=False))

    def review(self, number: int = 1) -> dict:
        ref = f"refs/pull/{number}/head"
        (row,) = [c for c in list_change_requests(self.runtime.engine) if c.ref == ref]
        data = json.loads(row.report_json) if row.report_json else {}
        return {"row": row, **data, "envs": {e["environment"]: e for e in data.get("environments", [])}}

    def previews(self, number: int = 1) -> list:
        return list_previews(self.runtime.engine, source="envs-repo", ref=f"refs/pull/{number}/head")

    def production(self) -> dict[str, str | None]:
        return {str(e.ref): e.desired_spec_hash for e in list_environments(self.runtime.engine)}


@pytest.fixture
def scenario(project, tool_channel, tmp_path: Path) -> Iterator[Scenario]:
    require_git()
    root = tmp_path / "served"
    repo = GitRepo(root / "envs-repo")
    repo.commit({"envs/ds/base.yaml": tool("tool=1.0"), "envs/team/tool.yaml": tool("tool=1.0")}, "base")
    with serve_git_daemon(root) as url:
        source = {"git": f"{url}/envs-repo", "branch": "main", "path": "envs", "change_requests": True}
        p = project({ALIAS + "testchan": tool_channel}, sources=[{**source, "change_grace": "0s", "interval": "1s"}])
        runtime = Runtime(load_settings(p.config_file))
        try:
            yield Scenario(repo, runtime)
        finally:
            runtime.reconciler.close()
            runtime.engine.dispose()


def test_a_target_push_elsewhere_changes_nothing_in_the_review(scenario: Scenario) -> None:
    head = scenario.pull_request(1, {"envs/team/tool.yaml": tool("tool=2.0")})
    scenario.reconcile()
    first = scenario.review()
    assert set(first["envs"]) == {"team/tool"} and first["head_revision"] == head
    assert first["merge_base"] == first["target_revision"]
    (preview,) = scenario.previews()
    assert preview.state == "completed"
    solved_before = scenario.runtime.reconciler.changes.cache.misses

    main = scenario.push_main({"envs/ds/base.yaml": tool("tool=2.0")})  # main moves on, elsewhere
    scenario.reconcile()
    again = scenario.review()
    assert set(again["envs"]) == {"team/tool"}  # never "ds/base changed"
    assert again["target_revision"] == main != again["merge_base"]
    assert not again["target_moved"] and again["envs"]["team/tool"]["target"] is None
    cache = scenario.runtime.reconciler.changes.cache
    assert cache.misses == solved_before and cache.hits >= 2  # nothing solved again
    assert [(p.preview_id, p.state) for p in scenario.previews()] == [(preview.preview_id, "completed")]
    assert scenario.production()["ds/base"] != scenario.production()["team/tool"]  # production built main


def test_the_target_changing_the_same_environment_is_told_apart(scenario: Scenario) -> None:
    scenario.pull_request(1, {"envs/team/tool.yaml": tool("tool=2.0")})
    scenario.reconcile()
    scenario.push_main({"envs/team/tool.yaml": tool("tool")})
    scenario.reconcile()
    review = scenario.review()
    tool_env = review["envs"]["team/tool"]
    assert review["target_moved"] and tool_env["change"] == "changed"
    assert "since the merge base" in tool_env["target"]["message"]
    assert tool_env["packages"]["linux-64"]["upgraded"][0]["new"] == "2.0"  # merge base -> head, as before
    assert "target moved: merged result differs" in review["row"].report_markdown
    assert "-dependencies: [tool=1.0]\n+dependencies: [tool=2.0]" in tool_env["file_diff"]


def test_force_push_and_deleted_ref(scenario: Scenario) -> None:
    first = scenario.pull_request(1, {"envs/team/tool.yaml": tool("tool=2.0")})
    scenario.reconcile()
    rewritten = scenario.pull_request(1, {"envs/team/extra.yaml": tool("tool")})  # pr1 again, from main
    assert rewritten != first
    scenario.reconcile()
    review = scenario.review()
    assert [n["reason"] for n in review["notes"]] == ["ForcePushed"]
    assert set(review["envs"]) == {"team/extra"}
    assert {p.head_revision for p in scenario.previews() if p.state != "canceled"} >= {rewritten}

    scenario.repo.git("update-ref", "-d", "refs/pull/1/head")
    scenario.reconcile()
    assert list_change_requests(scenario.runtime.engine) == []  # closed, then forgotten (grace 0 s)
    assert "team/extra" not in scenario.production()


def test_a_fork_without_merge_base_gets_a_reason(scenario: Scenario) -> None:
    scenario.reconcile()
    production = scenario.production()
    scenario.repo.git("checkout", "-q", "--orphan", "fork")
    scenario.repo.git("rm", "-rqf", ".")
    sha = scenario.repo.commit({"envs/team/tool.yaml": tool("tool=2.0")}, "unrelated history")
    scenario.repo.update_ref("refs/pull/3/head", sha)
    scenario.repo.git("checkout", "-q", "-f", "main")
    scenario.reconcile()
    row = scenario.review(3)["row"]
    assert row.reason == "MergeBaseMissing" and "share no history" in (row.error or "")
    assert scenario.previews(3) == [] and scenario.production() == production


def test_a_request_deleting_every_environment_file(scenario: Scenario) -> None:
    scenario.reconcile()
    production = scenario.production()
    scenario.pull_request(2, {"envs/ds/base.yaml": None, "envs/team/tool.yaml": None})
    scenario.reconcile()
    review = scenario.review(2)
    assert {k: e["change"] for k, e in review["envs"].items()} == {"ds/base": "removed", "team/tool": "removed"}
    assert [n["reason"] for n in review["notes"]] == ["RemovesEveryEnvironment"]
    assert scenario.production() == production
    assert {e.ref.name: e.retired for e in list_environments(scenario.runtime.engine)} == {
        "base": False,
        "tool": False,
    }
