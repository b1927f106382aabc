"""What the overview shows of the environments: counts of sync and health, and the list
with what needs attention first, filtered by URL parameters. Pure: no IO.

Filters are plain query parameters (``/?health=Degraded&namespace=team``), so a filtered
overview is a link to share and works without JavaScript.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from condaops.reconciler.status import STATES
from condaops.web.health import HEALTHS, SYNCS, attention_key, count
from condaops.web.views import EnvRow

FILTER_KEYS = ("source", "namespace", "sync", "health", "state", "reason")


@dataclass(frozen=True, slots=True)
class Filters:
    """Each None means "any"; values are compared exactly (they come from the lists the
    form offers, a link may carry anything and then matches nothing)."""

    source: str | None = None
    namespace: str | None = None
    sync: str | None = None
    health: str | None = None
    state: str | None = None
    reason: str | None = None

    @classmethod
    def of(cls, params: Mapping[str, str | None]) -> Filters:
        values = {k: (params.get(k) or "").strip()[:200] or None for k in FILTER_KEYS}
        return cls(**values)

    @property
    def active(self) -> bool:
        return any(getattr(self, k) for k in FILTER_KEYS)

    def query(self, **extra: object) -> str:
        """These filters (and ``extra``) as a query string, empty values left out."""
        pairs = {k: getattr(self, k) for k in FILTER_KEYS} | extra
        return urlencode({k: v for k, v in pairs.items() if v not in (None, "")})

    def matches(self, row: EnvRow) -> bool:
        status = row.status
        return (
            (self.source is None or row.info.source == self.source)
            and (self.namespace is None or row.ref.namespace == self.namespace)
            and (self.sync is None or status.sync == self.sync)
            and (self.health is None or status.health == self.health)
            and (self.state is None or row.state == self.state)
            and (self.reason is None or row.reason == self.reason)
        )


@dataclass(frozen=True, slots=True)
class Choices:
    """What each filter can be set to, from the environments themselves."""

    sources: list[str]
    namespaces: list[str]
    syncs: Sequence[str]
    healths: Sequence[str]
    states: Sequence[str]
    reasons: list[str]


def choices(rows: Iterable[EnvRow]) -> Choices:
    items = list(rows)
    return Choices(
        sources=sorted({r.info.source for r in items if r.info.source}),
        namespaces=sorted({r.ref.namespace for r in items}),
        syncs=SYNCS,
        healths=HEALTHS,
        states=STATES,
        reasons=sorted({r.reason for r in items if r.reason}),
    )


def attention_first(rows: Iterable[EnvRow], filters: Filters) -> list[EnvRow]:
    """Rows matching ``filters``: Degraded, Missing, Progressing, OutOfSync, then Synced
    and Healthy; by namespace and name within each."""
    chosen = [r for r in rows if filters.matches(r)]
    return sorted(chosen, key=lambda r: (*attention_key(r.status), r.ref.namespace, r.ref.name))


def sync_counts(rows: Sequence[EnvRow]) -> dict[str, int]:
    return count((r.status.sync for r in rows), SYNCS)


def health_counts(rows: Sequence[EnvRow]) -> dict[str, int]:
    return count((r.status.health for r in rows), HEALTHS)
