"""``condaops check`` where CI runs it: clones and CI-style checkouts made with the real
``git`` from a ``git daemon`` on 127.0.0.1 — detached ``HEAD``, the target only as
``refs/remotes/origin/main``, ``--depth 1``, GitHub's ``refs/pull/N/merge``.

``check`` is the gate: 0 when every change solves and breaks no blocking policy rule, 1 on
a blocking rule, 2 when something is broken; ``plan --git`` keeps plan's 0 / 1 / 2."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import ALIAS
from tests.support.gitserver import GitRepo, require_git, serve_git_daemon

pytestmark = pytest.mark.integration


def tool(constraint: str) -> str:
    return f"channels: [testchan]\ndependencies: [{constraint}]\n"


def run_git(cwd: Path, *args: str) -> str:
    done = subprocess.run([require_git(), *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@dataclass
class Forge:
    """The origin repository (served by git daemon) and a project configured for it."""

    origin: GitRepo
    url: str
    project: object
    work: Path

    def ci_checkout(self, name: str, ref: str, *, depth: int | None = None, url: str | None = None) -> Path:
        """What actions/checkout leaves: a clone with ``ref`` checked out as a detached HEAD."""
        clone = self.work / name
        shallow = [f"--depth={depth}"] if depth else []
        run_git(self.work, "clone", "-q", *shallow, url or self.url, str(clone))
        run_git(clone, "fetch", "-q", *shallow, "origin", ref)
        run_git(clone, "checkout", "-q", "--detach", "FETCH_HEAD")
        return clone

    def check(self, *args: str) -> tuple[int, str, str]:
        return self.project.cli("check", *args)  # type: ignore[attr-defined]


@pytest.fixture
def forge(project, tool_channel, tmp_path: Path) -> Iterator[Forge]:
    require_git()
    root = tmp_path / "served"
    origin = GitRepo(root / "envs-repo")
    origin.commit({"envs/ds/base.yaml": tool("tool=1.0"), "envs/team/tool.yaml": tool("tool=1.0"), "README": "x"})
    with serve_git_daemon(root) as base:
        url = f"{base}/envs-repo"
        p = project({ALIAS + "testchan": tool_channel}, sources=[{"git": url, "branch": "main", "path": "envs"}])
        work = tmp_path / "ci"
        work.mkdir()
        yield Forge(origin, url, p, work)


def open_pull_request(origin: GitRepo, number: int, files: dict[str, str | None], *, history: int = 1) -> str:
    """A PR branch from main with ``history`` commits, then main moves on (ds/base)."""
    origin.git("checkout", "-q", "-b", f"pr{number}", "main")
    for i in range(history - 1):
        origin.commit({f"notes/{i}.txt": str(i)}, f"pr {number} step {i}")
    sha = origin.commit(files, f"pr {number}")
    origin.update_ref(f"refs/pull/{number}/head", sha)
    origin.git("checkout", "-q", "main")
    for i in range(3):
        origin.commit({"envs/ds/base.yaml": tool("tool=2.0") if i == 2 else tool("tool=1.0") + f"# {i}\n"}, "main")
    return sha


def changed(out: str) -> dict[str, str]:
    return {e["environment"]: e["change"] for e in json.loads(out)["environments"]}


def test_a_detached_checkout_with_origin_main(forge: Forge) -> None:
    open_pull_request(forge.origin, 1, {"envs/team/tool.yaml": tool("tool=2.0")})
    clone = forge.ci_checkout("plain", "refs/pull/1/head")
    for base in ([], ["--base", "origin/main"], ["--base", "refs/remotes/origin/main"]):
        code, out, err = forge.check("--git", str(clone), "--ref", "HEAD", *base, "--format", "json")
        assert code == 0, err  # changes that solve pass the gate
        assert changed(out) == {"team/tool": "changed"}  # main's ds/base changes are not the PR's
        assert json.loads(out)["target_revision"] == forge.origin.head("main")
    code, md, err = forge.check("--git", str(clone))  # every default: HEAD against origin/main, path from config
    assert code == 0 and "| upgraded | `tool` | 1.0=0 | 2.0=0 |" in md
    assert "1 changed" in err


def test_a_shallow_clone_is_deepened_from_its_remote(forge: Forge) -> None:
    open_pull_request(forge.origin, 1, {"envs/team/tool.yaml": tool("tool=2.0")}, history=4)
    clone = forge.ci_checkout("shallow", "refs/pull/1/head", depth=1)
    assert run_git(clone, "rev-parse", "--is-shallow-repository") == "true"
    code, out, err = forge.check("--git", str(clone), "--no-fetch", "--format", "json")
    assert code == 2 and "HistoryTooShallow" not in out
    assert "this clone is shallow" in err and "fetch-depth: 0" in err and "1 commit(s)" in err
    code, out, err = forge.check("--git", str(clone), "--format", "json")
    assert code == 0, err
    assert changed(out) == {"team/tool": "changed"}
    assert run_git(clone, "merge-base", "HEAD", "origin/main")  # real git agrees the history is there now


def test_deepening_a_clone_of_a_file_url_leaves_a_clone_git_can_read(forge: Forge) -> None:
    """A runner that clones from a path on disk (``file://``): deepened by the clone's own
    git, the clone stays whole — real git reads its history and finds the merge base."""
    open_pull_request(forge.origin, 1, {"envs/team/tool.yaml": tool("tool=2.0")}, history=4)
    clone = forge.ci_checkout("file-url", "refs/pull/1/head", depth=1, url=forge.origin.path.as_uri())
    run_git(clone, "fetch", "-q", "--depth=1", "origin", "main:refs/remotes/origin/main")
    assert len(run_git(clone, "log", "--format=%H", "HEAD").split()) == 1  # the merge base is not here yet
    code, out, err = forge.check("--git", str(clone), "--base", "origin/main", "--format", "json")
    assert code == 0, err
    assert changed(out) == {"team/tool": "changed"}
    assert len(run_git(clone, "log", "--format=%H", "HEAD").split()) == 5  # 4 PR commits + their base
    assert run_git(clone, "merge-base", "HEAD", "origin/main")
    run_git(clone, "fsck", "--connectivity-only")  # check=True: a broken clone fails here


def test_githubs_merge_ref(forge: Forge) -> None:
    head = open_pull_request(forge.origin, 1, {"envs/team/tool.yaml": tool("tool=2.0")})
    forge.origin.git("checkout", "-q", "--detach", "main")
    forge.origin.git("merge", "-q", "--no-ff", "-m", "Merge pull request 1", head)
    forge.origin.update_ref("refs/pull/1/merge", forge.origin.head())
    forge.origin.git("checkout", "-q", "main")
    clone = forge.ci_checkout("merge", "refs/pull/1/merge", depth=1)
    code, out, err = forge.check("--git", str(clone), "--format", "json")
    assert code == 0, err
    assert changed(out) == {"team/tool": "changed"}


def test_no_environment_file_at_the_path_is_an_error_with_a_hint(forge: Forge) -> None:
    open_pull_request(forge.origin, 1, {"envs/team/tool.yaml": tool("tool=2.0")})
    clone = forge.ci_checkout("wrong-path", "refs/pull/1/head")
    code, out, err = forge.check("--git", str(clone), "--path", "environments")
    assert code == 2 and out == ""
    assert "no environment file in 'environments'" in err and "environment files are under: envs" in err
    code, _, err = forge.check("--git", str(clone), "--source", "nope")
    assert code == 2 and "no source named 'nope'" in err


def test_plan_git_takes_the_path_from_the_matching_source(forge: Forge) -> None:
    """The old spelling, as the issue tried it: a URL and a PR ref, no --path."""
    open_pull_request(forge.origin, 1, {"envs/team/tool.yaml": tool("tool=2.0")})
    code, out, err = forge.project.cli("plan", "--git", forge.url, "--ref", "refs/pull/1/head", "--format", "json")  # type: ignore[attr-defined]
    assert code == 1, err
    assert changed(out) == {"team/tool": "changed"}


def test_an_unknown_ref_names_what_the_clone_has(forge: Forge) -> None:
    clone = forge.ci_checkout("refs", "main")
    code, _, err = forge.check("--git", str(clone), "--base", "origin/nope")
    assert code == 2 and "--base origin/nope does not name a commit" in err and "refs/remotes/origin/main" in err
    code, out, _ = forge.check("--git", str(clone))
    assert code == 0 and "No environment changes." in out


def test_a_blocking_policy_rule_fails_the_gate(forge: Forge) -> None:
    """A policy file alone changes nothing in the environment files: its environments are
    checked again (``policy``); a blocking rule exits 1 (``plan --git``: broken, 2), a
    warning passes, an invalid file exits 2."""
    deny = "packages:\n  deny:\n    - {spec: 'tool <2', reason: 'tool 1 leaks'}\n"
    open_pull_request(forge.origin, 1, {"envs/team/condaops-policy.yaml": deny})
    clone = forge.ci_checkout("policy", "refs/pull/1/head")
    code, out, err = forge.check("--git", str(clone), "--format", "json")
    assert code == 1, err
    report = json.loads(out)
    assert changed(out) == {"team/tool": "policy"} and report["policy_violations"] and not report["has_errors"]
    [finding] = report["environments"][0]["policy"]
    assert (finding["rule"], finding["origin"]) == ("deny", "team/condaops-policy.yaml")
    assert "tool 1.0 0 matches denied 'tool <2' (tool 1 leaks)" in finding["message"]
    code, md, err = forge.check("--git", str(clone))
    assert code == 1 and "**Policy: 1 environment(s) break a blocking rule.**" in md
    assert "1 break a blocking policy rule" in err
    code, _, err = forge.project.cli("plan", "--git", str(clone), "--format", "json")  # type: ignore[attr-defined]
    assert code == 2, err

    warn = deny.replace("reason: 'tool 1 leaks'", "reason: 'tool 1 leaks', level: warning")
    open_pull_request(forge.origin, 2, {"envs/team/condaops-policy.yaml": warn})
    code, md, err = forge.check("--git", str(forge.ci_checkout("warning", "refs/pull/2/head")))
    assert code == 0, err
    assert "- ⚠️ `team/condaops-policy.yaml` **deny**" in md

    open_pull_request(forge.origin, 3, {"envs/condaops-policy.yaml": "size: {max: lots}\n"})
    code, out, err = forge.check("--git", str(forge.ci_checkout("invalid", "refs/pull/3/head")), "--format", "json")
    assert code == 2, err
    assert json.loads(out)["policy_invalid"] and "condaops-policy.yaml: key 'size.max'" in out
