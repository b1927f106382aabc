"""Sync and health of an environment, as Argo CD shows applications. Pure: no IO.

Two questions, answered apart:

* **sync** — does the linked build realize the specification the source asks for now?
  ``Synced`` when it does; ``OutOfSync`` while a build of it is queued or running, after
  it failed, while an operator's rollback holds an older build, or when the file is gone
  but its build is kept (prune is off).
* **health** — can people use the environment? ``Healthy`` (a build is linked and nothing
  failed), ``Progressing`` (a build of the wanted specification is queued, running or
  waiting for a retry), ``Degraded`` (the wanted specification failed, or the file cannot
  be an environment), ``Missing`` (nothing is linked and nothing is on its way).

Badges say why an environment that is not ``Synced`` is so on purpose: ``held`` (rolled
back), ``removed-kept`` (its file is gone, the build stays linked), ``locked`` (installed
from a committed lockfile, no solve).

``since`` is when the current state began, as far as the state DB tells; ``revision`` the
source revision the state comes from (the newest build's, or the first one without the
file for a removed environment), so "what is broken, since when, from which commit" is
one row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from condaops.reconciler.model import BUILDING, FAILED, QUEUED
from condaops.reconciler.reasons import Reason
from condaops.reconciler.state.queries import BuildInfo, EnvInfo

SYNCED, OUT_OF_SYNC = "Synced", "OutOfSync"
HEALTHY, PROGRESSING, DEGRADED, MISSING = "Healthy", "Progressing", "Degraded", "Missing"
SYNCS = (SYNCED, OUT_OF_SYNC)
HEALTHS = (HEALTHY, PROGRESSING, DEGRADED, MISSING)
HELD, REMOVED_KEPT, LOCKED = "held", "removed-kept", "locked"
BADGES = (HELD, REMOVED_KEPT, LOCKED)
BADGE_TITLES = {
    HELD: "held by a rollback: a new change to the file resumes building",
    REMOVED_KEPT: "its file was removed from the source; the build stays linked (prune is off)",
    LOCKED: "installed from a committed lockfile, without solving",
}
# Attention order: what is broken first, then what is on its way, then what is held.
_RANK = {DEGRADED: 0, MISSING: 1, PROGRESSING: 2, HEALTHY: 3}


@dataclass(frozen=True, slots=True)
class SyncHealth:
    sync: str
    health: str
    badges: tuple[str, ...]
    since: datetime | None  # when this state began, when known
    revision: str | None  # the source revision this state comes from
    build_id: int | None  # the build to open for details (the newest one of the wanted spec)

    @property
    def ok(self) -> bool:
        return self.sync == SYNCED and self.health == HEALTHY


def sync_health(env: EnvInfo, state: str, reason: str | None) -> SyncHealth:
    """Sync and health of ``env`` whose derived state (``reconciler.status.derive_state``)
    is ``state`` / ``reason``."""
    current, latest = env.current, env.latest
    wanted = env.desired_spec_hash
    of_wanted = latest if latest is not None and latest.spec_hash == wanted else None
    badges = _badges(env, reason)
    basis = of_wanted or current
    revision = basis.source_revision if basis is not None else env.source_revision
    if env.removed_at is not None:
        health = HEALTHY if current is not None else MISSING
        return SyncHealth(OUT_OF_SYNC, health, badges, env.removed_at, env.removed_revision, _id(current))
    if env.rejection_reason:
        return SyncHealth(OUT_OF_SYNC, DEGRADED, badges, None, env.source_revision, _id(latest))
    if HELD in badges:
        return SyncHealth(OUT_OF_SYNC, HEALTHY, badges, _finished(current), env.source_revision, _id(current))
    if of_wanted is not None and of_wanted.state in (QUEUED, BUILDING):
        since = of_wanted.started_at or of_wanted.queued_at
        return SyncHealth(OUT_OF_SYNC, PROGRESSING, badges, since, revision, of_wanted.build_id)
    if of_wanted is not None and of_wanted.state == FAILED:
        health = DEGRADED if state == "failed" else PROGRESSING  # a retry is pending
        return SyncHealth(OUT_OF_SYNC, health, badges, _finished(of_wanted), revision, of_wanted.build_id)
    if current is not None and current.spec_hash == wanted and state == "ready":
        return SyncHealth(SYNCED, HEALTHY, badges, _finished(current), current.source_revision, current.build_id)
    health = HEALTHY if current is not None else MISSING
    return SyncHealth(OUT_OF_SYNC, health, badges, _finished(of_wanted), revision, _id(of_wanted or current))


def _badges(env: EnvInfo, reason: str | None) -> tuple[str, ...]:
    shown = env.current or env.latest
    badges = [HELD] if reason == Reason.ROLLED_BACK else []  # derive_state: pinned by `condaops rollback`
    if env.removed_at is not None:
        badges.append(REMOVED_KEPT)
    if shown is not None and shown.lock_path:
        badges.append(LOCKED)
    return tuple(badges)


def _finished(build: BuildInfo | None) -> datetime | None:
    if build is None:
        return None
    return build.finished_at or build.started_at or build.queued_at


def _id(build: BuildInfo | None) -> int | None:
    return build.build_id if build is not None else None


# --- counting, filtering, ordering ------------------------------------------------------


def count(values: Iterable[str], names: Sequence[str]) -> dict[str, int]:
    """How many of each name, every name present (zero included), in display order."""
    counts = dict.fromkeys(names, 0)
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def attention_key(status: SyncHealth) -> tuple[int, int]:
    """Sort key: Degraded, Missing, Progressing, then OutOfSync but healthy, then Synced."""
    return (_RANK.get(status.health, 3), 0 if status.sync == OUT_OF_SYNC else 1)
