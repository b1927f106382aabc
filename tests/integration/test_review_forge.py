"""Reviews reach the pull request: one comment edited in place and a ``condaops/review``
commit status, against a forge on 127.0.0.1 that checks each request against GitHub's,
GitLab's or Gitea's documented API; real ``git`` and ``git daemon``; one running service.
Forge failures (5xx, 429, refusals, a hanging forge) never block reconciling."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from litestar.testing import TestClient

from condaops.config import load_settings
from condaops.reconciler.runtime import Runtime
from condaops.reconciler.state.review_queries import get_change_request, list_previews
from condaops.web.app import create_app
from tests.integration.conftest import ALIAS
from tests.support.forge import ForgeState, serve_forge
from tests.support.gitserver import GitRepo, require_git, serve_git_daemon

pytestmark = pytest.mark.integration

TOKEN = "forge-token-8d1f0c2b7a"
REPOS = {"github": "acme/envs", "gitea": "acme/envs", "gitlab": "acme/infra/envs"}
REFS = {"github": "refs/pull/{n}/head", "gitea": "refs/pull/{n}/head", "gitlab": "refs/merge-requests/{n}/head"}


def tool(constraint: str) -> str:
    return f"channels: [testchan]\ndependencies: [{constraint}]\n"


@dataclass
class Setup:
    api: str
    repo: GitRepo
    forge: ForgeState
    runtime: Runtime

    def ref(self, number: int) -> str:
        return REFS[self.api].format(n=number)

    def push_request(self, number: int, files: dict[str, str | None]) -> str:
        self.repo.git("checkout", "-q", "-B", f"pr{number}", f"pr{number}" if self._has(f"pr{number}") else "main")
        sha = self.repo.commit(files, f"pr {number}")
        self.repo.update_ref(self.ref(number), sha)
        self.repo.git("checkout", "-q", "main")
        return sha

    def _has(self, branch: str) -> bool:
        return bool(self.repo.git("branch", "--list", branch))

    def reconcile(self) -> None:
        anyio.run(lambda: self.runtime.run_once(wait_retries=False))

    def record(self, number: int):  # type: ignore[no-untyped-def]
        return get_change_request(self.runtime.engine, "envs-repo", self.ref(number))


@pytest.fixture
def setup(request, project, tool_channel, tmp_path: Path, monkeypatch) -> Iterator[Setup]:  # type: ignore[no-untyped-def]
    api = request.param if hasattr(request, "param") else "github"
    require_git()
    monkeypatch.setenv("FORGE_TOKEN", TOKEN)
    root = tmp_path / "served"
    repo = GitRepo(root / "envs-repo")
    repo.commit({"envs/team/tool.yaml": tool("tool=1.0")}, "base")
    with serve_git_daemon(root) as git_url, serve_forge(api, repo=REPOS[api], token=TOKEN) as forge:
        source = {
            "git": f"{git_url}/envs-repo",
            "path": "envs",
            "change_requests": True,
            "change_refspecs": [REFS[api].format(n="*")],
            "status_api": api,
            "status_url": forge.url,
            "status_repo": REPOS[api],
            "status_token_env": "FORGE_TOKEN",
            "status_target_url": "http://condaops.example",
        }
        p = project({ALIAS + "testchan": tool_channel}, sources=[source])
        runtime = Runtime(load_settings(p.config_file))
        try:
            yield Setup(api, repo, forge, runtime)
        finally:
            runtime.reviews.close(timeout=5)
            runtime.notifier.close(timeout=5)
            runtime.reconciler.close()
            runtime.engine.dispose()


@pytest.mark.parametrize("setup", ["github", "gitlab", "gitea"], indirect=True)
def test_one_comment_edited_in_place_and_a_review_status(setup: Setup) -> None:
    setup.push_request(7, {"envs/team/tool.yaml": tool("tool=2.0")})
    setup.reconcile()
    forge = setup.forge
    (body,) = forge.bodies(7)
    assert body.startswith("<!-- condaops-review source=envs-repo ref=") and "| upgraded | `tool` |" in body
    assert "[Review page](http://condaops.example/change-requests/envs-repo/7)" in body
    states = [s["state"] for s in forge.review_statuses()]
    assert states[-1] == "success" and "every changed environment solves and builds" in body
    assert setup.record(7).title == "PR 7" and setup.record(7).publish_error is None

    head = setup.push_request(7, {"envs/data/new.yaml": tool("tool")})  # a new head
    setup.reconcile()
    (body,) = forge.bodies(7)  # still one comment, edited
    assert "`data/new` — added" in body and head[:12] in body
    assert forge.violations == []
    assert setup.record(7).published_version == setup.record(7).version


def test_the_comment_is_found_again_by_its_marker(setup: Setup) -> None:
    """After the state DB was lost, the earlier comment (on page 2) is edited, not duplicated."""
    for i in range(120):
        setup.forge.add_comment(3, f"comment {i}")
    mine = setup.forge.add_comment(3, "<!-- condaops-review source=envs-repo ref=refs/pull/3/head -->\nold review")
    setup.push_request(3, {"envs/team/tool.yaml": tool("tool=2.0")})
    setup.reconcile()
    bodies = setup.forge.bodies(3)
    assert len(bodies) == 121 and "old review" not in bodies[-1] and "condaops review" in bodies[-1]
    assert setup.record(3).comment_id == str(mine)
    assert setup.forge.violations == []


def test_a_comment_deleted_by_hand_is_posted_again(setup: Setup) -> None:
    setup.push_request(4, {"envs/team/tool.yaml": tool("tool=2.0")})
    setup.reconcile()
    setup.forge.comments[4].clear()
    setup.push_request(4, {"envs/data/new.yaml": tool("tool")})
    setup.reconcile()
    (body,) = setup.forge.bodies(4)
    assert "`data/new` — added" in body


def test_server_errors_and_rate_limits_are_waited_out(setup: Setup, caplog) -> None:  # type: ignore[no-untyped-def]
    setup.forge.fail(502)
    setup.forge.fail(429, {"Retry-After": "1"})
    setup.push_request(5, {"envs/team/tool.yaml": tool("tool=2.0")})
    started = time.monotonic()
    setup.reconcile()
    assert len(setup.forge.bodies(5)) == 1 and time.monotonic() - started >= 1.0
    assert "review_status_retry" in caplog.text and "429" in caplog.text
    assert TOKEN not in caplog.text


def test_a_refusal_is_recorded_and_tried_again_later(setup: Setup, caplog) -> None:  # type: ignore[no-untyped-def]
    setup.forge.fail(401, times=1)
    setup.forge.fail(403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 3600)})
    setup.push_request(6, {"envs/team/tool.yaml": tool("tool=2.0")})
    setup.reconcile()
    record = setup.record(6)
    assert record.publish_error and "401" in record.publish_error and record.published_version is None
    assert "review_status_refused" in caplog.text and "review_comments_rate_limited" in caplog.text
    setup.runtime.reviews._not_before.clear()  # the hour the forge asked for has passed
    setup.reconcile()
    assert setup.record(6).publish_error is None and len(setup.forge.bodies(6)) == 1
    assert TOKEN not in caplog.text


def test_a_hanging_forge_never_blocks_a_pass(setup: Setup) -> None:
    setup.forge.hang(3.0, times=3)
    setup.push_request(8, {"envs/team/tool.yaml": tool("tool=2.0")})
    started = time.monotonic()
    setup.runtime.reconciler.reconcile_once()  # what the serve loop runs: reviews, no forge call
    assert time.monotonic() - started < 2.5
    assert setup.record(8) is not None


def test_the_changes_json_tells_what_the_forge_said(setup: Setup, capsys) -> None:  # type: ignore[no-untyped-def]
    setup.forge.fail(404, times=10)
    setup.push_request(9, {"envs/team/tool.yaml": tool("tool=2.0")})
    setup.reconcile()
    from condaops.reconciler import cli

    capsys.readouterr()
    assert cli.main(["--config", str(setup.runtime.settings.config_file), "changes", "--format", "json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert "404" in item["forge"]["error"] and "check 'status_repo'" not in item["forge"]["error"]
    assert item["report"]["environments"][0]["environment"] == "team/tool"


def test_a_blocking_policy_rule_fails_the_review_naming_the_rule(setup: Setup) -> None:
    """IT's rule in a pull request: the status fails naming the rule, the comment and the
    review page list the findings per environment, the blocked environment is not built as a
    preview; once the rule is only a warning, the review passes and the preview builds."""
    deny = "packages:\n  deny:\n    - {spec: 'tool <2', reason: 'tool 1 leaks'}\n"
    files = {
        "envs/condaops-policy.yaml": deny,
        "envs/team/tool.yaml": tool("tool <2"),
        "envs/data/new.yaml": tool("tool"),
    }
    setup.push_request(10, files)
    setup.reconcile()
    status = setup.forge.review_statuses()[-1]
    assert status["state"] == "failure", status
    assert status["description"].startswith("team/tool breaks policy rule deny (condaops-policy.yaml): tool 1.0")
    (body,) = setup.forge.bodies(10)
    assert "**Policy: 1 environment(s) break a blocking rule.**" in body
    assert "- ❌ `condaops-policy.yaml` **deny**: tool 1.0 0 matches denied 'tool <2' (tool 1 leaks) (linux-64)" in body
    previews = list_previews(setup.runtime.engine, source="envs-repo", ref=setup.ref(10))
    assert {str(p.ref): p.state for p in previews} == {"data/new": "completed"}  # team/tool is not built
    assert setup.record(10).has_errors and setup.forge.violations == []

    settings = setup.runtime.settings
    with TestClient(create_app(settings, setup.runtime.engine, cache_seconds=0)) as client:
        page = client.get("/change-requests/envs-repo/10").text
        section = page.split('id="env-team-tool"')[1].split("</section>")[0]
        assert "1 violation: blocks the merge" in section and "tool 1 leaks" in section
        assert '<tr class="finding-error"><td>error</td><td>deny</td>' in section
        assert "policy-review" not in page.split('id="env-data-new"')[1].split("</section>")[0]
        assert "breaks policy rule deny" in client.get("/change-requests").text
        detail = client.get("/api/v1/change-requests/envs-repo/10").json()
    assert detail["policy_violations"] and detail["verdict"] == "failure"
    envs = {e["environment"]: e for e in detail["report"]["environments"]}
    assert envs["team/tool"]["blocked"] and [f["rule"] for f in envs["team/tool"]["policy"]] == ["deny"]
    assert not envs["data/new"]["blocked"] and envs["data/new"]["policy"] == []

    setup.push_request(10, {"envs/condaops-policy.yaml": deny.replace("leaks'}", "leaks', level: warning}")})
    setup.reconcile()
    status = setup.forge.review_statuses()[-1]
    assert status["state"] == "success" and status["description"].endswith("solves and builds; 1 policy warning(s)")
    (body,) = setup.forge.bodies(10)
    assert "- ⚠️ `condaops-policy.yaml` **deny**" in body and "break a blocking rule" not in body
    previews = list_previews(setup.runtime.engine, source="envs-repo", ref=setup.ref(10))
    assert {str(p.ref) for p in previews if p.state == "completed"} == {"data/new", "team/tool"}
