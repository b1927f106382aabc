"""The site's charts from the state DB's answers (``state.site_queries``): build
durations and sizes of an environment, store use per namespace, queue depth and build
outcomes over the last day. Pure: query results in, SVG out (``web.charts``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from markupsafe import Markup

from condaops.reconciler.state.site_queries import BuildPoint, NamespaceUse, Timeline
from condaops.web.charts import Bar, bar_chart, step_chart
from condaops.web.views import human_duration, human_size

OUTCOMES = ("completed", "failed", "canceled")
QUEUE_STEP = timedelta(minutes=15)


def _count(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.1f}"


def durations_chart(points: Sequence[BuildPoint]) -> Markup | None:
    timed = [p for p in points if p.seconds is not None]
    if not timed:
        return None
    bars = [
        Bar(
            f"#{p.build_id}",
            ((p.state, p.seconds or 0.0),),
            f"build #{p.build_id}: {p.state} after {human_duration(p.seconds)}, "
            f"finished {p.finished_at:%Y-%m-%d %H:%M} UTC",
        )
        for p in timed
    ]
    longest = max(timed, key=lambda p: p.seconds or 0.0)
    desc = (
        f"Durations of the last {len(timed)} finished builds, oldest first; the longest, "
        f"#{longest.build_id}, took {human_duration(longest.seconds)}."
    )
    legend = [s for s in OUTCOMES if any(p.state == s for p in timed)]
    return bar_chart("Build durations", desc, bars, human_duration, legend=legend)


def sizes_chart(points: Sequence[BuildPoint]) -> Markup | None:
    sized = [p for p in points if p.size]
    if not sized:
        return None
    bars = [
        Bar(f"#{p.build_id}", (("packages", float(p.size or 0)),), f"build #{p.build_id}: {human_size(p.size)}")
        for p in sized
    ]
    desc = (
        f"Size of the locked packages of the last {len(sized)} builds (download sizes, one platform): "
        f"from {human_size(sized[0].size)} to {human_size(sized[-1].size)}."
    )
    return bar_chart("Environment size over builds", desc, bars, lambda v: human_size(int(v)))


def disk_chart(uses: Sequence[NamespaceUse]) -> Markup | None:
    if not uses:
        return None
    packages = sum(u.packages for u in uses)
    artifacts = sum(u.artifacts for u in uses)
    bars = [
        Bar(
            u.namespace,
            (("packages", float(u.packages)), ("artifacts", float(u.artifacts))),
            f"{u.namespace}: {human_size(u.packages)} of packages, {human_size(u.artifacts)} of artifacts",
        )
        for u in uses
    ]
    bars.append(
        Bar(
            "total",
            (("packages", float(packages)), ("artifacts", float(artifacts))),
            f"all namespaces: {human_size(packages)} of packages, {human_size(artifacts)} of artifacts",
        )
    )
    desc = (
        f"Per namespace and in total: packages of the current builds ({human_size(packages)} in all, "
        f"download sizes) and the files the store keeps for builds ({human_size(artifacts)})."
    )
    return bar_chart("Disk use", desc, bars, lambda v: human_size(int(v)), legend=("packages", "artifacts"))


def queue_depth(timeline: Timeline, now: datetime, *, hours: int = 24) -> list[tuple[datetime, float]]:
    """Builds waiting in the queue every ``QUEUE_STEP`` over the last ``hours``."""
    start = now - timedelta(hours=hours)
    points = []
    at = start
    while at <= now:
        waiting = sum(1 for queued, left in timeline.waits if queued <= at and (left is None or left > at))
        points.append((at, float(waiting)))
        at += QUEUE_STEP
    return points


def queue_chart(timeline: Timeline, now: datetime) -> Markup:
    points = queue_depth(timeline, now)
    peak = max(points, key=lambda p: p[1])
    desc = f"Builds waiting to start over the last day, every 15 minutes; at most {int(peak[1])}."
    return step_chart("Queue depth, last 24 hours", desc, points, _count, series="queue")


def outcomes_chart(timeline: Timeline, now: datetime, *, hours: int = 24) -> Markup:
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    counts = [dict.fromkeys(OUTCOMES, 0) for _ in range(hours)]
    for finished, state in timeline.outcomes:
        slot = hours - 1 - int((end - finished).total_seconds() // 3600)
        if 0 <= slot < hours and state in OUTCOMES:
            counts[slot][state] += 1
    bars = []
    for i, hour in enumerate(counts):
        start = end - timedelta(hours=hours - i)
        note = f"{start:%H}:00–{start + timedelta(hours=1):%H}:00 UTC: " + ", ".join(
            f"{n} {s}" for s, n in hour.items() if n
        )
        bars.append(Bar(f"{start:%H}h", tuple((s, float(n)) for s, n in hour.items()), note.rstrip(": ")))
    totals = {s: sum(h[s] for h in counts) for s in OUTCOMES}
    desc = "Builds finished per hour over the last day: " + ", ".join(f"{n} {s}" for s, n in totals.items()) + "."
    return bar_chart("Build outcomes, last 24 hours", desc, bars, _count, legend=OUTCOMES)
