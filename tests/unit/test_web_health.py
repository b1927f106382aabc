"""Sync and health of environments (web.health) and the overview's filters and order
(web.overview): pure functions over recorded data."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from condaops.reconciler.model import EnvRef
from condaops.reconciler.state.queries import BuildInfo, EnvInfo
from condaops.web.health import (
    DEGRADED,
    HEALTHY,
    HELD,
    LOCKED,
    MISSING,
    OUT_OF_SYNC,
    PROGRESSING,
    REMOVED_KEPT,
    SYNCED,
)
from condaops.web.overview import Filters, attention_first, choices, health_counts, sync_counts
from condaops.web.views import env_row
from tests.support.clock import T0


def build(build_id: int, state: str, spec: str, *, retryable: bool = False, lock: str | None = None) -> BuildInfo:
    return BuildInfo(
        build_id=build_id,
        ref=EnvRef("team", "web"),
        spec_hash=spec,
        state=state,
        attempt=1,
        reason="SolveFailed" if state == "failed" else None,
        message=None,
        retryable=retryable,
        prefix=None,
        source="envs",
        source_revision=f"rev{build_id}",
        source_path="team/web.yaml",
        queued_at=T0 + timedelta(minutes=build_id),
        started_at=T0 + timedelta(minutes=build_id, seconds=5) if state != "queued" else None,
        finished_at=T0 + timedelta(minutes=build_id, seconds=65) if state in ("completed", "failed") else None,
        collected_at=None,
        lock_path=lock,
    )


def env(
    current: BuildInfo | None,
    latest: BuildInfo | None,
    *,
    desired: str = "s2",
    ns: str = "team",
    name: str = "web",
    **kw: object,
) -> EnvInfo:
    info = EnvInfo(
        ref=EnvRef(ns, name),
        source="envs",
        path=f"{ns}/{name}.yaml",
        source_revision="revN",
        desired_spec_hash=desired,
        current_build_id=current.build_id if current else None,
        pinned_spec_hash=None,
        retired=False,
        rejection_reason=None,
        rejection_message=None,
        warnings=(),
        current=current,
        latest=latest,
    )
    return replace(info, **kw)  # type: ignore[arg-type]


OLD = build(1, "completed", "s1")
NEW = build(2, "completed", "s2")
QUEUED = build(3, "queued", "s2")
RUNNING = build(3, "building", "s2")
FAILED = build(3, "failed", "s2")
RETRYING = build(3, "failed", "s2", retryable=True)
LOCKED_BUILD = build(2, "completed", "s2", lock="team/web/pixi.lock")
DONE = NEW.finished_at

CASES = [
    ("synced", env(NEW, NEW), SYNCED, HEALTHY, (), DONE, "rev2", 2),
    ("first-build-queued", env(None, QUEUED), OUT_OF_SYNC, PROGRESSING, (), QUEUED.queued_at, "rev3", 3),
    ("update-building", env(OLD, RUNNING), OUT_OF_SYNC, PROGRESSING, (), RUNNING.started_at, "rev3", 3),
    ("update-failed", env(OLD, FAILED), OUT_OF_SYNC, DEGRADED, (), FAILED.finished_at, "rev3", 3),
    ("first-build-failed", env(None, FAILED), OUT_OF_SYNC, DEGRADED, (), FAILED.finished_at, "rev3", 3),
    ("retry-pending", env(OLD, RETRYING), OUT_OF_SYNC, PROGRESSING, (), FAILED.finished_at, "rev3", 3),
    (
        "held-by-rollback",
        env(OLD, NEW, pinned_spec_hash="s2"),
        OUT_OF_SYNC,
        HEALTHY,
        (HELD,),
        OLD.finished_at,
        "revN",
        1,
    ),
    (
        "removed-kept",
        env(NEW, NEW, removed_at=T0, removed_revision="g1"),
        OUT_OF_SYNC,
        HEALTHY,
        (REMOVED_KEPT,),
        T0,
        "g1",
        2,
    ),
    ("rejected-file", env(OLD, OLD, rejection_reason="SpecInvalid"), OUT_OF_SYNC, DEGRADED, (), None, "revN", 1),
    ("never-built", env(None, None), OUT_OF_SYNC, MISSING, (), None, "revN", None),
    ("locked", env(LOCKED_BUILD, LOCKED_BUILD), SYNCED, HEALTHY, (LOCKED,), DONE, "rev2", 2),
]


@pytest.mark.parametrize(
    ("info", "sync", "health", "badges", "since", "revision", "build_id"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_sync_and_health(info, sync, health, badges, since, revision, build_id) -> None:  # type: ignore[no-untyped-def]
    status = env_row(info, retries=1).status

    assert (status.sync, status.health, status.badges) == (sync, health, badges)
    assert (status.since, status.revision, status.build_id) == (since, revision, build_id)


def test_overview_lists_what_is_broken_first_and_filters() -> None:
    rows = [
        env_row(env(NEW, NEW, ns="a", name="ok"), retries=0),
        env_row(env(OLD, build(3, "building", "s2"), ns="a", name="moving"), retries=0),
        env_row(env(OLD, build(4, "failed", "s2"), ns="b", name="broken"), retries=0),
        env_row(env(OLD, NEW, ns="b", name="held", pinned_spec_hash="s2"), retries=0),
        env_row(env(None, None, ns="c", name="nothing"), retries=0),
    ]

    assert [r.ref.name for r in attention_first(rows, Filters())] == ["broken", "nothing", "moving", "held", "ok"]
    assert sync_counts(rows) == {SYNCED: 1, OUT_OF_SYNC: 4}
    assert health_counts(rows) == {HEALTHY: 2, PROGRESSING: 1, DEGRADED: 1, MISSING: 1}
    by_ns = Filters.of({"namespace": "b"})
    assert [r.ref.name for r in attention_first(rows, by_ns)] == ["broken", "held"]
    assert [r.ref.name for r in attention_first(rows, Filters.of({"reason": "SolveFailed"}))] == ["broken"]
    assert [r.ref.name for r in attention_first(rows, Filters.of({"health": "Healthy", "sync": "Synced"}))] == ["ok"]
    assert attention_first(rows, Filters.of({"source": "elsewhere"})) == []
    assert by_ns.query(offset=50) == "namespace=b&offset=50" and not Filters.of({"state": " "}).active
    assert choices(rows).reasons == ["RolledBack", "SolveFailed", "UpToDate"]
