"""Health, readiness, metrics and live build logs, against builds recorded through the
recorder (no installs: these endpoints read the state DB and the build's log file)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from litestar.testing import TestClient
from sqlalchemy import create_engine

from condaops.config.settings import Settings, SourceSettings
from condaops.reconciler.model import ArtifactRecord, BuildOutcome, DesiredEnv, EnvRef, SourceSnapshot
from condaops.reconciler.plan import BUILD, Action, Plan
from condaops.reconciler.spec import Dependency, Spec
from condaops.reconciler.state.db import make_engine, migrate
from condaops.reconciler.state.recorder import Recorder
from condaops.reconciler.store import StoreLayout
from condaops.web.app import create_app
from condaops.web.metrics import ServiceMetrics
from tests.support.clock import Clock

pytestmark = pytest.mark.integration

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


class State:
    """A state DB and store written through the recorder, as builds would write them."""

    def __init__(self, root: Path) -> None:
        self.settings = Settings(store=root / "store", sources=(SourceSettings(name="envs", directory=root),))
        self.engine = make_engine(self.settings.database_url)
        migrate(self.engine)
        self.clock = Clock(T0)
        self.recorder = Recorder(self.engine, self.clock)
        self.layout = StoreLayout(self.settings.store)

    def queue(self, ref: EnvRef, dep: str = "zlib") -> int:
        spec = Spec(channels=("conda-forge",), dependencies=(Dependency(dep),))
        desired = DesiredEnv(ref, spec, "envs", f"{ref.namespace}/{ref.name}.yaml", "dir:" + "0" * 64)
        action = Action(BUILD, ref, "NewEnvironment", spec_hash=spec.spec_hash, desired=desired)
        (queued,) = self.recorder.apply_plan(Plan(actions=(action,)))
        return queued.build_id

    def log_path(self, ref: EnvRef, build_id: int) -> Path:
        folder = self.layout.artifacts_dir(ref, build_id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / "build.log"

    def finish(self, ref: EnvRef, build_id: int, *, ok: bool = True, seconds: float = 12.0) -> None:
        self.clock.advance(seconds)
        log = self.log_path(ref, build_id)
        artifact = ArtifactRecord("log", self.layout.relative(log), log.stat().st_size if log.exists() else 0)
        outcome = BuildOutcome(
            ok,
            "BuildSucceeded" if ok else "SolveFailed",
            "" if ok else "no <b>such</b> package",
            artifacts=(artifact,),
            linked=ok,
        )
        self.recorder.finish(build_id, outcome)

    def build(self, ref: EnvRef, *, ok: bool = True, seconds: float = 12.0) -> int:
        build_id = self.queue(ref)
        self.recorder.claim(build_id, "test")
        self.log_path(ref, build_id).write_text(f"build_started env={ref}\nbuild_finished env={ref}\n")
        self.finish(ref, build_id, ok=ok, seconds=seconds)
        return build_id

    def client(self, **kw: object) -> TestClient:
        return TestClient(create_app(self.settings, self.engine, clock=self.clock, cache_seconds=0, **kw))


@pytest.fixture
def state(tmp_path: Path) -> Iterator[State]:
    s = State(tmp_path)
    yield s
    s.engine.dispose()


# --- health and readiness ------------------------------------------------------------------


def test_healthz_always_answers(state: State) -> None:
    with state.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}


def test_ready_only_while_sources_are_read_recently(state: State) -> None:
    with state.client() as client:
        never = client.get("/readyz")
        assert never.status_code == 503 and never.json()["sources"]["envs"]["ready"] is False

        state.recorder.record_snapshot(SourceSnapshot("envs", "dir:1"))
        assert client.get("/readyz").status_code == 200

        state.clock.advance(3 * 60)  # 3 × the default interval: still fresh
        assert client.get("/readyz").status_code == 200
        state.clock.advance(1)
        stale = client.get("/readyz").json()
        assert stale["status"] == "unavailable" and stale["database"] == "ok"

        broken = SourceSnapshot("envs", None, error="unreadable", error_reason="SourceUnreadable")
        state.recorder.record_snapshot(broken)
        failing = client.get("/readyz").json()
        assert failing["sources"]["envs"]["error"] == "SourceUnreadable" and not failing["sources"]["envs"]["ready"]


def test_not_ready_without_a_database(tmp_path: Path) -> None:
    settings = Settings(store=tmp_path / "store")
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")
    with TestClient(create_app(settings, engine)) as client:
        response = client.get("/readyz")

    assert response.status_code == 503 and response.json()["database"] == "OperationalError"


# --- metrics -----------------------------------------------------------------------------


def parse_metrics(text: str) -> dict[str, float]:
    """Samples of the Prometheus text format, checking each line's syntax on the way."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        match = re.fullmatch(
            r'([a-z_:][a-z0-9_:]*(?:\{[a-z_]+="(?:[^"\\]|\\.)*"(?:,[a-z_]+="(?:[^"\\]|\\.)*")*\})?) '
            r"(-?[0-9.e+]+|\+Inf|NaN)",
            line,
        )
        assert match, f"not a sample line: {line!r}"
        samples[match.group(1)] = float(match.group(2))
    return samples


