"""The JSON API's sync, health and badges, and its overview filters, against the real app.

The state DB is filled through the recorder (plan, claim, finish, rollback, removal): one
environment in sync, one held by a rollback, one whose wanted build failed, one removed
from its source with its build kept, one building. The API and the overview must agree,
environment by environment and filter by filter: both come from ``web.health``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine

from condaops.config.settings import Settings
from condaops.reconciler.model import BuildOutcome, DesiredEnv, EnvRef, Policy, SourceSnapshot
from condaops.reconciler.plan import plan
from condaops.reconciler.reasons import Reason
from condaops.reconciler.spec import Dependency, Spec
from condaops.reconciler.state.db import make_engine, migrate
from condaops.reconciler.state.queries import load_recorded
from condaops.reconciler.state.recorder import Recorder
from condaops.web.access import ANONYMOUS
from condaops.web.app import create_app
from tests.support.clock import Clock

pytestmark = pytest.mark.integration

SYNCED, HELD, FAILED, REMOVED, BUILDING = (
    EnvRef("team", "synced"),
    EnvRef("team", "held"),
    EnvRef("data", "failed"),
    EnvRef("data", "removed"),
    EnvRef("ops", "building"),
)


def desired(ref: EnvRef, python: str, source: str = "src") -> DesiredEnv:
    spec = Spec(channels=("conda-forge",), dependencies=(Dependency(f"python {python}.*"),))
    return DesiredEnv(ref, spec, source, f"{ref.namespace}/{ref.name}.yaml", f"rev-{python}")


def apply(rec: Recorder, engine: Engine, envs: list[DesiredEnv]) -> dict[EnvRef, int]:
    snaps = [
        SourceSnapshot(name, f"rev-{name}", envs=tuple(e for e in envs if e.source == name))
        for name in sorted({e.source for e in envs})
    ]
    queued = rec.apply_plan(plan(snaps, load_recorded(engine), policy=Policy(retries=0), now=rec.clock()))
    return {q.ref: q.build_id for q in queued}


def finish(rec: Recorder, build_id: int, ok: bool = True) -> None:
    rec.claim(build_id, "w1")
    outcome = (
        BuildOutcome(True, Reason.BUILD_SUCCEEDED, prefix=f"p/{build_id}", linked=True)
        if ok
        else BuildOutcome(False, Reason.SOLVE_FAILED, "nothing provides python 9")
    )
    rec.finish(build_id, outcome, "w1")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(store=tmp_path / "store")
    engine = make_engine(settings.database_url)
    migrate(engine)
    rec = Recorder(engine, Clock(datetime(2026, 12, 5, 9, 0, tzinfo=timezone.utc), step=3))
    first = [desired(r, "3.12", "other" if r == SYNCED else "src") for r in (SYNCED, HELD, FAILED, REMOVED)]
    for build_id in apply(rec, engine, first).values():
        finish(rec, build_id)
    second = [first[0], desired(HELD, "3.13"), desired(FAILED, "9")]
    queued = apply(rec, engine, second)  # REMOVED is gone from its source: kept (prune is off)
    finish(rec, queued[HELD])
    finish(rec, queued[FAILED], ok=False)
    held_first = next(b for r, b in apply_ids(engine).items() if r == HELD)
    rec.record_rollback(HELD, held_first)
    building = apply(rec, engine, [*second, desired(BUILDING, "3.12")])
    rec.claim(building[BUILDING], "w1")
    with TestClient(create_app(settings, engine, cache_seconds=0)) as c:
        yield c
    engine.dispose()


def apply_ids(engine: Engine) -> dict[EnvRef, int]:
    """The first build of each environment."""
    from condaops.reconciler.state.queries import env_builds

    return {r: min(b.build_id for b in env_builds(engine, r)) for r in (SYNCED, HELD, FAILED, REMOVED)}


def api(client: TestClient, **params: str) -> dict[str, dict[str, object]]:
    page = client.get("/api/v1/environments", params=params)
    assert page.status_code == 200, page.text
    return {f"{e['namespace']}/{e['name']}": e for e in page.json()["items"]}


def overview(client: TestClient, **params: str) -> dict[str, tuple[str, str]]:
    """The overview's list: environment -> (sync, health), as the page shows them."""
    html = client.get("/", params=params).text
    rows = re.findall(r'<tr data-env="([^"]+)">(.*?)</tr>', html, re.S)
    return {
        env: (
            re.search(r"Synced|OutOfSync", cells).group(0),  # type: ignore[union-attr]  # every row has both
            re.search(r"Healthy|Progressing|Degraded|Missing", cells).group(0),  # type: ignore[union-attr]
        )
        for env, cells in rows
    }


