"""A small in-process metrics registry, rendered in the Prometheus text format (0.0.4).

Written by hand (standard library only) so the reconciler and the registry can update
metrics without importing the web stack. One ``ServiceMetrics`` object per process: the
runtime creates it and hands it to ``create_app``; code that counts something is given
the object (no module-level registry, so tests never share counters).

What the state DB already knows (builds by state, build durations, sources, queue depth)
is read at scrape time by ``condaops.web.ops``; only what happens in this process is
counted here: reconcile passes, source fetch failures, registry requests and bytes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence

LabelValues = tuple[str, ...]
_INF = 'le="+Inf"'

RECONCILE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BUILD_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)


def escape_label(value: str) -> str:
    """Label values escape backslash, double quote and newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{escape_label(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class Metric:
    """One metric family: a name, a help text, label names and samples per label values."""

    kind = "untyped"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.labelnames = tuple(labels)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(labels)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def header(self) -> list[str]:
        help_text = self.help.replace("\\", "\\\\").replace("\n", "\\n")
        return [f"# HELP {self.name} {help_text}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:
        raise NotImplementedError


class Counter(Metric):
    """Only goes up."""

    kind = "counter"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help, labels)
        self._values: dict[LabelValues, float] = {} if self.labelnames else {(): 0.0}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: counters only go up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.labelnames, k)} {format_value(v)}" for k, v in items]


class Gauge(Metric):
    """A value that is set."""

    kind = "gauge"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help, labels)
        self._values: dict[LabelValues, float] = {}

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def value(self, **labels: str) -> float | None:
        return self._values.get(self._key(labels))

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.labelnames, k)} {format_value(v)}" for k, v in items]


class Histogram(Metric):
    """Observations counted into cumulative ``le`` buckets, with their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help: str, buckets: Sequence[float], labels: Sequence[str] = ()) -> None:
        super().__init__(name, help, labels)
        self.buckets = tuple(sorted(buckets))
        self._series: dict[LabelValues, tuple[list[int], float, int]] = {}
        if not self.labelnames:  # an unlabelled series exists from the start, at zero
            self._series[()] = ([0] * len(self.buckets), 0.0, 0)

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            counts, total, n = self._series.get(key) or ([0] * len(self.buckets), 0.0, 0)
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    counts[i] += 1
            self._series[key] = (counts, total + value, n + 1)

    def observe_all(self, values: Iterable[float], **labels: str) -> None:
        for value in values:
            self.observe(value, **labels)

    def count(self, **labels: str) -> int:
        series = self._series.get(self._key(labels))
        return series[2] if series else 0

    def render(self) -> list[str]:
        lines = self.header()
        with self._lock:
            items = sorted((k, (list(c), s, n)) for k, (c, s, n) in self._series.items())
        for key, (counts, total, n) in items:
            for bound, count in zip(self.buckets, counts, strict=True):
                le = f'le="{format_value(bound)}"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {count}")
            lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, _INF)} {n}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} {format_value(total)}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} {n}")
        return lines


def render(metrics: Iterable[Metric]) -> str:
    """The exposition text of ``metrics``, in the order given."""
    lines: list[str] = []
    for metric in metrics:
        lines += metric.render()
    return "\n".join(lines) + "\n"


class ServiceMetrics:
    """What one condaops process counts. Thread-safe; call the methods from anywhere.

    * the runtime: ``observe_reconcile`` around each ``reconcile_once``,
      ``source_fetched`` for each source snapshot;
    * the registry: ``registry_request`` once per answered request.
    """

    def __init__(self) -> None:
        self.reconcile_duration = Histogram(
            "condaops_reconcile_duration_seconds", "Duration of reconcile passes in this process.", RECONCILE_BUCKETS
        )
        self.reconcile_errors = Counter("condaops_reconcile_errors_total", "Reconcile passes that raised.")
        self.source_fetch_errors = Counter(
            "condaops_source_fetch_errors_total", "Source reads that failed, by source.", ("source",)
        )
        self.registry_requests = Counter(
            "condaops_registry_requests_total",
            "Registry requests answered, by method and status code.",
            ("method", "status"),
        )
        self.registry_bytes = Counter(
            "condaops_registry_bytes_total",
            "Registry payload bytes, by direction (in = pushed, out = pulled).",
            ("direction",),
        )

    def observe_reconcile(self, seconds: float, *, ok: bool = True) -> None:
        self.reconcile_duration.observe(seconds)
        if not ok:
            self.reconcile_errors.inc()

    def source_fetched(self, source: str, *, ok: bool) -> None:
        if not ok:
            self.source_fetch_errors.inc(source=source)

    def registry_request(self, method: str, status: int, *, bytes_in: int = 0, bytes_out: int = 0) -> None:
        self.registry_requests.inc(method=method.upper(), status=str(status))
        if bytes_in:
            self.registry_bytes.inc(bytes_in, direction="in")
        if bytes_out:
            self.registry_bytes.inc(bytes_out, direction="out")

    def metrics(self) -> list[Metric]:
        return [
            self.reconcile_duration,
            self.reconcile_errors,
            self.source_fetch_errors,
            self.registry_requests,
            self.registry_bytes,
        ]
