"""Change-request reviews, the pure parts: what the target did, verdicts, comments, which
previews to build or reuse, which preview areas to keep, and the solve cache."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from condaops.reconciler.changereqs.compare import (
    REMOVES_EVERYTHING,
    compare_snapshots,
    file_diff,
    target_moves,
    whole_request_notes,
)
from condaops.reconciler.changereqs.previews import areas_to_keep, preview_requests
from condaops.reconciler.changereqs.solvecache import SolveCache, Solved, channel_state
from condaops.reconciler.changereqs.summary import PreviewLine, comment_body, ref_key, ref_number, review_verdict
from condaops.reconciler.model import DesiredEnv, EnvRef, Rejection, SourceSnapshot
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