def test_metrics_count_builds_sources_and_store(state: State) -> None:
    metrics = ServiceMetrics()
    for i in range(3):
        state.build(EnvRef("team", f"ok{i}"), seconds=20)
    state.build(EnvRef("team", "bad"), ok=False, seconds=400)
    state.queue(EnvRef("team", "waiting"))
    state.recorder.record_snapshot(SourceSnapshot("envs", "dir:1"))
    (state.settings.store / "blob").write_bytes(b"x" * 100_000)
    metrics.observe_reconcile(0.2)
    metrics.source_fetched("envs", ok=False)
    metrics.registry_request("GET", 200, bytes_out=4096)
    with state.client(metrics=metrics) as client:
        first = client.get("/metrics")  # starts measuring the store in the background
        client.app.state.ops.disk.wait()
        response = client.get("/metrics")

    assert first.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    m = parse_metrics(response.text)
    assert m['condaops_builds{state="completed"}'] == 3 and m['condaops_builds{state="failed"}'] == 1
    assert m['condaops_builds{state="queued"}'] == 1 and m["condaops_build_queue_depth"] == 1
    assert m["condaops_build_duration_seconds_count"] == 4
    assert m['condaops_build_duration_seconds_bucket{le="30"}'] == 3
    assert m['condaops_build_duration_seconds_bucket{le="+Inf"}'] == 4
    assert m["condaops_build_duration_seconds_sum"] == pytest.approx(460)
    assert m['condaops_environments{state="ready"}'] == 3 and m['condaops_environments{state="failed"}'] == 1
    assert m['condaops_source_failing{source="envs"}'] == 0
    assert m['condaops_source_last_success_timestamp_seconds{source="envs"}'] == state.clock.now.timestamp()
    assert m["condaops_store_bytes"] >= 100_000
    assert m["condaops_reconcile_duration_seconds_count"] == 1
    assert m['condaops_source_fetch_errors_total{source="envs"}'] == 1
    assert m['condaops_registry_requests_total{method="GET",status="200"}'] == 1
    assert m['condaops_registry_bytes_total{direction="out"}'] == 4096


# --- live logs -------------------------------------------------------------------------------


def writer(
    state: State, ref: EnvRef, build_id: int, lines: list[str], *, pause: float, finish: bool = True
) -> threading.Thread:
    """Append ``lines`` to the build's log one by one, then record the outcome."""
    path = state.log_path(ref, build_id)

    def run() -> None:
        for line in lines:
            with path.open("a", encoding="utf-8") as f:
                f.write(line)
            time.sleep(pause)
        if finish:
            state.finish(ref, build_id)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_log_streams_while_the_build_runs(state: State) -> None:
    ref = EnvRef("team", "live")
    build_id = state.queue(ref)
    state.recorder.claim(build_id, "test")
    state.log_path(ref, build_id).write_text("build_started\n")
    with state.client() as client:
        page = client.get(f"/builds/{build_id}")
        assert 'data-stream="/builds/' in page.text and "build_started" in page.text
        offset = int(re.search(r"offset=(\d+)", page.text).group(1))  # type: ignore[union-attr]
        # A line is written in two parts: it must arrive whole, once.
        thread = writer(
            state,
            ref,
            build_id,
            ["solved platform=linux-64\n", "install", "ing <prefix>\n", "build_finished\n"],
            pause=0.3,
        )
        events = client.get(f"/builds/{build_id}/log/events", params={"offset": offset}).text.replace("\r\n", "\n")
        thread.join()

    data = "".join(re.findall(r"^data: (.*)$", events.split("event: end")[0], re.M))
    assert "build_started" not in events  # it was on the page already
    assert "solved platform=linux-64" in data and "installing <prefix>" in data and "build_finished" in data
    assert events.count("installing") == 1
    assert events.rstrip().endswith("data: completed")
    ids = [int(i) for i in re.findall(r"^id: (\d+)$", events, re.M)]
    assert ids == sorted(ids) and ids[-1] == state.log_path(ref, build_id).stat().st_size


