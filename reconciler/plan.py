"""Plan: the pure diff of desired against recorded state.

``plan()`` has no side effects: it reads plain data (source snapshots from the sources,
recorded environments from the state DB, a clock value) and returns a list of actions,
each with a CamelCase reason. Carrying actions out is the recorder's and scheduler's job.

Decisions, in order, for each environment:

* a source that could not be read (or was torn mid-write) retires nothing and builds
  nothing from that source: its environments keep their current build;
* an environment rolled back by an operator stays on its build while the source still
  wants the spec it was rolled back from (``RolledBack``);
* a file that failed to parse is a ``reject`` (the current build, if any, stays linked);
* the same ``<ns>/<name>`` from two sources is rejected in both (``DuplicateEnvironment``);
* a desired spec with no build yet → ``build`` (``NewEnvironment`` / ``SpecChanged``);
* a linked build whose prefix vanished from disk → ``build`` (``BuildMissing``);
* a build of the desired spec queued or running → ``noop`` (``BuildInProgress``);
* a failed, retryable build with attempts left → ``build`` (``RetryScheduled``) once its
  backoff has passed, else ``wait`` until then (``RetryPending``);
* a failed build with no attempts left or that retrying cannot fix → ``hold`` with the
  failure's reason, until the spec changes;
* the effective policy changed since the latest build of the desired spec was checked
  (a policy file or the site rules) → ``build`` (``PolicyChanged``) when that build
  completed or failed on the policy, so the new rules are checked (a failure keeps the
  linked build);
* an environment whose file is gone → ``retire`` (``SourceRemoved``) only when
  ``prune`` is on and the source revision is readable and not empty (unless the source
  is allowed to be empty); otherwise ``noop`` (``SourceRemovedKept``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import compress
from operator import attrgetter

from condaops.reconciler.model import (
    ACTIVE_STATES,
    CANCELED,
    COMPLETED,
    FAILED,
    DesiredEnv,
    EnvRef,
    Policy,
    RecordedBuild,
    RecordedEnv,
    Rejection,
    SourceSnapshot,
)
from condaops.reconciler.reasons import Reason
from condaops.reconciler.spec import Spec

# Action kinds.
BUILD, RETIRE, REJECT, NOOP, WAIT, HOLD = "build", "retire", "reject", "noop", "wait", "hold"
CHANGE_KINDS = frozenset({BUILD, RETIRE, REJECT})

# Reasons.
NEW_ENVIRONMENT = Reason.NEW_ENVIRONMENT
SPEC_CHANGED = Reason.SPEC_CHANGED
BUILD_MISSING = Reason.BUILD_MISSING
REBUILD = Reason.REBUILD
UP_TO_DATE = Reason.UP_TO_DATE
BUILD_IN_PROGRESS = Reason.BUILD_IN_PROGRESS
RETRY_SCHEDULED = Reason.RETRY_SCHEDULED
RETRY_PENDING = Reason.RETRY_PENDING
RETRIES_EXHAUSTED = Reason.RETRIES_EXHAUSTED
SOURCE_REMOVED = Reason.SOURCE_REMOVED
SOURCE_REMOVED_KEPT = Reason.SOURCE_REMOVED_KEPT
SOURCE_UNREADABLE = Reason.SOURCE_UNREADABLE
SOURCE_EMPTY = Reason.SOURCE_EMPTY
SOURCE_NOT_CONFIGURED = Reason.SOURCE_NOT_CONFIGURED
DUPLICATE_ENVIRONMENT = Reason.DUPLICATE_ENVIRONMENT
ROLLED_BACK = Reason.ROLLED_BACK
POLICY_CHANGED = Reason.POLICY_CHANGED  # the environment's policy changed since its build was checked
POLICY_REASONS = frozenset({Reason.POLICY_VIOLATION, Reason.POLICY_INVALID})  # build failures a policy change can fix


@dataclass(frozen=True, slots=True)
class Action:
    """One thing to do (or knowingly not do) for one environment."""

    kind: str
    ref: EnvRef
    reason: str
    message: str = ""
    spec_hash: str | None = None
    desired: DesiredEnv | None = None
    rejection: Rejection | None = None
    attempt: int = 1
    not_before: datetime | None = None
    revision: str | None = None  # for an absent environment: the source revision without its file

    @property
    def is_change(self) -> bool:
        return self.kind in CHANGE_KINDS


@dataclass(frozen=True, slots=True)
class Plan:
    """The actions for every environment, plus source-level notes."""

    actions: tuple[Action, ...] = ()
    notes: tuple[str, ...] = ()
    unnamed_rejections: tuple[Rejection, ...] = field(default=())

    @property
    def changes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.is_change)

    @property
    def has_changes(self) -> bool:
        return any(a.is_change for a in self.actions) or bool(self.unnamed_rejections)

    def by_kind(self, kind: str) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.kind == kind)

    def next_wakeup(self) -> datetime | None:
        """When a waiting retry becomes due (the loop re-plans then)."""
        times = [a.not_before for a in self.actions if a.kind == WAIT and a.not_before]
        return min(times) if times else None


def plan(
    snapshots: Iterable[SourceSnapshot],
    recorded: Mapping[EnvRef, RecordedEnv],
    *,
    policy: Policy,
    now: datetime,
    only: Collection[EnvRef] | None = None,
) -> Plan:
    """Diff desired against recorded state. Pure: no IO, no clock, no randomness.

    ``only`` limits the actions to these environments (the caller knows nothing changed
    for the others, and keeps their earlier actions); each is decided exactly as in a
    full plan. Notes and unnamed rejections are always of every source."""
    snapshots = list(snapshots)
    desired, rejected, duplicates = _collect(snapshots, only)
    readable = {s.source: s for s in snapshots if s.error is None}
    unreadable = {s.source: s for s in snapshots if s.error is not None}
    actions: list[Action] = []

    def chosen(found: Mapping[EnvRef, object]) -> list[EnvRef]:
        return sorted(found if only is None else (ref for ref in only if ref in found))

    for ref in chosen(desired):
        actions.append(_decide(desired[ref], recorded.get(ref), policy, now))
    for ref in chosen(rejected):
        actions.append(_reject(ref, rejected[ref]))
    for ref in chosen(duplicates):
        actions.append(_duplicate(ref, duplicates[ref]))

    for ref in chosen(recorded):
        rec = recorded[ref]
        if ref in desired or ref in rejected or ref in duplicates or rec.retired:
            continue
        actions.append(_absent(rec, readable, unreadable, policy))

    notes = tuple(f"{s.source}: {s.error_reason or SOURCE_UNREADABLE}: {s.error}" for s in unreadable.values())
    unnamed = tuple(r for s in snapshots for r in s.rejections if r.ref is None)
    return Plan(actions=tuple(actions), notes=notes, unnamed_rejections=unnamed)


def _collect(
    snapshots: list[SourceSnapshot], only: Collection[EnvRef] | None = None
) -> tuple[dict[EnvRef, DesiredEnv], dict[EnvRef, Rejection], dict[EnvRef, list[Rejection]]]:
    """Merge sources; a ref claimed by two sources is a duplicate in both. Given ``only``,
    the environments of those refs alone (every claim on them is still seen)."""
    desired: dict[EnvRef, DesiredEnv] = {}
    more: dict[EnvRef, list[DesiredEnv | Rejection]] = {}  # refs claimed by a rejection or twice
    for snap in snapshots:
        if snap.error is not None:
            continue
        envs = snap.envs if only is None else of_only(snap.envs, only)
        for env in envs:
            if env.ref in desired or env.ref in more:
                more.setdefault(env.ref, [desired.pop(env.ref)] if env.ref in desired else []).append(env)
            else:
                desired[env.ref] = env  # the common case: one file, no list made
        for rej in snap.rejections:
            if rej.ref is not None:
                more.setdefault(rej.ref, [desired.pop(rej.ref)] if rej.ref in desired else []).append(rej)
    rejected: dict[EnvRef, Rejection] = {}
    duplicates: dict[EnvRef, list[Rejection]] = {}
    for ref, items in more.items():
        if len({i.source for i in items}) > 1:
            duplicates[ref] = [_as_rejection(ref, i) for i in items]
        elif isinstance(items[0], DesiredEnv) and len(items) == 1:
            desired[ref] = items[0]
        else:
            rejected[ref] = next(i for i in items if isinstance(i, Rejection))
    return desired, rejected, duplicates


_REF_KEY = attrgetter("ref.namespace", "ref.name")


def of_only(envs: Sequence[DesiredEnv], only: Collection[EnvRef]) -> list[DesiredEnv]:
    """The environments of ``only`` among ``envs``, in order: a scan in C (a pass between
    full checks decides a few environments of many)."""
    keys = {(r.namespace, r.name) for r in only}
    return list(compress(envs, map(keys.__contains__, map(_REF_KEY, envs))))


def _as_rejection(ref: EnvRef, item: DesiredEnv | Rejection) -> Rejection:
    if isinstance(item, Rejection):
        return item
    return Rejection(ref, item.source, item.path, DUPLICATE_ENVIRONMENT, "")


@functools.lru_cache(maxsize=1 << 16)
def spec_hash_of(spec: Spec) -> str:
    """``spec.spec_hash``, kept for the specs seen last (hashing the canonical JSON of
    10,000 specs at every full plan is most of its cost; equal specs hash alike)."""
    return spec.spec_hash


def _decide(env: DesiredEnv, rec: RecordedEnv | None, policy: Policy, now: datetime) -> Action:
    spec_hash = spec_hash_of(env.spec)

    def act(kind: str, reason: str, message: str = "", **kw: object) -> Action:
        return Action(kind, env.ref, reason, message, spec_hash=spec_hash, desired=env, **kw)  # type: ignore[arg-type]  # kw holds Action's optional fields by name

    if rec is None or rec.retired or rec.current_spec_hash is None and rec.latest is None:
        return act(BUILD, NEW_ENVIRONMENT, f"{env.path}: new environment")
    if rec.pinned_spec_hash == spec_hash:
        return act(NOOP, ROLLED_BACK, "rolled back by an operator; a new spec change resumes building")
    latest = rec.latest if rec.latest and rec.latest.spec_hash == spec_hash else None
    if latest is not None and _policy_changed(env, latest):
        return act(BUILD, POLICY_CHANGED, f"{env.path}: the policy changed since build {latest.build_id}")
    if rec.current_spec_hash == spec_hash and (latest is None or latest.state == COMPLETED):
        if not rec.prefix_present:
            return act(BUILD, BUILD_MISSING, "the linked prefix is missing on disk; rebuilding")
        return act(NOOP, UP_TO_DATE)
    if latest is None:
        reason = SPEC_CHANGED if rec.current_spec_hash else NEW_ENVIRONMENT
        return act(BUILD, reason, f"{env.path}: specification changed")
    if latest.state in ACTIVE_STATES:
        return act(NOOP, BUILD_IN_PROGRESS, f"build {latest.build_id} is {latest.state}")
    if latest.state == COMPLETED:
        # Built but not linked (superseded while building, or link failed): relink by building anew.
        return act(BUILD, REBUILD, f"build {latest.build_id} completed but is not linked")
    if latest.state == CANCELED:
        return act(BUILD, REBUILD, f"build {latest.build_id} was canceled")
    return _after_failure(act, latest, policy, now)


def _policy_changed(env: DesiredEnv, latest: RecordedBuild) -> bool:
    """Whether the build must be checked again: its policy differs from the desired one
    and it finished in a state that policy decided (completed, or failed on the policy)."""
    if latest.policy_hash == env.policy_hash:
        return False
    return latest.state == COMPLETED or (latest.state == FAILED and latest.reason in POLICY_REASONS)


def _after_failure(act: Callable[..., Action], latest: RecordedBuild, policy: Policy, now: datetime) -> Action:
    assert latest.state == FAILED
    if not latest.retryable:
        if latest.reason in POLICY_REASONS:
            return act(HOLD, latest.reason, "change the environment or the policy to try again")
        return act(HOLD, latest.reason or Reason.BUILD_FAILED, "fix the specification to try again")
    if latest.attempt > policy.retries:
        return act(
            HOLD,
            RETRIES_EXHAUSTED,
            f"{latest.reason or Reason.BUILD_FAILED} after {latest.attempt} attempts",
        )
    due = (latest.finished_at or now) + timedelta(seconds=backoff_delay(latest.attempt, policy))
    if due <= now:
        return act(BUILD, RETRY_SCHEDULED, f"attempt {latest.attempt + 1}", attempt=latest.attempt + 1)
    return act(WAIT, RETRY_PENDING, f"attempt {latest.attempt + 1} after {due.isoformat()}", not_before=due)


def backoff_delay(attempt: int, policy: Policy) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): exponential, capped."""
    return min(policy.backoff * (2 ** (attempt - 1)), policy.backoff_max)


