"""Plain data shared by sources, plan, state and the build steps.

Pure: standard library only. ``plan()`` receives these, never ORM rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from condaops.reconciler.spec import Spec


@dataclass(frozen=True, slots=True, order=True)
class EnvRef:
    """``<namespace>/<name>``: the identity of an environment."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> EnvRef:
        ns, sep, name = text.partition("/")
        if not sep or not ns or not name or "/" in name:
            raise ValueError(f"'{text}' is not <namespace>/<name>")
        return cls(ns, name)


@dataclass(frozen=True, slots=True)
class LockInput:
    """A lockfile committed beside an environment file, as the source read it.

    ``kind`` is ``conda-lock`` or ``pixi-lock``; ``data`` its bytes (the recorder keeps
    them in the state DB for the build that installs them).
    """

    path: str  # relative to the source root
    kind: str
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class DesiredEnv:
    """One environment as a source wants it."""

    ref: EnvRef
    spec: Spec
    source: str
    path: str  # relative to the source root, as the user knows it
    # The source revision this file was read at. A source hands back the environment it
    # read earlier for a file that did not change (no per-environment work for a new
    # revision), so this may be older than the snapshot's revision, at which the file is
    # the same: not part of equality; the pass records the snapshot's revision.
    revision: str = field(compare=False)
    warnings: tuple[str, ...] = ()
    # The effective policy for this environment as canonical JSON (``policy.rules``), set
    # from the snapshot's policy files and the site rules; None when no policy applies.
    policy: str | None = None
    lock: LockInput | None = None  # a committed lockfile beside the environment file

    @property
    def policy_hash(self) -> str | None:
        """What ``plan`` compares with the policy a build was checked against."""
        return hashlib.sha256(self.policy.encode()).hexdigest() if self.policy is not None else None


@dataclass(frozen=True, slots=True)
class PolicyFile:
    """A policy file as a source holds it: its path relative to the source root and its
    bytes, or why it could not be read (``problem``)."""

    path: str
    data: bytes | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A file that could not become a desired environment, and why.

    ``ref`` is None when not even a valid environment name could be derived.
    """

    ref: EnvRef | None
    source: str
    path: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class SourceSnapshot:
    """One observed revision of a source.

    ``error`` is set when the source could not be read at all; ``plan`` then retires
    nothing from it. ``envs`` empty with no error means the source is empty.
    """

    source: str
    revision: str | None
    envs: tuple[DesiredEnv, ...] = ()
    rejections: tuple[Rejection, ...] = ()
    error: str | None = None
    error_reason: str | None = None
    policy_files: tuple[PolicyFile, ...] = ()


# Build states as stored in the state DB.
QUEUED, BUILDING, COMPLETED, FAILED, CANCELED = "queued", "building", "completed", "failed", "canceled"
ACTIVE_STATES = frozenset({QUEUED, BUILDING})


@dataclass(frozen=True, slots=True)
class RecordedBuild:
    """The latest build of an environment, as ``plan`` needs to see it."""

    build_id: int
    spec_hash: str
    state: str
    attempt: int
    reason: str | None = None
    retryable: bool = False
    finished_at: datetime | None = None
    policy_hash: str | None = None  # of the policy the build was checked against


@dataclass(frozen=True, slots=True)
class RecordedEnv:
    """An environment as the state DB knows it."""

    ref: EnvRef
    source: str | None
    current_spec_hash: str | None  # spec of the linked build, None if never linked
    latest: RecordedBuild | None = None  # most recent build attempt of any spec
    retired: bool = False
    prefix_present: bool = True  # observed: the linked prefix still exists on disk
    pinned_spec_hash: str | None = None  # rolled back away from this desired spec
    display_name: str | None = None  # the file's condaops: display_name: as last recorded


@dataclass(frozen=True, slots=True)
class Policy:
    """The parts of Settings that ``plan`` decides with."""

    prune: bool = False
    retries: int = 3
    backoff: float = 30.0
    backoff_max: float = 3600.0
    allow_empty: frozenset[str] = field(default_factory=frozenset)  # sources allowed to empty


@dataclass(frozen=True, slots=True)
class BuildTicket:
    """Everything a worker needs to run one claimed build."""

    build_id: int
    ref: EnvRef
    spec: Spec
    spec_hash: str
    attempt: int
    source: str | None = None
    source_revision: str | None = None
    source_path: str | None = None
    policy: str | None = None  # the effective policy (canonical JSON) to check the solve against
    # The linked build of the same spec, as its pixi.lock (store-relative): this build re-checks
    # what is linked (a policy change) instead of solving and installing into the linked prefix.
    recheck_lock: str | None = None
    lock_path: str | None = None  # the committed lockfile a locked spec installs (``spec.lock``)
    lock_data: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """One file a build produced; ``location`` is relative to the store root."""

    kind: str
    location: str
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class BuildOutcome:
    """What a build step runner reports; the recorder stores it as-is."""

    ok: bool
    reason: str
    message: str = ""
    retryable: bool = False
    prefix: str | None = None
    artifacts: tuple[ArtifactRecord, ...] = ()
    timings: tuple[tuple[str, float], ...] = ()
    linked: bool = False
    # platform -> solved conda records / pip locks, for the package index (successes only)
    records: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    pip: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    policy_report: str | None = None  # JSON list of the policy findings (None: no policy applied)


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """Something written for users of an environment (a kernel, a modulefile, a name for
    ``conda activate``): what they pick or type (``use``), where it is, for which build,
    and why it could not be written (``error``: ``<Reason>: <message>``)."""

    kind: str
    name: str
    build_id: int | None
    path: str
    use: str
    error: str | None = None
