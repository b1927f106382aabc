"""Reconcile passes cost what changed; the periodic full check still finds what changed on
disk behind the state DB's back (a deleted prefix, a broken link, a link moved by hand).

Real directory source, real store folders and links, the real state DB (SQLite and
PostgreSQL); builds are recorded as a worker records them (claim, prefix, link, finish).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine

from condaops.config import load_settings
from condaops.reconciler.build.link import read_link, swap_link
from condaops.reconciler.model import BuildOutcome, EnvRef
from condaops.reconciler.plan import BUILD, BUILD_MISSING, NOOP, SPEC_CHANGED, UP_TO_DATE
from condaops.reconciler.service import PassResult, Reconciler
from condaops.reconciler.sources.directory import SpecCache, read_directory
from tests.integration.test_state import engine  # noqa: F401 - the SQLite / PostgreSQL fixture
from tests.support.clock import T0, Clock

NAMES = ("a", "b", "c")


def env_file(root: Path, name: str, version: str = "3.12") -> None:
    (root / "team").mkdir(parents=True, exist_ok=True)
    (root / "team" / f"{name}.yaml").write_text(f"dependencies:\n  - python={version}\n")


@pytest.fixture
def site(tmp_path: Path, engine: Engine):  # type: ignore[no-untyped-def]  # noqa: F811 - the fixture above
    """A directory source with three environments, and a reconciler on ``engine``."""
    for name in NAMES:
        env_file(tmp_path / "envs", name)
    config = tmp_path / "condaops.yaml"
    config.write_text(
        "store: store\nsources:\n  - directory: envs\nchannels:\n  default: [conda-forge]\nplatforms: [linux-64]\n"
    )
    settings = load_settings(config, environ={}, cwd=tmp_path)
    clock = Clock(T0)
    cache = SpecCache(racy_window=0)  # files written by the test count as settled at once

    rec = Reconciler(settings, engine, clock=clock, reader=lambda src: read_directory(src, cache=cache))
    yield rec, clock, tmp_path / "envs"
    rec.close()


def build_all(rec: Reconciler, result: PassResult) -> None:
    """Do what a worker does for every queued build: claim, prefix, link, finish."""
    for queued in result.queued:
        assert rec.recorder.claim(queued.build_id, "w1") is not None
        prefix = rec.layout.prefix(queued.ref, queued.spec_hash)
        prefix.mkdir(parents=True)
        swap_link(rec.layout.env_link(queued.ref), prefix)
        outcome = BuildOutcome(True, "BuildSucceeded", prefix=rec.layout.relative(prefix), linked=True)
        assert rec.recorder.finish(queued.build_id, outcome, "w1")


def decisions(result: PassResult) -> set[tuple[str, str, str]]:
    return {(str(a.ref), a.kind, a.reason) for a in result.plan.actions}


def full_plan(rec: Reconciler) -> set[tuple[str, str, str]]:
    return {(str(a.ref), a.kind, a.reason) for a in rec.plan().actions}


def test_a_pass_between_full_checks_decides_only_what_changed(site) -> None:  # type: ignore[no-untyped-def]
    rec, clock, root = site
    first = rec.reconcile_once()
    assert first.full and len(first.queued) == 3 and first.planned == 3
    build_all(rec, first)

    clock.advance(5)
    after_builds = rec.reconcile_once()  # the three finished builds moved their records
    assert not after_builds.full and after_builds.planned == 3 and after_builds.queued == ()
    assert decisions(after_builds) == {(f"team/{n}", NOOP, UP_TO_DATE) for n in NAMES} == full_plan(rec)

    clock.advance(5)
    idle = rec.reconcile_once()
    assert idle.planned == 0 and idle.queued == () and idle.plan is after_builds.plan  # nothing looked at again

    env_file(root, "b", "3.13")
    clock.advance(5)
    changed = rec.reconcile_once()
    assert changed.planned == 1
    assert [(str(q.ref)) for q in changed.queued] == ["team/b"]
    assert ("team/b", BUILD, SPEC_CHANGED) in decisions(changed)
    clock.advance(5)
    queued = rec.reconcile_once()  # b's queued build moved its record: decided again
    assert queued.planned == 1 and queued.queued == ()
    assert decisions(queued) == full_plan(rec)  # the standing plan is what a full plan says
    assert ("team/b", NOOP, "BuildInProgress") in decisions(queued)

    env_file(root, "d")
    (root / "team" / "a.yaml").unlink()
    clock.advance(5)
    moved = rec.reconcile_once()
    assert {str(q.ref) for q in moved.queued} == {"team/d"}
    assert moved.planned == 2  # d is new; a's file is gone
    assert ("team/a", NOOP, "SourceRemovedKept") in decisions(moved)
    clock.advance(5)
    rec.reconcile_once()
    assert decisions(rec.reconcile_once()) == full_plan(rec)


def test_the_full_check_finds_a_deleted_prefix_a_broken_link_and_a_moved_link(site) -> None:  # type: ignore[no-untyped-def]
    rec, clock, _ = site
    build_all(rec, rec.reconcile_once())
    clock.advance(5)
    rec.reconcile_once()
    layout = rec.layout
    a, b, c = (EnvRef("team", n) for n in NAMES)
    prefix_a, prefix_c = read_link(layout.env_link(a)), read_link(layout.env_link(c))

    shutil.rmtree(prefix_a)  # a deleted prefix
    layout.env_link(b).unlink()  # a broken (here: removed) link
    elsewhere = prefix_c.parent / "by-hand"
    elsewhere.mkdir()
    os.unlink(layout.env_link(c))
    os.symlink(elsewhere, layout.env_link(c))  # a link moved by hand

    clock.advance(rec.settings.reconcile.full_check / 2)
    between = rec.reconcile_once()  # a pass between full checks does not look at the disk
    assert not between.full and between.queued == ()
    assert not layout.env_link(b).exists()

    clock.advance(rec.settings.reconcile.full_check / 2)
    full = rec.reconcile_once()
    assert full.full
    assert [str(q.ref) for q in full.queued] == ["team/a"]
    assert ("team/a", BUILD, BUILD_MISSING) in decisions(full)
    assert read_link(layout.env_link(b)) == layout.prefix(b, read_link(layout.env_link(b)).name.split("-")[0]).resolve()
    assert read_link(layout.env_link(c)) == prefix_c  # put back where the state DB says


def test_the_full_check_period_is_a_setting(tmp_path: Path, engine: Engine) -> None:  # noqa: F811
    (tmp_path / "envs").mkdir()
    config = tmp_path / "condaops.yaml"
    config.write_text("store: store\nsources:\n  - directory: envs\nreconcile:\n  full_check: 2m\n")
    settings = load_settings(config, environ={}, cwd=tmp_path)
    assert settings.reconcile.full_check == 120
    clock = Clock(T0)
    rec = Reconciler(settings, engine, clock=clock)
    try:
        assert rec.reconcile_once().full
        clock.advance(119)
        assert not rec.reconcile_once().full
        clock.advance(1)
        assert rec.reconcile_once().full
    finally:
        rec.close()


def test_a_build_of_an_unchanged_file_records_the_current_revision(tmp_path: Path, engine: Engine) -> None:  # noqa: F811
    """A source hands back an unchanged file's environment as read at an earlier revision
    (no work per environment when another file changes); what a build records is the
    revision current when it is queued."""
    from sqlalchemy import text

    for name in NAMES:
        env_file(tmp_path / "envs", name)
    config = tmp_path / "condaops.yaml"
    config.write_text("store: store\nsources:\n  - directory: envs\n")
    settings = load_settings(config, environ={}, cwd=tmp_path)
    clock = Clock(T0)
    rec = Reconciler(settings, engine, clock=clock)
    try:
        with rec.follow("envs") as changed:
            first = rec.reconcile_once()
            failing = next(q for q in first.queued if q.ref.name == "a")
            build_all(rec, replace(first, queued=tuple(q for q in first.queued if q is not failing)))
            assert rec.recorder.claim(failing.build_id, "w1") is not None
            assert rec.recorder.finish(failing.build_id, BuildOutcome(False, "SolveFailed", retryable=True), "w1")

            env_file(tmp_path / "envs", "b", "3.11")
            changed({"team/b.yaml"})
            clock.advance(5)
            moved = rec.reconcile_once()  # b read again, a and c handed back as read before
            (snap,) = moved.snapshots
            a_env = next(e for e in snap.envs if e.ref.name == "a")
            assert a_env.revision == first.snapshots[0].revision != snap.revision
            assert [q.ref.name for q in moved.queued] == ["b"]

            clock.advance(settings.build.backoff)
            retried = rec.reconcile_once()
            assert not retried.full and [q.ref.name for q in retried.queued] == ["a"]
        with engine.connect() as conn:
            ids = [moved.queued[0].build_id, retried.queued[0].build_id]
            revisions = conn.execute(text(f"SELECT source_revision FROM builds WHERE id IN ({ids[0]}, {ids[1]})"))
            assert {r for (r,) in revisions} == {snap.revision}
    finally:
        rec.close()
