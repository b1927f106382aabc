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
def setup(project, http_channel, tmp_path: Path, monkeypatch, request) -> Iterator[Setup]:  # type: ignore[no-untyped-def]
    """GitHub unless a test asks for another forge (``indirect`` parametrization)."""
    api = getattr(request, "param", "github")
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
        serve_forge(api, repo="acme/envs", token=TOKEN, repo_path=origin.path) as forge,
    ):
        forge.labels.update({"dependencies": 7, "condaops": 9})  # Gitea's labels exist beforehand
        source = {
            "git": f"{base}/envs-repo",
            "path": "envs",
            "status_api": api,
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
    page = site_page(setup, "/environments/team/app")
    assert "<strong>Updates available</strong>: proposed in <a href=" in page
    assert f"pull request #{pr['number']}</a>" in page and "<code>tool</code>" in page
    assert "team/app.conda-lock.yml</span> · installed exactly as committed (no solve)" in page


def site_page(setup: Setup, path: str) -> str:
    from litestar.testing import TestClient

    from condaops.config import load_settings
    from condaops.reconciler.state.db import make_engine
    from condaops.web.app import create_app

    settings = load_settings(setup.project.config_file)  # type: ignore[attr-defined]
    engine = make_engine(settings.database_url)
    try:
        with TestClient(create_app(settings, engine, cache_seconds=0)) as client:
            answer = client.get(path)
            assert answer.status_code == 200
            return answer.text
    finally:
        engine.dispose()


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


def age_channel(root: Path, version: str, days: float) -> None:
    """Make ``tool <version>`` look indexed ``days`` ago (rattler's ``indexed_timestamp``)."""
    import time

    repodata = root / "linux-64" / "repodata.json"
    data = json.loads(repodata.read_text())
    for name, record in data["packages"].items():
        if name.startswith(f"tool-{version}-"):
            record["indexed_timestamp"] = int((time.time() - days * 86400) * 1000)
    repodata.write_text(json.dumps(data))


def test_the_cooldown_holds_new_versions_back_until_they_are_old_enough(setup: Setup) -> None:
    setup.project.config["sources"][0]["updates"]["cooldown"] = "7d"  # type: ignore[attr-defined]
    setup.project.write_config()  # type: ignore[attr-defined]
    assert setup.project.cli("reconcile", "--once")[0] == 0  # type: ignore[attr-defined]
    setup.publish("2.0")  # indexed now: 0 days old
    out = setup.update()
    assert "no branches" in out and setup.forge.open_pulls() == []
    held = setup.project.status()["team/app"]["updates"]  # type: ignore[attr-defined]
    assert held["available"] is False and held["held"] == ["tool 2.0 (linux-64)"]

    age_channel(setup.channel.root, "2.0", days=8)  # type: ignore[attr-defined]
    setup.update()
    (pr,) = setup.forge.open_pulls()
    assert pr["title"].endswith("tool 1.0 → 2.0")
    assert "cooldown: versions at least 7 days old" in pr["body"]


def test_a_pull_request_is_closed_when_the_target_already_has_its_packages(setup: Setup) -> None:
    setup.publish("2.0")
    setup.update()
    (pr,) = setup.forge.open_pulls()
    # A person re-locks main by hand: the proposal is no longer needed.
    assert setup.project.cli("lock", "--dir", str(setup.origin.path))[0] == 0  # type: ignore[attr-defined]
    setup.origin.commit(message="team/app: re-locked by hand")
    out = setup.update()
    assert f"{BRANCH}: close" in out
    assert setup.forge.open_pulls() == []
    (note,) = setup.forge.bodies(pr["number"])
    assert note.startswith("**condaops** closes this pull request: the target branch already has these packages")


@pytest.mark.parametrize("setup", ["gitlab", "gitea"], indirect=True)
def test_merge_requests_on_gitlab_and_pull_requests_on_gitea(setup: Setup) -> None:
    setup.publish("2.0")
    setup.update()
    (pr,) = setup.forge.open_pulls()
    assert pr["head"] == BRANCH and sorted(pr["labels"]) == ["condaops", "dependencies"]
    setup.publish("3.0")
    setup.update()
    (again,) = setup.forge.open_pulls()
    assert again["number"] == pr["number"] and again["title"].endswith("tool 1.0 → 3.0")
    path = "/merge_requests" if setup.forge.api == "gitlab" else "/pulls"
    assert any(r.method == "POST" and r.path.endswith(path) for r in setup.forge.requests)


def test_pushes_over_https_use_the_source_credentials_and_never_log_them(
    project, http_channel, tmp_path: Path, monkeypatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    import logging

    from tests.support.gitserver import serve_git_http

    require_git()
    secret = "push-secret-9f8e7d6c5b4a"
    chan = tmp_path / "testchan"
    make_channel(chan, tool_packages(("1.0",)))
    channel = http_channel(chan)
    origin = GitRepo(tmp_path / "served" / "envs-repo")
    monkeypatch.setenv("FORGE_TOKEN", TOKEN)
    monkeypatch.setenv("GIT_TOKEN", secret)
    caplog.set_level(logging.DEBUG)
    with (
        serve_git_http(tmp_path / "served", auth=("bot", secret)) as base,
        serve_forge("github", repo="acme/envs", token=TOKEN, repo_path=origin.path) as forge,
    ):
        source = {
            "git": f"{base}/envs-repo",
            "username": "bot",
            "password_env": "GIT_TOKEN",
            "path": "envs",
            "status_api": "github",
            "status_url": forge.url,
            "status_repo": "acme/envs",
            "status_token_env": "FORGE_TOKEN",
            "updates": {},
        }
        p = project({CANONICAL: channel}, sources=[source])
        origin.write({"envs/team/app.yaml": "dependencies:\n  - tool\n"})
        assert p.cli("lock", "--dir", str(origin.path))[0] == 0
        origin.commit(message="team/app, locked")
        write_package_spec(chan, PackageSpec("tool", "2.0", depends=("libtool-data",)))
        make_channel(chan, [])
        code, out, err = p.cli("update")
        assert code == 0, err
        assert f"{BRANCH}: push" in out
        assert origin.head(BRANCH)  # the push arrived over smart HTTP, authenticated
        assert any(r.method == "POST" and r.path.endswith("git-receive-pack") for r in base.requests.entries)
        (pr,) = forge.open_pulls()
        monkeypatch.setenv("GIT_TOKEN", "wrong-password-000")
        write_package_spec(chan, PackageSpec("tool", "3.0", depends=("libtool-data",)))
        make_channel(chan, [])
        code, out, err = p.cli("update")  # refused credentials: said, not shown
        assert code == 2 and "SourceAuthFailed" in caplog.text
        assert forge.violations == []
    everything = caplog.text + out + err + json.dumps(pr)
    assert secret not in everything and TOKEN not in everything and "wrong-password-000" not in everything


def test_pushes_over_ssh_with_the_source_key(project, http_channel, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tests.support.gitserver import serve_git_ssh

    require_git()
    chan = tmp_path / "testchan"
    make_channel(chan, tool_packages(("1.0",)))
    channel = http_channel(chan)
    origin = GitRepo(tmp_path / "served" / "envs-repo")
    monkeypatch.setenv("FORGE_TOKEN", TOKEN)
    with (
        serve_git_ssh(tmp_path / "ssh") as sshd,
        serve_forge("github", repo="acme/envs", token=TOKEN, repo_path=origin.path) as forge,
    ):
        source = {
            "git": sshd.url(origin.path),
            "ssh_key_file": str(sshd.key),
            "ssh_known_hosts": str(sshd.known_hosts),
            "path": "envs",
            "status_api": "github",
            "status_url": forge.url,
            "status_repo": "acme/envs",
            "status_token_env": "FORGE_TOKEN",
            "updates": {},
        }
        p = project({CANONICAL: channel}, sources=[source])
        origin.write({"envs/team/app.yaml": "dependencies:\n  - tool\n"})
        assert p.cli("lock", "--dir", str(origin.path))[0] == 0
        origin.commit(message="team/app, locked")
        write_package_spec(chan, PackageSpec("tool", "2.0", depends=("libtool-data",)))
        make_channel(chan, [])
        code, out, err = p.cli("update")
        assert code == 0, err
        assert setup_lock(origin, BRANCH)["tool"] == "2.0"
        assert len(forge.open_pulls()) == 1 and forge.violations == []


def setup_lock(origin: GitRepo, ref: str) -> dict[str, str]:
    text = origin.git("show", f"{ref}:envs/team/app.conda-lock.yml")
    return {d["name"]: d["version"] for d in yaml.safe_load(text)["package"]}


def test_an_unreachable_forge_is_retried_without_holding_up_builds(setup: Setup) -> None:
    """``condaops serve``: the update run starts with the service, its first forge call hangs
    past the client's timeout and the next ones fail; environments build meanwhile, and the
    pull request arrives once the forge answers."""
    import signal
    import subprocess
    import sys
    import time

    from tests.integration.test_serve import free_port, get_status, wait_until

    port = free_port()
    setup.project.write_config(web={"listen": f"127.0.0.1:{port}"})  # type: ignore[attr-defined]
    setup.origin.commit({"envs/team/other.yaml": "dependencies:\n  - tool\n"}, "team/other, unlocked")
    setup.publish("2.0")
    setup.forge.hang(11, path="/pulls")  # past the 10 s timeout of one request
    setup.forge.fail(503, times=2, path="/pulls")
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "condaops.reconciler.cli", "--config", str(setup.project.config_file), "serve"],  # type: ignore[attr-defined]
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: {s["state"] for s in get_status(port).values()} == {"ready"} and len(get_status(port)) == 2)
        built = time.monotonic()
        assert setup.forge.open_pulls() == []  # builds did not wait for the forge
        wait_until(lambda: len(setup.forge.open_pulls()) == 1, timeout=90)
        opened = time.monotonic()
        assert built < opened and opened - started > 11
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "update_list_retry" in err and "attempt=3/5" in err
    assert TOKEN not in err


def test_a_pull_request_closed_by_a_person_is_not_proposed_again(setup: Setup) -> None:
    setup.publish("2.0")
    setup.update()
    (pr,) = setup.forge.open_pulls()
    setup.forge.close_pull(pr["number"])  # "not now"
    setup.update()
    setup.update()
    assert setup.forge.open_pulls() == [] and len(setup.forge.pulls) == 1
    setup.publish("3.0")  # a newer solution is a new proposal
    setup.update()
    (again,) = setup.forge.open_pulls()
    assert again["number"] != pr["number"] and again["title"].endswith("tool 1.0 → 3.0")
