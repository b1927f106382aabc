"""The environment page is rendered again exactly when what it shows changed.

A state DB filled through the recorder (what builds record), served by the real app with
Litestar's test client; what the recorder writes next must show on the very next request,
with no time-based staleness. Also: where read handlers run for each database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine

import condaops.web.visible as web_visible
from condaops.config.settings import Settings, WebSettings
from condaops.reconciler.model import ArtifactRecord, BuildOutcome, DesiredEnv, EnvRef, Policy, SourceSnapshot
from condaops.reconciler.plan import plan
from condaops.reconciler.spec import Dependency, Spec
from condaops.reconciler.state.db import make_engine, migrate
from condaops.reconciler.state.queries import load_recorded
from condaops.reconciler.state.recorder import Recorder
from condaops.web.app import create_app
from tests.support.clock import Clock
from tests.support.postgres import fresh_database

pytestmark = pytest.mark.integration

REF = EnvRef("team", "ml")
PAGE = "/environments/team/ml"


def queue(rec: Recorder, engine: Engine, python: str) -> int:
    spec = Spec(channels=("conda-forge",), dependencies=(Dependency(f"python {python}.*"),))
    snap = SourceSnapshot("src", f"rev-{python}", envs=(DesiredEnv(REF, spec, "src", "team/ml.yaml", f"rev-{python}"),))
    (queued,) = rec.apply_plan(plan([snap], load_recorded(engine), policy=Policy(), now=rec.clock()))
    return queued.build_id


def build(rec: Recorder, engine: Engine, python: str) -> int:
    build_id = queue(rec, engine, python)
    rec.claim(build_id, "w1")
    files = (ArtifactRecord("conda-lock", f"artifacts/team/ml/{build_id}/conda-lock.yml", 10, "c" * 64),)
    rec.finish(
        build_id, BuildOutcome(True, "BuildSucceeded", prefix=f"team/{build_id}-ml", artifacts=files, linked=True), "w1"
    )
    return build_id


@pytest.fixture
def state(tmp_path: Path) -> Iterator[tuple[Settings, Engine, Recorder]]:
    settings = Settings(store=tmp_path / "store")
    engine = make_engine(settings.database_url)
    migrate(engine)
    yield settings, engine, Recorder(engine, Clock(datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc), step=3))
    engine.dispose()


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[EnvRef]:
    """Every time the page's data is loaded from the state DB (a page rendered anew)."""
    loads: list[EnvRef] = []
    original = web_visible.environment_view

    def counted(engine, ref, **kw):  # type: ignore[no-untyped-def]
        loads.append(ref)
        return original(engine, ref, **kw)

    monkeypatch.setattr(web_visible, "environment_view", counted)
    return loads


def test_a_page_is_reused_until_the_recorder_changes_what_it_shows(state, renders) -> None:  # type: ignore[no-untyped-def]
    settings, engine, rec = state
    first = build(rec, engine, "3.12")
    with TestClient(create_app(settings, engine, cache_seconds=60)) as client:
        page = client.get(PAGE)
        assert page.status_code == 200 and f"#{first}" in page.text
        assert client.get(PAGE).text == page.text and len(renders) == 1  # reused
        assert client.get(PAGE + "?limit=1").status_code == 200 and len(renders) == 2  # its own query

        # Each recorded change shows on the next request, although cache_seconds is 60.
        packed = ArtifactRecord("conda-pack", f"artifacts/team/ml/{first}/ml-packed.tar.gz", 99, "d" * 64)
        image = ArtifactRecord("image", f"artifacts/team/ml/{first}/image.json", 99, "e" * 64)
        record = {"manifest_digest": "sha256:" + "1" * 64, "tags": ["latest"], "runnable": True}
        record["targets"] = {"builtin": {"repository": "team/ml", "builtin": True, "by_type": {}}}
        (settings.store / image.location).parent.mkdir(parents=True, exist_ok=True)
        (settings.store / image.location).write_text(json.dumps(record))
        assert "ml-packed.tar.gz" not in page.text and "docker pull" not in page.text
        rec.add_artifacts(first, [packed, image])  # the publish job's files
        assert "ml-packed.tar.gz" in client.get(PAGE).text and len(renders) == 3
        assert "docker pull testserver.local/team/ml:latest" in client.get(PAGE).text
        second = queue(rec, engine, "3.13")
        text = client.get(PAGE).text
        assert f'href="/builds/{second}"' in text and "queued" in text
        rec.claim(second, "w1")
        assert "building" in client.get(PAGE).text
        rec.renew([second], "w1", lease=60)
        before = len(renders)
        client.get(PAGE)
        assert len(renders) == before  # a lease renewal shows nowhere: the page is reused
        rec.finish(second, BuildOutcome(False, "SolveFailed", "nothing provides python 3.13"), "w1")
        assert "nothing provides python 3.13" in client.get(PAGE).text
        rec.record_rollback(REF, first)
        assert "RolledBack" in client.get(PAGE).text

        # Who reads and the host asked for are part of what a page is kept under.
        moved = client.get(PAGE, headers={"host": "status.example.org"}).text
        assert "status.example.org" in moved and "status.example.org" not in client.get(PAGE).text


def test_page_cache_off_renders_every_request(state, renders) -> None:  # type: ignore[no-untyped-def]
    settings, engine, rec = state
    build(rec, engine, "3.12")
    settings = replace(settings, web=WebSettings(page_cache=0))
    with TestClient(create_app(settings, engine)) as client:
        for _ in range(3):
            assert client.get(PAGE).status_code == 200
    assert len(renders) == 3


def route(app, path: str):  # type: ignore[no-untyped-def]
    return app.route_handler_method_map[path]["GET"]


def test_read_handlers_run_on_the_loop_with_sqlite_and_in_threads_with_postgresql(tmp_path: Path) -> None:
    """SQLite: the small pages and API answers on the event loop (no GIL hand-offs per row);
    PostgreSQL: in threads (each query is a round trip)."""
    settings = Settings(store=tmp_path / "store")
    sqlite = make_engine(settings.database_url)
    app = create_app(settings, sqlite)
    assert route(app, "/environments/{namespace:str}/{name:str}").sync_to_thread is False
    assert route(app, "/api/v1/environments").sync_to_thread is False
    # The overview: a kept page is answered on the loop, making one runs in a thread.
    assert route(app, "/").has_sync_callable is False and not route(app, "/").sync_to_thread
    # What may take long stays in threads: search, diffs, lockfile reads, logs, metrics.
    for path in (
        "/search",
        "/environments/{namespace:str}/{name:str}/diff",
        "/api/v1/packages",
        "/api/v1/builds/{build_id:int}/packages",
        "/builds/{build_id:int}/log",
        "/metrics",
    ):
        assert route(app, path).sync_to_thread is True, path
    with fresh_database() as url:
        pg = make_engine(url)
        try:
            app = create_app(replace(settings, database=url), pg)
            assert route(app, "/environments/{namespace:str}/{name:str}").sync_to_thread is True
            assert route(app, "/api/v1/environments").sync_to_thread is True
        finally:
            pg.dispose()
    # The handlers themselves are not changed for the next app (copies are placed).
    assert route(create_app(settings, sqlite), "/api/v1/environments").sync_to_thread is False
    sqlite.dispose()