def _reject(ref: EnvRef, rejection: Rejection) -> Action:
    return Action(REJECT, ref, rejection.reason, rejection.message, rejection=rejection)


def _duplicate(ref: EnvRef, rejections: list[Rejection]) -> Action:
    places = ", ".join(f"{r.source}:{r.path}" for r in rejections)
    message = f"{ref} is defined more than once ({places}); keep one of them"
    first = rejections[0]
    rej = Rejection(ref, first.source, first.path, DUPLICATE_ENVIRONMENT, message)
    return Action(REJECT, ref, DUPLICATE_ENVIRONMENT, message, rejection=rej)


def _absent(
    rec: RecordedEnv,
    readable: Mapping[str, SourceSnapshot],
    unreadable: Mapping[str, SourceSnapshot],
    policy: Policy,
) -> Action:
    """An environment the state DB knows but no source currently defines."""
    if rec.source is not None and rec.source in unreadable:
        bad = unreadable[rec.source]
        return Action(NOOP, rec.ref, bad.error_reason or SOURCE_UNREADABLE, bad.error or "")
    snap = readable.get(rec.source or "")
    if snap is None:
        return Action(NOOP, rec.ref, SOURCE_NOT_CONFIGURED, f"source '{rec.source}' is not configured; kept")
    where = f"in revision {_short(snap.revision)}"
    if not policy.prune:
        message = f"file removed {where}; kept because prune is off"
        return Action(NOOP, rec.ref, SOURCE_REMOVED_KEPT, message, revision=snap.revision)
    if not snap.envs and not snap.rejections and snap.source not in policy.allow_empty:
        return Action(NOOP, rec.ref, SOURCE_EMPTY, f"source '{snap.source}' is empty; nothing is retired")
    return Action(RETIRE, rec.ref, SOURCE_REMOVED, f"file removed {where} and prune is on", revision=snap.revision)