def test_finished_build_page_does_not_stream(state: State) -> None:
    build_id = state.build(EnvRef("team", "done"))
    with state.client() as client:
        html = client.get(f"/builds/{build_id}").text

    assert "data-stream" not in html and "build_finished env=team/done" in html


def test_failed_build_page_escapes_the_message(state: State) -> None:
    build_id = state.build(EnvRef("team", "bad"), ok=False)
    with state.client() as client:
        html = client.get(f"/builds/{build_id}").text

    assert "no &lt;b&gt;such&lt;/b&gt; package" in html and "<b>such</b>" not in html


def test_a_huge_log_is_shown_by_its_tail(state: State) -> None:
    ref = EnvRef("team", "noisy")
    build_id = state.queue(ref)
    state.recorder.claim(build_id, "test")
    path = state.log_path(ref, build_id)
    with path.open("w") as f:
        for i in range(200_000):  # ~6 MB
            f.write(f"line {i:07d} <tag> {'x' * 16}\n")
    state.finish(ref, build_id)
    with state.client() as client:
        html = client.get(f"/builds/{build_id}").text
        whole = client.get(f"/builds/{build_id}/log")

    assert "line 0199999 &lt;tag&gt;" in html and "line 0000000" not in html
    assert len(html) < 200_000 and "Showing the last 64.0 KiB" in html
    assert whole.status_code == 200 and len(whole.content) == path.stat().st_size


def test_other_routers_are_mounted(state: State) -> None:
    from litestar import Router, get

    @get("/v2/", sync_to_thread=False)
    def base() -> dict[str, str]:
        return {}

    with state.client(routers=[Router("/", route_handlers=[base])]) as client:
        assert client.get("/v2/").json() == {}
        missing = client.get("/v2/nothing/here")
        assert missing.status_code == 404 and missing.json()["status_code"] == 404  # JSON, not a page


def test_package_index_rows_are_replaced_not_duplicated(state: State) -> None:
    from sqlalchemy.orm import Session

    from condaops.reconciler.build.pip import PipLock
    from condaops.reconciler.state.packages import LockedPackage, indexed_packages, record_build_packages

    build_id = state.build(EnvRef("team", "indexed"))
    first = [
        LockedPackage(
            "linux-64",
            "zlib",
            "1.3",
            "h0",
            0,
            "https://conda.anaconda.org/conda-forge",
            "linux-64",
            100,
            "https://conda.anaconda.org/conda-forge/linux-64/zlib-1.3-h0.conda",
        )
    ]
    with Session(state.engine) as s, s.begin():
        assert record_build_packages(s, build_id, first) == 1
    with Session(state.engine) as s, s.begin():
        pip = {"linux-64": [PipLock("Requests", "2.32.3", "https://user:pw@pypi.example/r.whl", "ab" * 32)]}
        assert record_build_packages(s, build_id, {"linux-64": []}, pip) == 1

    (only,) = indexed_packages(state.engine, build_id) or []
    assert (only.name, only.manager, only.url) == ("requests", "pypi", "https://pypi.example/r.whl")
    assert indexed_packages(state.engine, build_id + 1000) is None


def test_registry_traffic_reaches_the_metrics(state: State) -> None:
    import hashlib

    from condaops.registry.app import registry_router
    from condaops.registry.backends import open_storage

    settings = replace(state.settings, registry=replace(state.settings.registry, push_tokens=("t" * 24,)))
    metrics = ServiceMetrics()
    storage = open_storage(settings)
    observe = lambda method, status, got, sent: metrics.registry_request(  # noqa: E731
        method, status, bytes_in=got, bytes_out=sent
    )
    blob = b"layer bytes " * 1000
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    app = create_app(
        settings, state.engine, metrics=metrics, routers=[registry_router(settings, storage, observe=observe)]
    )
    with TestClient(app) as client:
        pushed = client.post(
            f"/v2/team/env/blobs/uploads/?digest={digest}",
            content=blob,
            headers={"Authorization": "Bearer " + "t" * 24, "Content-Type": "application/octet-stream"},
        )
        assert pushed.status_code == 201, pushed.text
        assert client.get(f"/v2/team/env/blobs/{digest}").content == blob
        assert client.get("/v2/team/env/blobs/sha256:" + "0" * 64).status_code == 404
        m = parse_metrics(client.get("/metrics").text)
    assert m['condaops_registry_requests_total{method="POST",status="201"}'] == 1
    assert m['condaops_registry_requests_total{method="GET",status="200"}'] == 1
    assert m['condaops_registry_requests_total{method="GET",status="404"}'] == 1
    assert m['condaops_registry_bytes_total{direction="in"}'] == len(blob)
    assert m['condaops_registry_bytes_total{direction="out"}'] >= len(blob)
