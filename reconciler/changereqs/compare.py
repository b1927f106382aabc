"""What a change request changes, as data: pure, standard library only.

A change request is reviewed the way reviewers read a pull request's "files changed":
``compare_snapshots`` diffs the desired state at the **merge base** of the head and the
target with the state at the head, so an environment the request never touched is never
shown as changed, however far the target moved. What the target did since the merge base
to environments the request *does* touch is told apart (``target_moves``): merging then
gives a result this review did not solve.

An environment whose file the request leaves alone but whose *policy* it changes (a
``condaops-policy.yaml`` it adds, edits or removes) is a change of its own kind,
``policy``: it is solved and checked again, though no package changes.

``ChangeReport`` holds the outcome (package diffs per environment and platform come from
solving both sides, and the policy findings from checking the head's solve, at the edge:
``review``); ``render`` turns it into Markdown and JSON.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field

from condaops.reconciler.model import DesiredEnv, EnvRef, Rejection, SourceSnapshot
from condaops.reconciler.pkgdiff import PackageDiff
from condaops.reconciler.policy.findings import INVALID as INVALID_POLICY
from condaops.reconciler.policy.findings import Violation
from condaops.reconciler.reasons import Reason

ADDED, CHANGED, REMOVED, UNCHANGED, INVALID = "added", "changed", "removed", "unchanged", "invalid"
POLICY = "policy"  # the spec is unchanged but the policy that applies to it changed: checked again
KINDS = (ADDED, CHANGED, REMOVED, INVALID, POLICY)
SOLVED_KINDS = (ADDED, CHANGED, REMOVED, POLICY)

# Reasons a review carries (stored and shown as-is).
TARGET_MOVED = Reason.TARGET_MOVED  # the target changed an environment this request touches since the merge base
FORCE_PUSHED = Reason.FORCE_PUSHED  # the head was rewritten: the previously reviewed head is not in its history
REMOVES_EVERYTHING = Reason.REMOVES_EVERY_ENVIRONMENT  # the head has no environment file left (production is untouched)
MERGE_BASE_MISSING = Reason.MERGE_BASE_MISSING  # head and target share no history (a fork with unrelated history)
HISTORY_TOO_SHALLOW = Reason.HISTORY_TOO_SHALLOW  # a shallow clone's history does not reach the merge base

FILE_DIFF_LINES = 400  # a longer diff of one environment file is cut (the file itself is at most 1 MiB)


@dataclass(frozen=True, slots=True)
class EnvChange:
    """One environment's fate under a change request: ``base`` at the merge base, ``head``
    at the change request's head."""

    ref: EnvRef
    kind: str
    base: DesiredEnv | None = None
    head: DesiredEnv | None = None
    rejection: Rejection | None = None

    @property
    def path(self) -> str:
        env = self.head or self.base
        return env.path if env else (self.rejection.path if self.rejection else "")


def compare_snapshots(base: SourceSnapshot, head: SourceSnapshot) -> list[EnvChange]:
    """Environments added, changed, removed or made invalid by ``head``, relative to ``base``,
    and those whose policy alone it changed. The snapshots carry effective policies
    (``desired.effective``)."""
    before = {e.ref: e for e in base.envs}
    after = {e.ref: e for e in head.envs}
    invalid = {r.ref: r for r in head.rejections if r.ref is not None}
    was_invalid = {r.ref: r for r in base.rejections if r.ref is not None}
    out: list[EnvChange] = []
    for ref in sorted(before.keys() | after.keys() | invalid.keys()):
        b, h = before.get(ref), after.get(ref)
        if ref in invalid:
            if was_invalid.get(ref) != invalid[ref] or b is not None:  # broken by this request
                out.append(EnvChange(ref, INVALID, b, None, invalid[ref]))
            else:  # broken before it, and left as it was
                out.append(EnvChange(ref, UNCHANGED, None, None, invalid[ref]))
        elif b is None:
            out.append(EnvChange(ref, ADDED, None, h))
        elif h is None:
            out.append(EnvChange(ref, REMOVED, b, None))
        elif b.spec.spec_hash != h.spec.spec_hash:
            out.append(EnvChange(ref, CHANGED, b, h))
        elif b.policy_hash != h.policy_hash:
            out.append(EnvChange(ref, POLICY, b, h))
        else:
            out.append(EnvChange(ref, UNCHANGED, b, h))
    return out


