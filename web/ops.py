"""Operations endpoints: ``/healthz`` (alive), ``/readyz`` (database and sources),
``/metrics`` (Prometheus text). Always open, whatever ``web.auth`` says; they name
sources but no namespace or environment.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from litestar import Response, Router, get
from litestar.di import NamedDependency, Provide
from sqlalchemy import text

from condaops.reconciler.model import QUEUED
from condaops.reconciler.policy.findings import report_from_json
from condaops.reconciler.state.queries import count_builds_by_state, finished_build_durations, list_sources
from condaops.web.cache import Cached
from condaops.web.context import WebContext
from condaops.web.metrics import BUILD_BUCKETS, Gauge, Histogram, Metric, render
from condaops.web.views import count_states

log = logging.getLogger("condaops.web")

METRICS_TYPE = "text/plain; version=0.0.4"  # Litestar adds "; charset=utf-8"
BUILD_STATES = ("queued", "building", "completed", "failed", "canceled")
READY_FACTOR = 3  # a source is stale after this many poll intervals without a good read
DISK_INTERVAL = 300.0  # seconds between two measurements of the store


def disk_usage(root: Path) -> int:
    """Bytes allocated under ``root``; hardlinked files (package cache → prefixes) count once,
    symlinks are not followed."""
    total, seen = 0, set()
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue  # vanished or unreadable: measure the rest
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(Path(entry.path))
            if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


class DiskUsage:
    """The store's size, measured in a background thread at most every ``interval`` seconds
    (a large store takes a while to walk); readers get the last measurement at once."""

    def __init__(
        self,
        root: Path,
        interval: float = DISK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        measure: Callable[[Path], int] = disk_usage,
    ) -> None:
        self.root = root
        self.interval = interval
        self._clock = clock
        self._measure = measure
        self._lock = threading.Lock()
        self._last: tuple[int, float] | None = None
        self._running = False

    def value(self) -> int | None:
        with self._lock:
            due = self._last is None or self._clock() - self._last[1] >= self.interval
            start = due and not self._running
            if start:
                self._running = True
        if start:
            threading.Thread(target=self._refresh, name="condaops-disk-usage", daemon=True).start()
        return self._last[0] if self._last else None

    def wait(self, timeout: float = 30.0) -> int | None:
        """Measure now if needed and wait for it (tests, first scrape of a small store)."""
        self.value()
        deadline = time.monotonic() + timeout
        while self._running and time.monotonic() < deadline:
            time.sleep(0.01)
        return self._last[0] if self._last else None

    def _refresh(self) -> None:
        try:
            size = self._measure(self.root) if self.root.exists() else 0
            with self._lock:
                self._last = (size, self._clock())
        except Exception:  # a failed walk must not kill the thread silently
            log.exception("disk_usage_failed root=%s", self.root)
        finally:
            self._running = False


class OpsState:
    """Scrape-time metrics read from the state DB (so they count every worker's builds)."""

    def __init__(self, ctx: WebContext, *, cache_seconds: float = 5.0, sources_gate: bool = True) -> None:
        self.ctx = ctx
        self.sources_gate = sources_gate  # False in the web role: readiness must not follow the reconciler
        self.disk = DiskUsage(ctx.layout.root)
        self._db_metrics = Cached(self._collect, cache_seconds)

    def _collect(self) -> list[Metric]:
        engine = self.ctx.engine
        builds = Gauge("condaops_builds", "Builds recorded, by state.", ("state",))
        by_state = count_builds_by_state(engine)
        for state in sorted(set(BUILD_STATES) | set(by_state)):
            builds.set(by_state.get(state, 0), state=state)
        queue = Gauge("condaops_build_queue_depth", "Builds queued and not yet started.")
        queue.set(by_state.get(QUEUED, 0))
        durations = Histogram("condaops_build_duration_seconds", "Duration of finished builds.", BUILD_BUCKETS)
        durations.observe_all(finished_build_durations(engine))
        envs = Gauge("condaops_environments", "Live environments, by state.", ("state",))
        for state, count in count_states(self.ctx.all_rows()).items():
            envs.set(count, state=state)
        return [builds, queue, durations, envs, self._policy_metric(), *self._source_metrics()]

    def _policy_metric(self) -> Metric:
        """Findings of each environment's newest build, by rule and level (what the status
        pages show): a rule that blocks many environments stands out."""
        findings = Gauge(
            "condaops_policy_violations",
            "Policy findings of the newest build of each environment, by rule and level (error blocks).",
            ("rule", "level"),
        )
        counts: dict[tuple[str, str], int] = {}
        for row in self.ctx.all_rows():
            build = row.info.latest or row.info.current
            for v in report_from_json(build.policy_report) if build else ():
                counts[(v.rule, v.level)] = counts.get((v.rule, v.level), 0) + 1
        for (rule, level), count in sorted(counts.items()):
            findings.set(count, rule=rule, level=level)
        return findings

    def _source_metrics(self) -> list[Metric]:
        success = Gauge("condaops_source_last_success_timestamp_seconds", "Last good read of a source.", ("source",))
        fetched = Gauge("condaops_source_last_fetch_timestamp_seconds", "Last read of a source.", ("source",))
        failing = Gauge("condaops_source_failing", "1 while the last read of a source failed.", ("source",))
        for src in list_sources(self.ctx.engine):
            if src.last_success_at:
                success.set(src.last_success_at.timestamp(), source=src.name)
            if src.fetched_at:
                fetched.set(src.fetched_at.timestamp(), source=src.name)
            failing.set(1 if src.error_reason or src.error_message else 0, source=src.name)
        return [success, fetched, failing]

    def metrics_text(self) -> str:
        store = Gauge("condaops_store_bytes", "Bytes used by the store (measured every few minutes).")
        size = self.disk.value()
        if size is not None:
            store.set(size)
        return render([*self._db_metrics.get(), store, *self.ctx.metrics.metrics()])

    def readiness(self, now: datetime) -> tuple[bool, dict[str, object]]:
        """(ready, details): the database answers and (``sources_gate``) every source was
        read well recently; the sources are reported either way."""
        try:
            with self.ctx.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # the probe reports, it never raises
            return False, {"status": "unavailable", "database": type(exc).__name__}
        recorded = {s.name: s for s in list_sources(self.ctx.engine)}
        sources: dict[str, object] = {}
        ready = True
        for src in self.ctx.settings.sources:
            state = recorded.get(src.name)
            last = state.last_success_at if state else None
            fresh = last is not None and (now - last).total_seconds() <= READY_FACTOR * src.interval
            ready &= fresh or not self.sources_gate
            sources[src.name] = {
                "ready": fresh,
                "last_success_at": last.isoformat() if last else None,
                "error": state.error_reason if state else None,
            }
        return ready, {"status": "ok" if ready else "unavailable", "database": "ok", "sources": sources}


@get("/healthz", sync_to_thread=False, include_in_schema=False)
def healthz() -> dict[str, str]:
    """The process is alive and answers."""
    return {"status": "ok"}


@get("/readyz", sync_to_thread=True, include_in_schema=False)
def readyz(ops: NamedDependency[OpsState]) -> Response[dict[str, object]]:
    ready, details = ops.readiness(ops.ctx.clock())
    return Response(details, status_code=200 if ready else 503)


@get("/metrics", sync_to_thread=True, include_in_schema=False)
def metrics(ops: NamedDependency[OpsState]) -> Response[str]:
    return Response(ops.metrics_text(), media_type=METRICS_TYPE)


def ops_router(state: OpsState) -> Router:
    return Router(
        "/",
        route_handlers=[healthz, readyz, metrics],
        dependencies={"ops": Provide(lambda: state, sync_to_thread=False)},
    )
