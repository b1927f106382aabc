"""What an update run does, decided from plain data. Pure: no IO.

* ``selected`` — the environments an ``updates.environments`` list of globs names;
* ``branch_name`` and ``grouped`` — one branch per environment (``<prefix>/<ns>/<name>``)
  or per namespace (``<prefix>/<ns>``);
* ``decide`` — for one branch, from the new proposal, the branch on the remote and what
  the state DB recorded about it:

  - someone else pushed to the branch (its head commit lacks condaops' trailer) → ``hold``:
    nothing is pushed, and the pull request says why;
  - nothing to propose while our pull request is open → ``close`` it (the target has the
    packages, or the environment left the selection);
  - a proposal a person dismissed (closed the pull request unmerged) → ``keep``: it is not
    proposed again until the solution changes;
  - the proposal already on the branch → ``keep`` (``open`` if the record was closed);
  - otherwise → ``push`` a new commit on top of the target, replacing the branch (expected
    to be where it was seen: compare-and-swap).
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from condaops.reconciler.model import EnvRef
from condaops.reconciler.pkgdiff import PackageDiff

PUSH, KEEP, CLOSE, HOLD, OPEN = "push", "keep", "close", "hold", "open"
OPEN_STATE, CLOSED_STATE, HELD_STATE = "open", "closed", "held"  # recorded states of an update branch
TRAILER = "Condaops-Branch"  # ends every commit condaops makes on an update branch


@dataclass(frozen=True)
class EnvUpdate:
    """A new lock for one environment: its path (below the source root), bytes, package
    digest, the package changes per platform and what the cooldown held back."""

    ref: EnvRef
    spec_path: str
    lock_path: str
    data: bytes = field(repr=False)
    digest: str
    diffs: dict[str, PackageDiff]
    held: tuple[str, ...] = ()


@dataclass(frozen=True)
class Proposal:
    branch: str
    updates: tuple[EnvUpdate, ...]

    @property
    def digest(self) -> str:
        """Identifies what is proposed: the environments and their new locks' packages."""
        text = "\n".join(sorted(f"{u.ref} {u.digest}" for u in self.updates))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def refs(self) -> list[str]:
        return sorted(str(u.ref) for u in self.updates)


@dataclass(frozen=True, slots=True)
class BranchState:
    """The branch on the remote: its head commit (None: no such branch) and whether that
    commit is condaops' own."""

    head: str | None = None
    ours: bool = False


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the state DB holds about a branch."""

    state: str
    digest: str | None = None
    head_sha: str | None = None
    dismissed_digest: str | None = None  # a person closed the pull request proposing this


@dataclass(frozen=True, slots=True)
class Decision:
    kind: str
    message: str = ""


def selected(refs: Iterable[EnvRef], patterns: Sequence[str]) -> list[EnvRef]:
    """The refs matching any ``<ns>/<name>`` glob (``*`` alone: every environment)."""
    return [r for r in refs if any(p == "*" or fnmatch.fnmatchcase(str(r), p) for p in patterns)]


def branch_name(ref: EnvRef, *, prefix: str, group: str) -> str:
    prefix = prefix.rstrip("/")
    return f"{prefix}/{ref.namespace}" if group == "namespace" else f"{prefix}/{ref.namespace}/{ref.name}"


def grouped(updates: Iterable[EnvUpdate], *, prefix: str, group: str) -> dict[str, list[EnvUpdate]]:
    out: dict[str, list[EnvUpdate]] = {}
    for update in sorted(updates, key=lambda u: u.ref):
        out.setdefault(branch_name(update.ref, prefix=prefix, group=group), []).append(update)
    return out


def decide(proposal: Proposal | None, branch: BranchState, recorded: Recorded | None) -> Decision:
    """What to do with one update branch (see the module docstring)."""
    if branch.head is not None and not branch.ours:
        if recorded is None and proposal is None:
            return Decision(KEEP)
        return Decision(
            HOLD,
            f"{branch.head[:12]} on this branch was pushed by someone else: condaops leaves the branch "
            "alone. Merge or close this pull request (or delete the branch) to let condaops propose updates again.",
        )
    if proposal is None:
        if recorded is not None and recorded.state == OPEN_STATE:
            return Decision(CLOSE, "the target branch already has these packages, or nothing is left to update")
        return Decision(KEEP)
    if recorded is not None and recorded.dismissed_digest == proposal.digest:
        return Decision(KEEP, "this proposal was closed without merging; it is made again once newer packages appear")
    on_branch = recorded is not None and recorded.digest == proposal.digest and recorded.head_sha == branch.head
    if on_branch and recorded is not None and branch.head is not None:
        return Decision(OPEN if recorded.state != OPEN_STATE else KEEP)
    return Decision(PUSH)


def is_ours(message: str, branch: str) -> bool:
    """Whether a commit message carries condaops' trailer for ``branch`` (a line of its own)."""
    return f"{TRAILER}: {branch}" in (line.strip() for line in message.splitlines())
