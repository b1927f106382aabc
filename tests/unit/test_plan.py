"""plan(): the pure diff of desired against recorded state."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from condaops.reconciler.model import (
    DesiredEnv,
    EnvRef,
    Policy,
    RecordedBuild,
    RecordedEnv,
    Rejection,
    SourceSnapshot,
)
from condaops.reconciler.plan import (
    BUILD,
    HOLD,
    NOOP,
    REJECT,
    RETIRE,
    WAIT,
    backoff_delay,
    plan,
    render_plan,
)
from condaops.reconciler.spec import Dependency, Spec

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
REF = EnvRef("team", "ml")
SPEC_A = Spec(channels=("conda-forge",), dependencies=(Dependency("python 3.12.*"),))
SPEC_B = Spec(channels=("conda-forge",), dependencies=(Dependency("python 3.13.*"),))
A, B = SPEC_A.spec_hash, SPEC_B.spec_hash


def desired(spec: Spec = SPEC_A, ref: EnvRef = REF, source: str = "src") -> DesiredEnv:
    return DesiredEnv(ref=ref, spec=spec, source=source, path=f"{ref.namespace}/{ref.name}.yaml", revision="r1")


def snap(*envs: DesiredEnv, source: str = "src", rejections=(), error: str | None = None) -> SourceSnapshot:
    return SourceSnapshot(
        source=source,
        revision="r1",
        envs=envs,
        rejections=tuple(rejections),
        error=error,
        error_reason="SourceUnreadable" if error else None,
    )


def build(
    spec_hash: str,
    state: str,
    attempt: int = 1,
    *,
    retryable: bool = False,
    reason: str | None = None,
    finished: datetime | None = NOW,
    build_id: int = 7,
) -> RecordedBuild:
    return RecordedBuild(build_id, spec_hash, state, attempt, reason, retryable, finished)


def rec(current: str | None = A, latest: RecordedBuild | None = None, **kw) -> RecordedEnv:
    if latest is None and current is not None:
        latest = build(current, "completed")
    return RecordedEnv(ref=REF, source="src", current_spec_hash=current, latest=latest, **kw)


POLICY = Policy(prune=False, retries=3, backoff=30, backoff_max=600)

CASES = [
    # id, snapshots, recorded env (or None), policy, expected (kind, reason)
    ("new", [snap(desired())], None, POLICY, (BUILD, "NewEnvironment")),
    ("up-to-date", [snap(desired())], rec(), POLICY, (NOOP, "UpToDate")),
    ("spec-changed", [snap(desired(SPEC_B))], rec(), POLICY, (BUILD, "SpecChanged")),
    ("prefix-gone", [snap(desired())], rec(prefix_present=False), POLICY, (BUILD, "BuildMissing")),
    ("in-progress", [snap(desired(SPEC_B))], rec(latest=build(B, "building")), POLICY, (NOOP, "BuildInProgress")),
    ("queued", [snap(desired(SPEC_B))], rec(latest=build(B, "queued")), POLICY, (NOOP, "BuildInProgress")),
    (
        "retry-due",
        [snap(desired(SPEC_B))],
        rec(latest=build(B, "failed", 1, retryable=True, finished=NOW - timedelta(seconds=31))),
        POLICY,
        (BUILD, "RetryScheduled"),
    ),
    (
        "retry-waiting",
        [snap(desired(SPEC_B))],
        rec(latest=build(B, "failed", 2, retryable=True, finished=NOW - timedelta(seconds=31))),
        POLICY,
        (WAIT, "RetryPending"),
    ),
    (
        "retries-exhausted",
        [snap(desired(SPEC_B))],
        rec(latest=build(B, "failed", 4, retryable=True, reason="ChannelUnreachable")),
        POLICY,
        (HOLD, "RetriesExhausted"),
    ),
    (
        "stalled-failure",
        [snap(desired(SPEC_B))],
        rec(latest=build(B, "failed", 1, retryable=False, reason="SolveFailed")),
        POLICY,
        (HOLD, "SolveFailed"),
    ),
    (
        "failed-older-spec-then-reverted",
        [snap(desired(SPEC_A))],
        rec(latest=build(B, "failed", 1, reason="SolveFailed")),
        POLICY,
        (NOOP, "UpToDate"),
    ),
    (
        "new-env-failed-first",
        [snap(desired())],
        rec(current=None, latest=build(A, "failed", 1, reason="SolveFailed")),
        POLICY,
        (HOLD, "SolveFailed"),
    ),
    ("canceled", [snap(desired(SPEC_B))], rec(latest=build(B, "canceled")), POLICY, (BUILD, "Rebuild")),
    (
        "rolled-back",
        [snap(desired(SPEC_B))],
        rec(pinned_spec_hash=B, latest=build(B, "completed")),
        POLICY,
        (NOOP, "RolledBack"),
    ),
    (
        "rollback-pin-released-by-new-spec",
        [snap(desired(SPEC_B))],
        rec(pinned_spec_hash="x" * 64),
        POLICY,
        (BUILD, "SpecChanged"),
    ),
    ("retired-comes-back", [snap(desired())], rec(retired=True), POLICY, (BUILD, "NewEnvironment")),
    ("file-removed-kept", [snap(desired(ref=EnvRef("team", "other")))], rec(), POLICY, (NOOP, "SourceRemovedKept")),
    (
        "file-removed-pruned",
        [snap(desired(ref=EnvRef("team", "other")))],
        rec(),
        Policy(prune=True),
        (RETIRE, "SourceRemoved"),
    ),
    ("source-empty-never-retires", [snap()], rec(), Policy(prune=True), (NOOP, "SourceEmpty")),
    (
        "source-empty-allowed",
        [snap()],
        rec(),
        Policy(prune=True, allow_empty=frozenset({"src"})),
        (RETIRE, "SourceRemoved"),
    ),
    (
        "source-unreadable-never-retires",
        [snap(error="permission denied")],
        rec(),
        Policy(prune=True),
        (NOOP, "SourceUnreadable"),
    ),
    ("source-no-longer-configured", [snap(source="other")], rec(), Policy(prune=True), (NOOP, "SourceNotConfigured")),
    (
        "invalid-file",
        [snap(rejections=[Rejection(REF, "src", "team/ml.yaml", "SpecInvalid", "bad")])],
        rec(),
        POLICY,
        (REJECT, "SpecInvalid"),
    ),
    (
        "duplicate-across-sources",
        [snap(desired()), snap(desired(source="two"), source="two")],
        None,
        POLICY,
        (REJECT, "DuplicateEnvironment"),
    ),
]


@pytest.mark.parametrize("snaps, recorded, policy, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan_decisions(snaps, recorded, policy, expected):
    result = plan(snaps, {REF: recorded} if recorded else {}, policy=policy, now=NOW)
    (action,) = [a for a in result.actions if a.ref == REF]
    assert (action.kind, action.reason) == expected


def test_retry_carries_the_next_attempt_number_and_wait_time():
    failed = rec(latest=build(B, "failed", 2, retryable=True, finished=NOW))
    (wait,) = plan([snap(desired(SPEC_B))], {REF: failed}, policy=POLICY, now=NOW).actions
    assert wait.not_before == NOW + timedelta(seconds=60)
    (retry,) = plan([snap(desired(SPEC_B))], {REF: failed}, policy=POLICY, now=NOW + timedelta(seconds=60)).actions
    assert (retry.kind, retry.attempt) == (BUILD, 3)


@pytest.mark.parametrize(
    "attempt, expected", [(1, 30), (2, 60), (3, 120), (5, 480), (6, 600), (20, 600)], ids=lambda v: str(v)
)
def test_backoff_is_exponential_and_capped(attempt, expected):
    assert backoff_delay(attempt, POLICY) == expected


def test_unreadable_source_does_not_stop_other_sources():
    other = desired(ref=EnvRef("ops", "tools"), source="two")
    result = plan([snap(error="gone"), snap(other, source="two")], {REF: rec()}, policy=Policy(prune=True), now=NOW)
    kinds = {str(a.ref): (a.kind, a.reason) for a in result.actions}
    assert kinds == {"team/ml": (NOOP, "SourceUnreadable"), "ops/tools": (BUILD, "NewEnvironment")}
    assert result.notes == ("src: SourceUnreadable: gone",)


def test_duplicate_names_both_files():
    result = plan([snap(desired()), snap(desired(source="two"), source="two")], {}, policy=POLICY, now=NOW)
    (action,) = result.actions
    assert "src:team/ml.yaml" in action.message and "two:team/ml.yaml" in action.message


def test_plan_is_pure_and_deterministic():
    snaps = [snap(desired(), desired(SPEC_B, ref=EnvRef("a", "b")))]
    first = plan(snaps, {}, policy=POLICY, now=NOW)
    second = plan(snaps, {}, policy=POLICY, now=NOW)
    assert first == second
    assert [str(a.ref) for a in first.actions] == ["a/b", "team/ml"]


def test_no_changes_renders_and_reports_no_changes():
    result = plan([snap(desired())], {REF: rec()}, policy=POLICY, now=NOW)
    assert not result.has_changes
    assert render_plan(result).endswith("0 to change, 1 unchanged.")
    assert json.loads(render_plan(result, "json"))["changes"] is False
    assert "No changes." in render_plan(result, "markdown")


def test_changes_render_in_every_format():
    result = plan([snap(desired())], {}, policy=POLICY, now=NOW)
    assert result.has_changes
    text = render_plan(result)
    assert text.startswith("build   team/ml  NewEnvironment")
    data = json.loads(render_plan(result, "json"))
    assert data["actions"][0] == {
        "environment": "team/ml",
        "action": "build",
        "reason": "NewEnvironment",
        "message": "team/ml.yaml: new environment",
        "spec_hash": A,
        "path": "team/ml.yaml",
        "attempt": 1,
        "not_before": None,
    }
    assert "| `team/ml` | build | NewEnvironment |" in render_plan(result, "markdown")


RULES = '{"licenses":[]}'  # any policy text: plan compares hashes only
RULES_HASH = DesiredEnv(REF, SPEC_A, "src", "p", "r", policy=RULES).policy_hash


def checked(state: str, reason: str | None = None, policy_hash: str | None = RULES_HASH) -> RecordedEnv:
    latest = RecordedBuild(7, A, state, 1, reason, False, NOW, policy_hash)
    return RecordedEnv(ref=REF, source="src", current_spec_hash=A, latest=latest)


@pytest.mark.parametrize(
    ("policy", "recorded", "expected"),
    [
        (RULES, checked("completed"), (NOOP, "UpToDate")),
        (None, checked("completed", policy_hash=None), (NOOP, "UpToDate")),  # no policy anywhere: nothing rebuilds
        (RULES, checked("completed", policy_hash=None), (BUILD, "PolicyChanged")),  # a policy was added
        (None, checked("completed"), (BUILD, "PolicyChanged")),  # the policy was removed
        (RULES, checked("failed", "PolicyViolation"), (HOLD, "PolicyViolation")),
        ('{"other":1}', checked("failed", "PolicyViolation"), (BUILD, "PolicyChanged")),
        ('{"other":1}', checked("failed", "PolicyInvalid"), (BUILD, "PolicyChanged")),
        ('{"other":1}', checked("failed", "SolveFailed"), (HOLD, "SolveFailed")),  # the policy cannot fix it
        ('{"other":1}', checked("building"), (NOOP, "BuildInProgress")),
    ],
    ids=["same", "none", "added", "removed", "held", "violation-fixed", "invalid-fixed", "solve-failed", "running"],
)
def test_policy_changes(policy, recorded, expected):
    env = DesiredEnv(REF, SPEC_A, "src", "team/ml.yaml", "r1", policy=policy)
    (action,) = plan([snap(env)], {REF: recorded}, policy=POLICY, now=NOW).actions
    assert (action.kind, action.reason) == expected
