"""Committed lockfiles are the truth: ``condaops lock`` writes them, builds install exactly
them (no solve: the channel's repodata is never fetched), a lock that no longer fits its
environment file is ``LockStale`` and the last good build stays linked. Real channels on
127.0.0.1, real installs, the CLI as users run it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import ALIAS, tool_packages
from tests.support.channels import PackageSpec, make_channel, write_package_spec

pytestmark = pytest.mark.integration

CANONICAL = ALIAS + "testchan"


@pytest.fixture
def growing_channel(tmp_path_factory, http_channel):  # type: ignore[no-untyped-def]
    """``tool`` 1.0 only, served on 127.0.0.1; ``add(version)`` publishes a newer one."""
    root = tmp_path_factory.mktemp("testchan")
    make_channel(root, tool_packages(("1.0",)))
    url = http_channel(root)

    def add(version: str) -> None:
        write_package_spec(root, PackageSpec("tool", version, depends=("libtool-data",), executables=("tool",)))
        make_channel(root, [])

    url.add = add  # type: ignore[attr-defined]
    return url


def repodata_requests(url) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.path for e in url.requests.entries if "repodata" in e.path]


def run_tool(link: Path) -> str:
    return subprocess.run([str(link / "bin" / "tool")], capture_output=True, text=True, check=True).stdout.split()[1]


def test_a_locked_environment_installs_exactly_its_lock(project, growing_channel) -> None:  # type: ignore[no-untyped-def]
    p = project({CANONICAL: growing_channel})
    p.write_env("team/app.yaml", "dependencies:\n  - tool\n")

    code, out, err = p.cli("lock", "--dir", str(p.envs), "team/app")
    assert code == 0, err
    assert "wrote team/app.conda-lock.yml (team/app; linux-64: 2 packages)" in out
    lock = yaml.safe_load((p.envs / "team/app.conda-lock.yml").read_text())
    assert {d["name"]: d["version"] for d in lock["package"]} == {"tool": "1.0", "libtool-data": "1.0"}
    assert lock["metadata"]["custom_metadata"] == {"generated_by": "condaops", "environment": "app"}

    growing_channel.add("2.0")  # a solve would now pick tool 2.0
    growing_channel.requests.clear()
    code, _, err = p.cli("reconcile", "--once")
    assert code == 0, err
    assert repodata_requests(growing_channel) == []  # no solve: repodata never fetched
    assert any(e.path.endswith(".tar.bz2") for e in growing_channel.requests.entries)  # packages were
    assert run_tool(p.link("team/app")) == "1.0"
    item = p.status()["team/app"]
    assert item["state"] == "ready"
    assert item["lock"] == {"path": "team/app.conda-lock.yml", "kind": "conda-lock"}

    code, out, _ = p.cli("history", "team/app", "--json")
    assert '"lock_path": "team/app.conda-lock.yml"' in out

    code, out, err = p.cli("lock", "--dir", str(p.envs), "team/app", "--json")  # tool 2.0 is there now
    assert code == 0, err
    assert json.loads(out) == {
        "locks": [
            {
                "environment": "team/app",
                "path": "team/app.conda-lock.yml",
                "changed": True,
                "packages": {"linux-64": 2},
                "removed": None,
            }
        ]
    }
    code, out, _ = p.cli("lock", "--dir", str(p.envs), "--check", "--json")
    assert code == 0 and json.loads(out) == {"problems": []}


def test_a_stale_lock_keeps_the_last_good_build(project, growing_channel) -> None:  # type: ignore[no-untyped-def]
    p = project({CANONICAL: growing_channel})
    p.write_env("team/app.yaml", "dependencies:\n  - tool\n")
    assert p.cli("lock", "--dir", str(p.envs))[0] == 0
    assert p.cli("reconcile", "--once")[0] == 0
    built = p.status()["team/app"]["build_id"]

    p.write_env("team/app.yaml", "dependencies:\n  - tool >=2\n")  # the lock still says 1.0
    code, out, _ = p.cli("plan")
    assert code == 1
    assert "reject  team/app  LockStale  team/app.conda-lock.yml does not match team/app.yaml" in out
    assert "tool >=2 is not satisfied by the locked tool 1.0=0 (linux-64)" in out
    assert p.cli("reconcile", "--once")[0] == 0
    item = p.status()["team/app"]
    assert item["build_id"] == built and item["reason"] == "LockStale"
    assert run_tool(p.link("team/app")) == "1.0"

    code, out, _ = p.cli("lock", "--dir", str(p.envs), "--check")
    assert code == 1 and "LockStale" in out
    code, out, _ = p.cli("lock", "--dir", str(p.envs), "--check", "--json")
    (problem,) = json.loads(out)["problems"]
    assert code == 1 and problem.startswith("LockStale: ")

    growing_channel.add("2.0")
    assert p.cli("lock", "--dir", str(p.envs))[0] == 0
    assert p.cli("lock", "--dir", str(p.envs), "--check")[0] == 0
    assert p.cli("reconcile", "--once")[0] == 0
    assert run_tool(p.link("team/app")) == "2.0"


def test_the_review_of_a_lockfile_only_change_reads_both_locks(project, growing_channel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.support.gitserver import GitRepo, require_git

    require_git()
    repo = GitRepo(tmp_path / "envs-repo")
    p = project({CANONICAL: growing_channel}, sources=[{"git": str(repo.path), "path": "envs"}])
    repo.write({"envs/team/app.yaml": "dependencies:\n  - tool\n"})
    assert p.cli("lock", "--dir", str(repo.path))[0] == 0
    repo.commit(message="app, locked")

    repo.git("checkout", "-q", "-b", "update")
    growing_channel.add("2.0")
    assert p.cli("lock", "--dir", str(repo.path), "team/app")[0] == 0
    repo.commit(message="app: tool 2.0")
    clone = tmp_path / "ci"  # what a CI job has: a clone, the change checked out as a detached HEAD
    for args in (("clone", "-q", str(repo.path), str(clone)), ("-C", str(clone), "fetch", "-q", "origin", "update")):
        subprocess.run(["git", *args], check=True, capture_output=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", "--detach", "FETCH_HEAD"], check=True)
    growing_channel.requests.clear()
    code, out, err = p.cli("check", "--git", str(clone), "--base", "origin/main")
    assert code == 0, err  # changes that build pass the gate
    assert "Only the lockfile changed: `team/app.conda-lock.yml` (packages read from the lock, not solved)." in out
    assert "| upgraded | `tool` | 1.0=0 | 2.0=0 |" in out
    assert repodata_requests(growing_channel) == []

    repo.git("checkout", "-q", "-b", "stale", "main")
    repo.commit({"envs/team/app.yaml": "dependencies:\n  - tool >=2\n"}, "app: tool >=2 without re-locking")
    code, out, _ = p.cli("check", "--git", str(repo.path), "--ref", "stale", "--base", "main")
    assert code == 2
    assert "**LockStale**: team/app.conda-lock.yml does not match team/app.yaml" in out


def test_a_pixi_lock_builds_exactly_too(project, growing_channel) -> None:  # type: ignore[no-untyped-def]
    p = project({CANONICAL: growing_channel})
    p.write_env("team/app/environment.yaml", "dependencies:\n  - tool\n")
    code, out, err = p.cli("lock", "--dir", str(p.envs), "--format", "pixi")
    assert code == 0, err
    assert "wrote team/app/pixi.lock" in out
    growing_channel.add("2.0")
    growing_channel.requests.clear()
    assert p.cli("reconcile", "--once")[0] == 0
    assert repodata_requests(growing_channel) == []
    assert run_tool(p.link("team/app")) == "1.0"
    assert p.status()["team/app"]["lock"] == {"path": "team/app/pixi.lock", "kind": "pixi-lock"}


def test_each_broken_lock_has_its_own_reason(project, growing_channel) -> None:  # type: ignore[no-untyped-def]
    p = project({CANONICAL: growing_channel})
    p.write_env("team/app.yaml", "dependencies:\n  - tool\n")
    code, _, err = p.cli("lock", "--dir", str(p.envs))
    assert code == 0, err
    good = (p.envs / "team/app.conda-lock.yml").read_text()
    p.write_env("team/orphan.conda-lock.yml", good)  # no team/orphan.yaml
    p.write_env("team/corrupt.yaml", "dependencies:\n  - tool\n")
    p.write_env("team/corrupt.conda-lock.yml", "version: 1\nmetadata: [oops\n")
    p.write_env("team/mac.yaml", "dependencies:\n  - tool\n")
    p.write_env("team/mac.conda-lock.yml", good.replace("linux-64", "osx-64"))
    p.write_env("team/both.yaml", "dependencies:\n  - tool\n")
    p.write_env("team/both.conda-lock.yml", good)
    p.write_env("team/both/pixi.lock", "version: 6\n")
    code, out, _ = p.cli("plan")
    assert code == 1
    assert "reject  team/corrupt  LockInvalid  team/corrupt.conda-lock.yml is not valid YAML" in out
    mac = "team/mac.conda-lock.yml locks osx-64 only; builds here run on linux-64"
    assert f"reject  team/mac  LockPlatformMissing  {mac}" in out
    both = "team/both.conda-lock.yml and team/both/pixi.lock both lock team/both"
    assert f"reject  team/both  LockAmbiguous  {both}" in out
    orphan = "team/orphan.conda-lock.yml  LockWithoutSpec  team/orphan.conda-lock.yml locks team/orphan"
    assert f"reject  envs:{orphan}" in out
    assert "build   team/app  NewEnvironment" in out  # the good lock is fine


def test_an_unlocked_environment_gets_an_updates_available_report(project, growing_channel) -> None:  # type: ignore[no-untyped-def]
    p = project({CANONICAL: growing_channel}, sources=[{"directory": "envs", "updates": {"pull_requests": False}}])
    p.write_env("team/app.yaml", "dependencies:\n  - tool\n")
    assert p.cli("reconcile", "--once")[0] == 0
    code, out, err = p.cli("update")
    assert code == 0, err
    assert p.status()["team/app"]["updates"]["available"] is False

    growing_channel.add("2.0")
    code, out, err = p.cli("update", "--json")
    assert code == 0, err
    assert json.loads(out) == [{"source": "envs", "checked": 1, "decisions": {}, "error": None}]
    report = p.status()["team/app"]["updates"]
    assert report["available"] is True and report["locked"] is False and report["pull_request"] is None
    (change,) = report["packages"]["linux-64"]["upgraded"]
    assert (change["name"], change["old"], change["new"]) == ("tool", "1.0", "2.0")
    assert run_tool(p.link("team/app")) == "1.0"  # a report changes nothing


def test_a_pull_request_changing_a_lock_is_previewed_from_the_lock(project, growing_channel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from tests.support.gitserver import GitRepo, require_git

    require_git()
    repo = GitRepo(tmp_path / "envs-repo")
    source = {"git": str(repo.path), "path": "envs", "change_requests": True}
    p = project({CANONICAL: growing_channel}, sources=[source])
    repo.write({"envs/team/app.yaml": "dependencies:\n  - tool\n"})
    assert p.cli("lock", "--dir", str(repo.path))[0] == 0
    repo.commit(message="app, locked")
    assert p.cli("reconcile", "--once")[0] == 0

    repo.git("checkout", "-q", "-b", "update")
    growing_channel.add("2.0")
    assert p.cli("lock", "--dir", str(repo.path))[0] == 0
    repo.update_ref("refs/pull/1/head", repo.commit(message="app: tool 2.0"))
    repo.git("checkout", "-q", "main")
    growing_channel.requests.clear()
    assert p.cli("reconcile", "--once")[0] == 0
    code, out, _ = p.cli("changes", "--format", "json")
    (change,) = json.loads(out)
    (env,) = change["report"]["environments"]
    assert env["lock"] == {"path": "team/app.conda-lock.yml", "kind": "conda-lock", "lock_only": True}
    (preview,) = change["previews"]
    assert preview["state"] == "completed"
    assert run_tool(Path(preview["prefix"])) == "2.0"
    assert repodata_requests(growing_channel) == []  # neither the review nor the preview solved
    assert run_tool(p.link("team/app")) == "1.0"  # production untouched


def test_a_locked_build_and_a_lock_review_are_checked_against_the_policy(project, growing_channel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The locked records are the build's "solved records": policy rules hold for them as
    for a solve, in builds and in the CI gate."""
    from tests.support.gitserver import GitRepo, require_git

    require_git()
    repo = GitRepo(tmp_path / "envs-repo")
    p = project({CANONICAL: growing_channel}, sources=[{"git": str(repo.path), "path": "envs"}])
    policy = "packages:\n  deny:\n    - {spec: 'tool >=2', reason: 'tool 2 is not approved yet'}\n"
    repo.write({"envs/team/app.yaml": "dependencies:\n  - tool\n", "envs/team/condaops-policy.yaml": policy})
    assert p.cli("lock", "--dir", str(repo.path))[0] == 0
    repo.commit(message="app, locked, with a policy")
    assert p.cli("reconcile", "--once")[0] == 0
    built = p.status()["team/app"]
    assert built["state"] == "ready" and built["policy"]["checked"]

    repo.git("checkout", "-q", "-b", "update")
    growing_channel.add("2.0")
    assert p.cli("lock", "--dir", str(repo.path))[0] == 0
    repo.commit(message="app: tool 2.0")
    code, out, _ = p.cli("check", "--git", str(repo.path), "--ref", "update", "--base", "main")
    assert code == 1 and "tool 2 is not approved yet" in out  # a blocking rule: the gate fails
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "update")
    growing_channel.requests.clear()
    assert p.cli("reconcile", "--once")[0] == 0
    item = p.status()["team/app"]
    assert (item["state"], item["reason"]) == ("failed", "PolicyViolation")
    assert item["build_id"] == built["build_id"] and run_tool(p.link("team/app")) == "1.0"  # nothing installed
    assert repodata_requests(growing_channel) == []  # checked from the lock: still no solve
