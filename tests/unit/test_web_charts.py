"""Server-side SVG charts (web.charts, web.site_charts): what they count and that every
text in them is escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta

from condaops.reconciler.state.site_queries import BuildPoint, NamespaceUse, Timeline
from condaops.web.site_charts import disk_chart, durations_chart, outcomes_chart, queue_chart, queue_depth, sizes_chart
from tests.support.clock import T0

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: object) -> ET.Element:
    return ET.fromstring(str(markup))  # well-formed XML, or this raises


def test_queue_depth_counts_builds_waiting_at_each_moment() -> None:
    now = T0 + timedelta(hours=24)
    waits = [
        (now - timedelta(hours=2), now - timedelta(hours=1)),  # waited one hour
        (now - timedelta(minutes=40), None),  # still queued
        (now - timedelta(days=3), now - timedelta(days=2)),  # long before the window
    ]
    depth = dict(queue_depth(Timeline(waits, []), now))

    assert depth[now - timedelta(hours=3)] == 0
    assert depth[now - timedelta(hours=1, minutes=30)] == 1
    assert depth[now - timedelta(minutes=30)] == 1 and depth[now] == 1
    assert len(depth) == 24 * 4 + 1
    assert "at most 1" in parse(queue_chart(Timeline(waits, []), now)).find(f"{SVG}desc").text  # type: ignore[union-attr,operator]


def test_outcomes_per_hour() -> None:
    now = T0 + timedelta(minutes=30)
    outcomes = [(now - timedelta(minutes=5), "completed"), (now - timedelta(minutes=10), "failed"), (now, "failed")]
    svg = parse(outcomes_chart(Timeline([], outcomes), now))
    assert (
        svg.find(f"{SVG}desc").text == "Builds finished per hour over the last day: 1 completed, 2 failed, 0 canceled."
    )  # type: ignore[union-attr]
    notes = [t.text for t in svg.iter(f"{SVG}title")]
    assert "12:00–13:00 UTC: 1 completed, 2 failed" in notes


def test_build_and_disk_charts_escape_names() -> None:
    points = [
        BuildPoint(1, T0, 65.0, "completed", size=3 << 20),
        BuildPoint(2, T0 + timedelta(hours=1), 5.0, "failed"),
    ]
    durations = parse(durations_chart(points))
    assert [t.text for t in durations.iter(f"{SVG}title")][1].startswith("build #1: completed after 1 min 5 s")
    assert sizes_chart(points) is not None and sizes_chart(points[1:]) is None and durations_chart([]) is None
    chart = disk_chart([NamespaceUse("<script>", 1 << 30, 5 << 20)])
    assert "<script>" not in str(chart) and "&lt;script&gt;" in str(chart)
    labels = [t.text for t in parse(chart).iter(f"{SVG}text")]
    assert "<script>" in labels and "total" in labels  # the namespace, as text, and the total bar
