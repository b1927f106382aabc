"""Update pull requests as pure decisions and text: which environments and branches, what
to do with a branch, the pull request's title and body, the forge requests."""

from __future__ import annotations

import pytest

from condaops.reconciler.forge import pulls
from condaops.reconciler.forge.api import Forge
from condaops.reconciler.model import EnvRef
from condaops.reconciler.pkgdiff import Pkg, diff_packages, rattler_compare
from condaops.reconciler.updates import plan, render
from condaops.reconciler.updates.plan import BranchState, Decision, Proposal, Recorded, decide

APP, LIB = EnvRef("team", "app"), EnvRef("team", "lib")


def update(ref: EnvRef, old: str = "1.0", new: str = "2.0", digest: str = "d1") -> plan.EnvUpdate:
    diff = diff_packages([Pkg("tool", old, "0")], [Pkg("tool", new, "0")], rattler_compare)
    return plan.EnvUpdate(ref, f"{ref.name}.yaml", f"{ref.name}.conda-lock.yml", b"lock", digest, {"linux-64": diff})


def test_selected_and_branches() -> None:
    refs = [APP, LIB, EnvRef("ds", "py")]
    assert plan.selected(refs, ["*"]) == refs
    assert plan.selected(refs, ["team/*"]) == [APP, LIB]
    assert plan.selected(refs, ["*/py", "team/app"]) == [APP, EnvRef("ds", "py")]
    assert plan.branch_name(APP, prefix="condaops/update/", group="environment") == "condaops/update/team/app"
    assert plan.branch_name(APP, prefix="bot", group="namespace") == "bot/team"
    grouped = plan.grouped([update(LIB), update(APP)], prefix="bot", group="namespace")
    assert list(grouped) == ["bot/team"] and [u.ref for u in grouped["bot/team"]] == [APP, LIB]


PROPOSAL = Proposal("b", (update(APP),))
OURS, THEIRS = BranchState("c1", ours=True), BranchState("c9", ours=False)

DECISIONS = [
    ("new-branch", PROPOSAL, BranchState(), None, plan.PUSH),
    ("newer-solution", PROPOSAL, OURS, Recorded("open", "old", "c1"), plan.PUSH),
    ("already-proposed", PROPOSAL, OURS, Recorded("open", PROPOSAL.digest, "c1"), plan.KEEP),
    ("reopen-record", PROPOSAL, OURS, Recorded("closed", PROPOSAL.digest, "c1"), plan.OPEN),
    ("branch-deleted", PROPOSAL, BranchState(), Recorded("open", PROPOSAL.digest, "c1"), plan.PUSH),
    ("person-pushed", PROPOSAL, THEIRS, Recorded("open", PROPOSAL.digest, "c1"), plan.HOLD),
    ("person-pushed-nothing-new", None, THEIRS, Recorded("open", "x", "c1"), plan.HOLD),
    ("someone-elses-branch", None, THEIRS, None, plan.KEEP),
    ("nothing-left", None, OURS, Recorded("open", "x", "c1"), plan.CLOSE),
    ("nothing-and-closed", None, OURS, Recorded("closed", "x", "c1"), plan.KEEP),
    ("dismissed", PROPOSAL, OURS, Recorded("closed", PROPOSAL.digest, "c1", PROPOSAL.digest), plan.KEEP),
]


@pytest.mark.parametrize(
    ("proposal", "branch", "recorded", "kind"), [d[1:] for d in DECISIONS], ids=[d[0] for d in DECISIONS]
)
def test_decide(proposal: Proposal | None, branch: BranchState, recorded: Recorded | None, kind: str) -> None:
    decision = decide(proposal, branch, recorded)
    assert decision.kind == kind
    if kind in (plan.HOLD, plan.CLOSE):
        assert decision.message


def test_commits_are_recognised_by_their_trailer() -> None:
    message = render.commit_message(PROPOSAL, "condaops: update team/app")
    assert plan.is_ours(message, "b") and not plan.is_ours(message, "other")
    assert not plan.is_ours("fix by hand\n\nCondaops-Branch: b is mentioned", "b")
    assert isinstance(decide(PROPOSAL, BranchState(), None), Decision)


def test_title_and_body() -> None:
    assert render.title(PROPOSAL) == "condaops: update team/app: tool 1.0 → 2.0"
    two = Proposal("bot/team", (update(APP), update(LIB, "1.0", "3.0")))
    assert render.title(two) == "condaops: update team (2 environments): 1 package"
    body = render.body("envs", two, cooldown=3 * 86400, branch_url="https://forge/tree/bot/team")
    assert body.startswith(
        "<!-- condaops-update source=envs branch=bot/team -->\n### condaops: new locks for `team/app`, `team/lib`"
    )
    assert "(cooldown: versions at least 3 days old)" in body
    assert "| upgraded | `tool` | 1.0=0 | 3.0=0 |" in body
    assert "[bot/team](https://forge/tree/bot/team)" in body
    assert render.age_text(12 * 3600) == "12 hours" and render.age_text(90) == "90 seconds"


GITHUB = Forge("github", "https://api.example.org", "acme/envs")
GITLAB = Forge("gitlab", "https://gitlab.example.org", "acme/envs")
GITEA = Forge("gitea", "https://gitea.example.org", "acme/envs")


def test_pull_request_calls_per_forge() -> None:
    listing = pulls.list_pulls_request(GITHUB, "t", "condaops/update/team/app", "main")
    assert listing.method == "GET" and "head=acme%3Acondaops%2Fupdate%2Fteam%2Fapp" in listing.url
    gl = pulls.create_pull_request(GITLAB, "t", branch="b", base="main", title="T", body="B", labels=["x", "y"])
    assert gl.url == "https://gitlab.example.org/api/v4/projects/acme%2Fenvs/merge_requests"
    assert gl.json == {"source_branch": "b", "target_branch": "main", "title": "T", "description": "B", "labels": "x,y"}
    gt = pulls.create_pull_request(GITEA, "t", branch="b", base="main", title="T", body="B", labels=[3])
    assert gt.json == {"head": "b", "base": "main", "title": "T", "body": "B", "labels": [3]}
    close = pulls.edit_pull_request(GITLAB, "t", 4, close=True)
    assert (close.method, close.json) == ("PUT", {"state_event": "close"})
    assert pulls.edit_pull_request(GITHUB, "t", 4, body="B").json == {"body": "B"}
    assert pulls.add_labels_request(GITHUB, "t", 4, ["x"]).url.endswith("/repos/acme/envs/issues/4/labels")


def test_answers_are_read_per_forge() -> None:
    gh = {"number": 3, "html_url": "u", "state": "closed", "merged": True, "head": {"ref": "b"}}
    assert pulls.pull_of(GITHUB, gh) == pulls.PullInfo(3, "u", "merged", "b")
    gl = {"iid": 5, "web_url": "w", "state": "opened", "source_branch": "b"}
    assert pulls.pull_of(GITLAB, gl) == pulls.PullInfo(5, "w", "open", "b")
    listing = [
        {"number": 1, "state": "open", "head": {"ref": "x"}},
        {"number": 2, "state": "open", "head": {"ref": "b"}},
    ]
    assert pulls.pull_for_branch(GITEA, listing, "b").number == 2  # type: ignore[union-attr]
    assert pulls.label_ids([{"id": 7, "name": "deps"}, {"id": 8, "name": "x"}], ["deps", "nope"]) == {"deps": 7}
