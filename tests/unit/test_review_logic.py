"""Change-request reviews, the pure parts: what the target did, verdicts, comments, which
previews to build or reuse, which preview areas to keep, the solve cache, and the policy
side (policy-only changes, findings, blocked environments)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import pytest

from condaops.config import Settings
from condaops.reconciler.changereqs.compare import (
    REMOVES_EVERYTHING,
    compare_snapshots,
    file_diff,
    target_moves,
    whole_request_notes,
)
from condaops.reconciler.changereqs.previews import areas_to_keep, preview_requests
from condaops.reconciler.changereqs.render import render_report, report_data
from condaops.reconciler.changereqs.review import ReviewInput, review, solve_key
from condaops.reconciler.changereqs.solvecache import SolveCache, Solved, channel_state
from condaops.reconciler.changereqs.summary import PreviewLine, comment_body, ref_key, ref_number, review_verdict
from condaops.reconciler.desired import effective
from condaops.reconciler.model import DesiredEnv, EnvRef, PolicyFile, Rejection, SourceSnapshot
from condaops.reconciler.pkgdiff import Pkg
from condaops.reconciler.spec import Dependency, Spec
from condaops.reconciler.state.review_queries import BuiltSpec, PreviewInfo


def env(name: str, dep: str, ns: str = "team") -> DesiredEnv:
    spec = Spec(channels=("conda-forge",), dependencies=(Dependency(dep),))
    return DesiredEnv(EnvRef(ns, name), spec, "src", f"{ns}/{name}.yaml", "rev")


def snap(*envs: DesiredEnv, revision: str = "rev", rejections=()) -> SourceSnapshot:  # type: ignore[no-untyped-def]
    return SourceSnapshot("src", revision, envs=envs, rejections=tuple(rejections))


# --- compare -----------------------------------------------------------------------------------


def test_only_what_the_request_touches_is_changed_and_the_target_told_apart() -> None:
    base = snap(env("tool", "a"), env("base", "b", ns="ds"), env("other", "c"))
    head = snap(env("tool", "a >=2"), env("base", "b", ns="ds"), env("other", "c"))
    target = snap(env("tool", "a <3"), env("base", "b >=9", ns="ds"))  # moved: tool changed, other removed
    changes = compare_snapshots(base, head)
    assert {str(c.ref): c.kind for c in changes if c.kind != "unchanged"} == {"team/tool": "changed"}
    moves = target_moves(changes, target)
    assert list(moves) == [EnvRef("team", "tool")] and moves[EnvRef("team", "tool")].spec.dependencies[0].text == "a <3"


def test_a_file_already_broken_at_the_merge_base_is_not_the_requests_doing() -> None:
    broken = Rejection(EnvRef("team", "x"), "src", "team/x.yaml", "SpecYamlInvalid", "line 1")
    changes = compare_snapshots(snap(rejections=[broken]), snap(rejections=[broken]))
    assert [c.kind for c in changes] == ["unchanged"]


def test_removing_every_file_is_noted() -> None:
    (note,) = whole_request_notes(snap(env("a", "x"), env("b", "y")), snap())
    assert note.reason == REMOVES_EVERYTHING and "(2)" in note.message


def test_file_diff() -> None:
    text = file_diff("dependencies: [a]\n", "dependencies: [a >=2]\n", "team/a.yaml", "team/a.yaml")
    assert text.splitlines()[:2] == ["--- a/team/a.yaml", "+++ b/team/a.yaml"]
    assert "-dependencies: [a]" in text and "+dependencies: [a >=2]" in text
    assert file_diff(None, "x\n", "n.yaml", "n.yaml").startswith("--- /dev/null")
    long = file_diff("", "".join(f"{i}\n" for i in range(1000)), "x", "x", limit=10)
    assert long.splitlines()[-1].startswith("... (")


# --- verdicts and comments ---------------------------------------------------------------------

REPORT = {"environments": [{"environment": "team/a", "error": None}], "counts": {"changed": 1}}


@pytest.mark.parametrize(
    ("error", "report", "previews", "state", "text"),
    [
        ("MergeBaseMissing: no history", REPORT, [], "failure", "MergeBaseMissing"),
        (None, {"environments": [{"environment": "t/b", "error": "x", "reason": "SolveFailed"}]}, [], "failure", "t/b"),
        (None, REPORT, [PreviewLine("team/a", "building")], "pending", "0 of 1 done"),
        (None, REPORT, [PreviewLine("team/a", "failed", "InstallFailed", "disk full")], "failure", "InstallFailed"),
        (None, REPORT, [PreviewLine("team/a", "completed")], "success", "solves and builds"),
        (None, REPORT, [], "success", "1 changed: every changed environment solves"),
        (None, {"environments": []}, [], "success", "no environment changes"),
    ],
    ids=["error", "unsolvable", "building", "preview-failed", "built", "solved", "nothing"],
)
def test_verdicts(error, report, previews, state, text) -> None:  # type: ignore[no-untyped-def]
    verdict = review_verdict(error=error, report=report, previews=previews)
    assert verdict.state == state and text in verdict.description


def test_the_comment_carries_the_marker_and_escapes_table_cells() -> None:
    verdict = review_verdict(error=None, report=REPORT, previews=[])
    body = comment_body(
        source="envs",
        ref="refs/pull/7/head",
        markdown="### review",
        error=None,
        previews=[PreviewLine("team/a", "failed", "InstallFailed", "a | b")],
        verdict=verdict,
        page_url="https://c.example/change-requests/envs/7",
    )
    assert body.startswith("<!-- condaops-review source=envs ref=refs/pull/7/head -->\n")
    assert "failed: InstallFailed — a \\| b" in body and "(https://c.example/change-requests/envs/7)" in body


@pytest.mark.parametrize(
    ("ref", "number", "key"),
    [
        ("refs/pull/7/head", "7", "7"),
        ("refs/merge-requests/12/head", "12", "12"),
        ("refs/pull/7/merge", "7", "7"),
        ("refs/heads/review/x", None, "heads-review-x"),
    ],
)
def test_ref_numbers(ref: str, number: str | None, key: str) -> None:
    assert (ref_number(ref), ref_key(ref)) == (number, key)


# --- previews ----------------------------------------------------------------------------------


def test_previews_reuse_a_present_build_of_the_same_spec() -> None:
    a, b, c = env("a", "x"), env("b", "y"), env("c", "z")
    built = {
        a.spec.spec_hash: [BuiltSpec("build:4", EnvRef("team", "a"), "team/h-a", {"log": "l"})],
        b.spec.spec_hash: [
            BuiltSpec(
                "preview:9", EnvRef("team", "b"), "previews/src/pull-2/x/team/h-b", {}, ("src", "refs/pull/2/head")
            ),
            BuiltSpec(
                "preview:8", EnvRef("team", "b"), "previews/src/pull-1/y/team/h-b", {}, ("src", "refs/pull/1/head")
            ),
        ],
        c.spec.spec_hash: [BuiltSpec("build:5", EnvRef("team", "c"), "team/gone-c", {})],
    }
    requests = preview_requests(
        [a, b, c], built, change_request=("src", "refs/pull/1/head"), exists=lambda p: "gone" not in p
    )
    reuse = {str(r.ref): r.reuse.origin if r.reuse else None for r in requests}
    assert reuse == {"team/a": "build:4", "team/b": "preview:8", "team/c": None}  # not another request's
    assert "production build 4 of team/a" in requests[0].reuse.message  # type: ignore[union-attr]


def test_areas_kept_are_the_heads_the_busy_and_the_reused() -> None:
    def p(head: str, state: str, prefix: str | None) -> PreviewInfo:
        return PreviewInfo(1, EnvRef("t", "a"), head, "h", state, None, None, prefix, {})

    folder = PurePosixPath("previews/src/pull-1")
    previews = [
        p("new" * 5, "completed", "previews/src/pull-1/oldoldoldold/t/h-a"),
        p("busy" * 4, "building", None),
        p("gone" * 4, "completed", "previews/src/pull-1/gonegonegone/t/h-a"),
    ]
    assert areas_to_keep("new" * 5, previews, folder) == {"newnewnewnew", "oldoldoldold", "busybusybusy"}


# --- the solve cache ---------------------------------------------------------------------------


def test_the_cache_is_bounded_ages_and_counts() -> None:
    now = [0.0]
    cache = SolveCache(limit=2, max_age=10, clock=lambda: now[0])
    cache.put(("a",), Solved({}))
    cache.put(("b",), Solved(error="no"))
    assert cache.get(("a",)) is not None  # a is now the most recent
    cache.put(("c",), Solved({}))
    assert cache.get(("b",)) is None and len(cache) == 2
    now[0] = 11
    assert cache.get(("a",)) is None
    assert (cache.hits, cache.misses) == (1, 2)


def test_channel_state_follows_repodata_content(tmp_path: Path) -> None:
    assert channel_state(tmp_path / "none") == ""
    info = tmp_path / "1.info.json"
    info.write_text('{"url": "http://c/linux-64/repodata.json", "blake2_hash": "aa"}')
    first = channel_state(tmp_path)
    info.write_text('{"url": "http://c/linux-64/repodata.json", "blake2_hash": "aa", "mtime_ns": 5}')
    assert channel_state(tmp_path) == first  # a refetch of the same content
    info.write_text('{"url": "http://c/linux-64/repodata.json", "blake2_hash": "bb"}')
    assert channel_state(tmp_path) != first


# --- policy --------------------------------------------------------------------------------------

DENY_GPL = PolicyFile("condaops-policy.yaml", b"licenses: {deny: [GPL-3.0-only]}\n")
WARN_GPL = PolicyFile("condaops-policy.yaml", b"licenses: {deny: [GPL-3.0-only], level: warning}\n")
BROKEN = PolicyFile("condaops-policy.yaml", b"licenses: {level: fatal}\n")


def with_policy(snapshot: SourceSnapshot, *files: PolicyFile) -> SourceSnapshot:
    return effective(replace(snapshot, policy_files=files), Settings())


def test_a_policy_change_alone_is_a_change_of_its_own_kind() -> None:
    base = with_policy(snap(env("tool", "a"), env("other", "b")))
    head = with_policy(snap(env("tool", "a >=2"), env("other", "b")), DENY_GPL)
    kinds = {str(c.ref): c.kind for c in compare_snapshots(base, head)}
    assert kinds == {"team/tool": "changed", "team/other": "policy"}
    same = with_policy(snap(env("tool", "a"), env("other", "b")), DENY_GPL)
    assert {
        c.kind for c in compare_snapshots(same, with_policy(snap(env("tool", "a"), env("other", "b")), DENY_GPL))
    } == {"unchanged"}


def test_a_target_that_changed_only_the_policy_moved() -> None:
    base = with_policy(snap(env("tool", "a")))
    changes = compare_snapshots(base, with_policy(snap(env("tool", "a >=2"))))
    assert target_moves(changes, base) == {}
    moved = target_moves(changes, with_policy(snap(env("tool", "a")), DENY_GPL))
    assert list(moved) == [EnvRef("team", "tool")]


GPL_RECORD = SimpleNamespace(
    name="readline",
    version="8.2",
    build="h0",
    channel="https://conda.anaconda.org/conda-forge",
    license="GPL-3.0-only",
    size=1,
)


def cached(settings: Settings, cache: SolveCache, snapshot: SourceSnapshot, repodata: Path) -> None:
    """File a solve of every environment of ``snapshot`` in ``cache``: readline, GPL-3.0-only."""
    for e in effective(snapshot, settings).envs:
        packages = {"linux-64": [Pkg("readline", "8.2", "h0", "https://conda.anaconda.org/conda-forge")]}
        answer = Solved(packages, records={"linux-64": [GPL_RECORD]})
        cache.put(solve_key(e.spec.spec_hash, settings, repodata), answer)


def test_policies_are_checked_on_cached_solves_never_cached_with_them(tmp_path: Path) -> None:
    settings, cache, repodata = Settings(store=tmp_path), SolveCache(), tmp_path / "repodata"
    base = snap(env("tool", "readline"), revision="base")
    cached(settings, cache, base, repodata)

    def reviewed(*files: PolicyFile):  # type: ignore[no-untyped-def]
        head = replace(snap(env("tool", "readline"), revision="head"), policy_files=files)
        return review(settings, ReviewInput("refs/pull/1/head", base, base, head), cache=cache, repodata=repodata)

    denied = reviewed(DENY_GPL)
    [e] = denied.changed
    assert e.change.kind == "policy" and e.blocked and denied.has_violations and not denied.has_errors
    assert [(v.rule, v.level, v.origin, v.platform) for v in e.policy] == [
        ("license-deny", "error", "condaops-policy.yaml", "linux-64")
    ]
    warned = reviewed(WARN_GPL)  # the same solve, another policy: checked again, not answered from the cache
    assert not warned.has_violations and [v.level for v in warned.changed[0].policy] == ["warning"]
    broken = reviewed(BROKEN)
    assert broken.policy_invalid and broken.changed[0].blocked
    assert cache.misses == 0 and cache.hits == 3  # nothing solved


def test_a_target_that_moved_the_policy_shows_what_it_finds_on_the_head(tmp_path: Path) -> None:
    settings, cache, repodata = Settings(store=tmp_path), SolveCache(), tmp_path / "repodata"
    base = snap(env("tool", "zlib"), revision="base")
    head = snap(env("tool", "readline"), revision="head")
    target = replace(snap(env("tool", "zlib"), revision="target"), policy_files=(DENY_GPL,))
    cached(settings, cache, base, repodata)
    cached(settings, cache, head, repodata)
    report = review(settings, ReviewInput("refs/pull/1/head", target, base, head), cache=cache, repodata=repodata)
    [e] = report.changed
    assert e.change.kind == "changed" and not e.blocked  # the head's own policy: none
    assert e.target is not None and "changed the policy that applies to `team/tool.yaml`" in e.target.message
    assert [(v.rule, v.blocking) for v in e.target.policy] == [("license-deny", True)]
    assert "Against the target's policy:" in render_report(report)
    assert review_verdict(error=None, report=report_data(report), previews=[]).state == "success"


def test_policy_findings_in_the_review_markdown_json_and_verdict(tmp_path: Path) -> None:
    settings, cache, repodata = Settings(store=tmp_path), SolveCache(), tmp_path / "repodata"
    base = snap(env("tool", "zlib"), env("other", "readline"), revision="base")
    head = replace(snap(env("tool", "readline"), env("other", "readline"), revision="head"), policy_files=(DENY_GPL,))
    cached(settings, cache, base, repodata)
    cached(settings, cache, head, repodata)
    report = review(settings, ReviewInput("refs/pull/1/head", base, base, head), cache=cache, repodata=repodata)
    md = render_report(report)
    assert "1 changed, 1 checked again (policy changed)." in md
    assert "**Policy: 2 environment(s) break a blocking rule.**" in md
    assert "#### `team/other` — policy changed (`team/other.yaml`)" in md
    assert (
        "- ❌ `condaops-policy.yaml` **license-deny**: readline 8.2 h0: licence 'GPL-3.0-only' is denied (linux-64)"
        in md
    )
    data = report_data(report)
    assert data["policy_violations"] and not data["policy_invalid"] and data["counts"] == {"changed": 1, "policy": 1}
    assert [(e["environment"], e["blocked"], [f["rule"] for f in e["policy"]]) for e in data["environments"]] == [
        ("team/other", True, ["license-deny"]),
        ("team/tool", True, ["license-deny"]),
    ]
    verdict = review_verdict(error=None, report=data, previews=[])
    assert verdict.state == "failure"
    assert verdict.description.startswith("team/other breaks policy rule license-deny (condaops-policy.yaml)")
    assert "(and 1 more environment(s))" in verdict.description
    passing = {**data, "environments": [{**e, "policy": []} for e in data["environments"]]}
    passed = review_verdict(error=None, report=passing, previews=[])
    assert passed.state == "success" and passed.description.startswith("1 changed, 1 policy changed: ")


@pytest.mark.parametrize(
    ("findings", "state", "text"),
    [
        (
            [{"rule": "deny", "level": "error", "origin": "p.yaml", "message": "x matches denied 'x'"}],
            "failure",
            "deny",
        ),
        (
            [{"rule": "max-size", "level": "warning", "origin": "p.yaml", "message": "big"}],
            "success",
            "1 changed: every changed environment solves; 1 policy warning",
        ),
        (
            [{"rule": "invalid", "level": "error", "origin": "p.yaml", "message": "p.yaml: key 'size.max': bad"}],
            "failure",
            "team/a: a policy file cannot be read: p.yaml: key 'size.max'",
        ),
    ],
    ids=["blocking", "warning", "invalid"],
)
def test_policy_verdicts(findings, state, text) -> None:  # type: ignore[no-untyped-def]
    report = {"environments": [{"environment": "team/a", "error": None, "policy": findings}], "counts": {"changed": 1}}
    verdict = review_verdict(error=None, report=report, previews=[])
    assert verdict.state == state and text in verdict.description
