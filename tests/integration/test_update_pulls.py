"""Update pull requests end to end: a real repository served by ``git daemon`` (pushes
enabled) or smart HTTP, the loopback forge checking every API call, and a channel that
gains newer versions during the test. ``condaops update`` is what the scheduler runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import ALIAS, tool_packages
from tests.support.channels import PackageSpec, make_channel, write_package_spec
from tests.support.forge import ForgeState, serve_forge
from tests.support.gitserver import GitRepo, require_git, serve_git_daemon

pytestmark = pytest.mark.integration

CANONICAL = ALIAS + "testchan"
TOKEN = "forge-token-0123456789"
BRANCH = "condaops/update/team/app"


@dataclass
class Setup:
    origin: GitRepo
    forge: ForgeState
    project: object
    channel: object

    def update(self) -> str:
        code, out, err = self.project.cli("update")  # type: ignore[attr-defined]
        assert code == 0, err
        return out

    def publish(self, version: str) -> None:
        write_package_spec(self.channel.root, PackageSpec("tool", version, depends=("libtool-data",)))  # type: ignore[attr-defined]
        make_channel(self.channel.root, [])  # type: ignore[attr-defined]

    def lock_on(self, ref: str) -> dict[str, str]:
        text = self.origin.git("show", f"{ref}:envs/team/app.conda-lock.yml")
        return {d["name"]: d["version"] for d in yaml.safe_load(text)["package"]}


@pytest.fixture
def setup(project, http_channel, tmp_path: Path, monkeypatch) -> Iterator[Setup]:  # type: ignore[no-untyped-def]
    require_git()
    chan = tmp_path / "testchan"
    make_channel(chan, tool_packages(("1.0",)))
    channel = http_channel(chan)
    channel.root = chan  # type: ignore[attr-defined]
    root = tmp_path / "served"
    origin = GitRepo(root / "envs-repo")
    monkeypatch.setenv("FORGE_TOKEN", TOKEN)
    with (
        serve_git_daemon(root, receive_pack=True) as base,
        serve_forge("github", repo="acme/envs", token=TOKEN, repo_path=origin.path) as forge,
    ):
        source = {
            "git": f"{base}/envs-repo",
            "path": "envs",
            "status_api": "github",
            "status_url": forge.url,
            "status_repo": "acme/envs",
            "status_token_env": "FORGE_TOKEN",
            "updates": {"schedule": "1h", "labels": ["dependencies", "condaops"]},
        }
        p = project({CANONICAL: channel}, sources=[source])
        origin.write({"envs/team/app.yaml": "dependencies:\n  - tool\n"})
        assert p.cli("lock", "--dir", str(origin.path))[0] == 0
        origin.commit(message="team/app, locked")
        yield Setup(origin, forge, p, channel)
    assert forge.violations == []


def test_an_update_pull_request_is_opened_updated_and_never_doubled(setup: Setup) -> None:
    assert setup.project.cli("reconcile", "--once")[0] == 0  # type: ignore[attr-defined]
    out = setup.update()
    assert "no branches" in out  # nothing newer yet
    assert setup.forge.open_pulls() == []

    setup.publish("2.0")
    out = setup.update()
    assert f"{BRANCH}: push" in out
    (pr,) = setup.forge.open_pulls()
    assert pr["head"] == BRANCH and pr["base"] == "main"
    assert pr["title"] == "condaops: update team/app: tool 1.0 → 2.0"
    assert "| upgraded | `tool` | 1.0=0 | 2.0=0 |" in pr["body"]
    assert pr["labels"] == ["dependencies", "condaops"]
    assert setup.lock_on(BRANCH)["tool"] == "2.0" and setup.lock_on("main")["tool"] == "1.0"
    assert "Condaops-Branch: " + BRANCH in setup.origin.git("log", "-1", "--format=%B", BRANCH)
    first_head = setup.origin.head(BRANCH)

    out = setup.update()  # nothing new: no push, no second pull request
    assert f"{BRANCH}: keep" in out
    assert setup.origin.head(BRANCH) == first_head and len(setup.forge.pulls) == 1

    setup.publish("3.0")
    setup.update()
    (again,) = setup.forge.open_pulls()
    assert again["number"] == pr["number"] and len(setup.forge.pulls) == 1
    assert again["title"] == "condaops: update team/app: tool 1.0 → 3.0"
    assert setup.lock_on(BRANCH)["tool"] == "3.0" and setup.origin.head(BRANCH) != first_head

    status = setup.project.status()["team/app"]  # type: ignore[attr-defined]
    assert status["updates"]["available"] is True
    assert status["updates"]["pull_request"]["url"].endswith(f"/pulls/{pr['number']}")


def test_a_branch_a_person_pushed_to_is_left_alone(setup: Setup) -> None:
    setup.publish("2.0")
    setup.update()
    (pr,) = setup.forge.open_pulls()
    origin = setup.origin
    origin.git("checkout", "-q", BRANCH)
    human = origin.commit({"envs/team/notes.txt": "looked at it\n"}, "a person's fix")
    origin.git("checkout", "-q", "main")

    setup.publish("3.0")
    out = setup.update()
    assert f"{BRANCH}: hold" in out
    assert origin.head(BRANCH) == human  # not overwritten
    (comment,) = setup.forge.bodies(pr["number"])
    assert "pushed by someone else: condaops leaves the branch alone" in comment
    setup.update()
    assert len(setup.forge.bodies(pr["number"])) == 1  # said once
    assert json.loads(json.dumps(setup.forge.open_pulls()))[0]["title"].endswith("tool 1.0 → 2.0")