def target_moves(changes: list[EnvChange], target: SourceSnapshot) -> dict[EnvRef, DesiredEnv | None]:
    """The environments this request touches that the target changed since the merge base
    (their file, or the policy that applies to them): ref -> the target's version now
    (None: removed there). Empty when the target did not move, or moved only elsewhere."""
    now = {e.ref: e for e in target.envs}
    out: dict[EnvRef, DesiredEnv | None] = {}
    for change in changes:
        if change.kind == UNCHANGED:
            continue
        if _identity(now.get(change.ref)) != _identity(change.base):
            out[change.ref] = now.get(change.ref)
    return out


def _identity(env: DesiredEnv | None) -> tuple[str | None, str | None]:
    return (env.spec.spec_hash, env.policy_hash) if env else (None, None)


def file_diff(old: str | None, new: str | None, old_path: str, new_path: str, *, limit: int = FILE_DIFF_LINES) -> str:
    """A unified diff of one environment file (``None``: the file does not exist there)."""
    lines = list(
        difflib.unified_diff(
            (old or "").splitlines(keepends=True),
            (new or "").splitlines(keepends=True),
            fromfile=f"a/{old_path}" if old is not None else "/dev/null",
            tofile=f"b/{new_path}" if new is not None else "/dev/null",
        )
    )
    lines = [line if line.endswith("\n") else line + "\n" for line in lines]
    if len(lines) > limit:
        lines = lines[:limit] + [f"... ({len(lines) - limit} more lines)\n"]
    return "".join(lines)


@dataclass(frozen=True, slots=True)
class TargetMove:
    """The target changed this environment since the merge base: merging gives a result
    this review did not solve. ``diffs`` compare the target's version now with the head's."""

    target: DesiredEnv | None
    message: str
    diffs: dict[str, PackageDiff] = field(default_factory=dict)
    error: str | None = None  # the target's version does not solve
    # Only the target's policy moved: the head's solve checked against the target's policy,
    # which is what merging gives when the request leaves the policy alone.
    policy: tuple[Violation, ...] = ()


@dataclass(frozen=True, slots=True)
class EnvReport:
    change: EnvChange
    diffs: dict[str, PackageDiff] = field(default_factory=dict)  # platform -> diff (merge base -> head)
    error: str | None = None  # e.g. the head spec does not solve
    file_diff: str = ""  # unified diff of the environment file, merge base -> head
    target: TargetMove | None = None
    policy: tuple[Violation, ...] = ()  # the head's policy on the head's solve (every platform)

    @property
    def blocked(self) -> bool:
        """The head breaks a blocking policy rule (or a policy file that applies is invalid)."""
        return any(v.blocking for v in self.policy)

    @property
    def policy_invalid(self) -> bool:
        return any(v.rule == INVALID_POLICY for v in self.policy)


@dataclass(frozen=True, slots=True)
class Note:
    """Something about the whole request a reviewer must know."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class ChangeReport:
    """The review report for one change request. ``base_revision`` is the merge base."""

    source: str
    ref: str
    base_revision: str | None
    head_revision: str | None
    envs: tuple[EnvReport, ...]
    unnamed_rejections: tuple[Rejection, ...] = ()
    target_revision: str | None = None
    head_commit: Mapping[str, str] | None = None  # sha, author, time, message
    notes: tuple[Note, ...] = ()

    @property
    def changed(self) -> tuple[EnvReport, ...]:
        return tuple(e for e in self.envs if e.change.kind != UNCHANGED)

    @property
    def has_changes(self) -> bool:
        return bool(self.changed) or bool(self.unnamed_rejections)

    @property
    def has_errors(self) -> bool:
        """An environment is invalid or does not solve (policy findings are told apart)."""
        return any(e.error or e.change.kind == INVALID for e in self.changed) or bool(self.unnamed_rejections)

    @property
    def has_violations(self) -> bool:
        """A changed environment breaks a blocking policy rule (an invalid policy file included)."""
        return any(e.blocked for e in self.changed)

    @property
    def policy_invalid(self) -> bool:
        """A policy file that applies to a changed environment cannot be read."""
        return any(e.policy_invalid for e in self.changed)

    @property
    def target_moved(self) -> bool:
        return any(e.target is not None for e in self.envs)

    def counts(self) -> dict[str, int]:
        return {k: n for k in KINDS if (n := sum(1 for e in self.changed if e.change.kind == k))}


def whole_request_notes(base: SourceSnapshot, head: SourceSnapshot) -> tuple[Note, ...]:
    """Notes that follow from the two snapshots alone."""
    if base.envs and not head.envs and not head.rejections:
        return (
            Note(
                REMOVES_EVERYTHING,
                f"this change request removes every environment file ({len(base.envs)}); production keeps "
                "them unless the source has both 'prune' and 'allow_empty'",
            ),
        )
    return ()
