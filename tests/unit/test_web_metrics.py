"""The hand-written Prometheus text exposition."""

from __future__ import annotations

import pytest

from condaops.web.metrics import Counter, Gauge, Histogram, ServiceMetrics, escape_label, format_value, render


def test_counter_renders_help_type_and_samples() -> None:
    c = Counter("jobs_total", "Jobs done.\nReally.", ("kind",))
    c.inc(kind="a")
    c.inc(2.5, kind='q"uote\\')

    assert render([c]).splitlines() == [
        "# HELP jobs_total Jobs done.\\nReally.",
        "# TYPE jobs_total counter",
        'jobs_total{kind="a"} 1',
        'jobs_total{kind="q\\"uote\\\\"} 2.5',
    ]


def test_unlabelled_metrics_start_at_zero() -> None:
    text = render([Counter("c_total", "c"), Histogram("h_seconds", "h", (1.0,))])

    assert "c_total 0\n" in text
    assert 'h_seconds_bucket{le="1"} 0\nh_seconds_bucket{le="+Inf"} 0\nh_seconds_sum 0\nh_seconds_count 0\n' in text


def test_counters_only_go_up_and_labels_must_match() -> None:
    c = Counter("c_total", "c", ("a",))
    with pytest.raises(ValueError, match="only go up"):
        c.inc(-1, a="x")
    with pytest.raises(ValueError, match="takes labels"):
        c.inc(b="x")


def test_histogram_buckets_are_cumulative() -> None:
    h = Histogram("d_seconds", "d", (1.0, 10.0), ("step",))
    h.observe_all([0.5, 1.0, 5.0, 100.0], step="solve")

    lines = render([h]).splitlines()[2:]
    assert lines == [
        'd_seconds_bucket{step="solve",le="1"} 2',
        'd_seconds_bucket{step="solve",le="10"} 3',
        'd_seconds_bucket{step="solve",le="+Inf"} 4',
        'd_seconds_sum{step="solve"} 106.5',
        'd_seconds_count{step="solve"} 4',
    ]
    assert h.count(step="solve") == 4


def test_gauge_sets() -> None:
    g = Gauge("g", "g", ("s",))
    g.set(3, s="x")
    g.set(1.5, s="x")
    assert g.value(s="x") == 1.5 and 'g{s="x"} 1.5' in render([g])


@pytest.mark.parametrize(
    ("value", "text"), [(1.0, "1"), (0.25, "0.25"), (float("inf"), "+Inf"), (float("nan"), "NaN"), (1e20, "1e+20")]
)
def test_format_value(value: float, text: str) -> None:
    assert format_value(value) == text


def test_escape_label() -> None:
    assert escape_label('a\\b"c\nd') == 'a\\\\b\\"c\\nd'


def test_service_metrics_are_independent_per_object() -> None:
    one, two = ServiceMetrics(), ServiceMetrics()
    one.observe_reconcile(0.3, ok=False)
    one.registry_request("put", 201, bytes_in=10)
    one.source_fetched("git", ok=True)

    assert one.reconcile_errors.value() == 1 and two.reconcile_errors.value() == 0
    assert one.registry_requests.value(method="PUT", status="201") == 1
    assert one.registry_bytes.value(direction="in") == 10
    assert one.source_fetch_errors.value(source="git") == 0
    names = [m.name for m in one.metrics()]
    assert names == sorted(set(names), key=names.index) and all(n.startswith("condaops_") for n in names)