def test_environments_carry_sync_health_and_badges_as_the_site_computes_them(client: TestClient) -> None:
    found = api(client)

    summary = {k: (e["sync"], e["health"], e["badges"]) for k, e in found.items()}
    assert summary == {
        "data/failed": ("OutOfSync", "Degraded", []),
        "data/removed": ("OutOfSync", "Healthy", ["removed-kept"]),
        "ops/building": ("OutOfSync", "Progressing", []),
        "team/held": ("OutOfSync", "Healthy", ["held"]),
        "team/synced": ("Synced", "Healthy", []),
    }
    assert {k: (s, h) for k, (s, h, _) in summary.items()} == overview(client)
    failed = found["data/failed"]
    assert failed["reason"] == Reason.SOLVE_FAILED and failed["since"] is not None
    assert failed["status_build_id"] == failed["latest_build_id"] and failed["status_revision"] == "rev-9"
    detail = client.get("/api/v1/environments/team/held").json()["environment"]
    assert (detail["sync"], detail["health"], detail["badges"]) == ("OutOfSync", "Healthy", ["held"])
    assert detail == found["team/held"]


@pytest.mark.parametrize(
    "params",
    [
        {"health": "Degraded"},
        {"health": "Healthy"},
        {"sync": "Synced"},
        {"sync": "OutOfSync", "namespace": "team"},
        {"source": "other"},
        {"source": "src", "health": "Progressing"},
        {"state": "ready"},
        {"state": "failed"},
        {"reason": Reason.SOLVE_FAILED},
        {"reason": Reason.ROLLED_BACK},
        {"namespace": "data"},
        {"health": "NoSuchHealth"},
    ],
)
def test_the_list_filters_as_the_overview_does(client: TestClient, params: dict[str, str]) -> None:
    listed = api(client, **params)

    assert set(listed) == set(overview(client, **params))
    for entry in listed.values():
        assert all(entry[k] == v for k, v in params.items()), entry


def test_filters_combine_with_the_name_text_and_paging(client: TestClient) -> None:
    assert set(api(client, sync="OutOfSync", q="TEAM")) == {"team/held"}
    page = client.get("/api/v1/environments", params={"sync": "OutOfSync", "limit": 2, "offset": 2}).json()
    assert (page["total"], len(page["items"]), page["next_offset"]) == (4, 2, None)
    assert client.get("/api/v1/environments", params={"state": "nonsense"}).json()["total"] == 5  # ignored


def test_the_app_warms_up_at_start_and_the_overview_is_kept(tmp_path: Path) -> None:
    """create_app compiles the templates and loads the environment list in the background;
    the overview made in a thread is then answered from what was kept."""
    settings = Settings(store=tmp_path / "store")
    engine = make_engine(settings.database_url)
    migrate(engine)
    rec = Recorder(engine, Clock(datetime(2026, 12, 5, 9, 0, tzinfo=timezone.utc), step=3))
    finish(rec, apply(rec, engine, [desired(SYNCED, "3.12")])[SYNCED])
    app = create_app(settings, engine, cache_seconds=60)
    ctx = app.state["web"]
    deadline = time.monotonic() + 30
    while not ctx.environments.loaded and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ctx.environments.loaded and [str(r.ref) for r in ctx.all_rows()] == ["team/synced"]
    with TestClient(app) as c:
        first = c.get("/")
        assert first.status_code == 200 and 'data-env="team/synced"' in first.text
        assert ctx.memo_get(("overview.html", "/", "", ANONYMOUS, ctx.rows_generation())) == first.text
        assert c.get("/").text == first.text
    engine.dispose()