def _short(revision: str | None) -> str:
    return (revision or "?")[:12]


# --- rendering -----------------------------------------------------------------------


def plan_to_data(p: Plan) -> dict[str, object]:
    """Plain JSON-ready data for ``condaops plan --format json``."""
    return {
        "changes": p.has_changes,
        "notes": list(p.notes),
        "actions": [
            {
                "environment": str(a.ref),
                "action": a.kind,
                "reason": a.reason,
                "message": a.message,
                "spec_hash": a.spec_hash,
                "path": (a.desired.path if a.desired else a.rejection.path if a.rejection else None),
                "attempt": a.attempt if a.kind == BUILD else None,
                "not_before": a.not_before.isoformat() if a.not_before else None,
            }
            for a in p.actions
        ],
        "rejected_files": [
            {"path": f"{r.source}:{r.path}", "reason": r.reason, "message": r.message} for r in p.unnamed_rejections
        ],
    }


def render_plan(p: Plan, fmt: str = "text") -> str:
    """Render a plan as ``text``, ``json`` or ``markdown``."""
    if fmt == "json":
        return json.dumps(plan_to_data(p), indent=2, sort_keys=True)
    changes = list(p.changes)
    unchanged = len(p.actions) - len(changes)
    if fmt == "markdown":
        lines = ["### condaops plan", ""]
        if changes or p.unnamed_rejections:
            lines += ["| environment | action | reason | detail |", "| --- | --- | --- | --- |"]
            lines += [f"| `{a.ref}` | {a.kind} | {a.reason} | {_md(a.message)} |" for a in changes]
            lines += [f"| `{r.path}` | reject | {r.reason} | {_md(r.message)} |" for r in p.unnamed_rejections]
        else:
            lines.append("No changes.")
        lines += ["", f"{len(changes)} to change, {unchanged} unchanged."]
        lines += [f"> {n}" for n in p.notes]
        return "\n".join(lines)
    lines = [f"{a.kind:7} {a.ref}  {a.reason}  {a.message}".rstrip() for a in changes]
    lines += [f"reject  {r.source}:{r.path}  {r.reason}  {r.message}" for r in p.unnamed_rejections]
    lines += [f"note    {n}" for n in p.notes]
    lines.append(f"{len(changes)} to change, {unchanged} unchanged.")
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
