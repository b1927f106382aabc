"""The state DB's rows as plain dataclasses (never ORM rows), and the functions that
make them from a row's columns in ``rows.BUILD_COLUMNS`` / ``rows.ENV_COLUMNS`` order.

Standard library only: both readers build these, SQLAlchemy's (``rows``, ``queries``)
and the DB-API one of the read commands (``readonly``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from condaops.reconciler.model import EnvRef


@dataclass(frozen=True, slots=True)
class BuildInfo:
    build_id: int
    ref: EnvRef
    spec_hash: str
    state: str
    attempt: int
    reason: str | None
    message: str | None
    retryable: bool
    prefix: str | None
    source: str | None
    source_revision: str | None
    source_path: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    collected_at: datetime | None
    timings: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)  # kind -> location (store-relative)
    published_at: datetime | None = None  # the publish job ran (publish_error says how it went)
    publish_error: str | None = None
    policy_report: str | None = None  # JSON list of policy findings; None: no policy applied
    lock_path: str | None = None  # the committed lockfile the build installed (no solve)


@dataclass(frozen=True, slots=True)
class EnvInfo:
    ref: EnvRef
    source: str | None
    path: str | None
    source_revision: str | None
    desired_spec_hash: str | None
    current_build_id: int | None
    pinned_spec_hash: str | None
    retired: bool
    rejection_reason: str | None
    rejection_message: str | None
    warnings: tuple[str, ...]
    current: BuildInfo | None
    latest: BuildInfo | None  # most recent build of the desired spec
    removed_at: datetime | None = None  # its file disappeared (kept: prune is off)
    removed_revision: str | None = None  # the first source revision without the file
    retired_reason: str | None = None  # Retired (condaops retire) or SourceRemoved (prune)
    retired_message: str | None = None
    display_name: str | None = None  # the file's condaops: display_name:


@dataclass(frozen=True, slots=True)
class SourceInfo:
    name: str
    revision: str | None
    fetched_at: datetime | None
    last_success_at: datetime | None
    error_reason: str | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class ArtifactInfo:
    """One file a build produced; ``location`` is relative to the store root."""

    build_id: int
    kind: str
    location: str
    size: int | None
    sha256: str | None


@dataclass(frozen=True, slots=True)
class RejectedFileInfo:
    """A file of a source that cannot be an environment (no valid name from its path)."""

    source: str
    path: str
    reason: str
    message: str
    revision: str | None
    first_seen_at: datetime


@dataclass(frozen=True, slots=True)
class BuildList:
    """One page of builds, newest first, and how many there are in all."""

    total: int
    items: list[BuildInfo]


@dataclass(frozen=True, slots=True)
class EnvView:
    """An environment with one page of its builds and the files of the builds loaded."""

    env: EnvInfo
    history: BuildList
    artifacts: dict[int, list[ArtifactInfo]]  # build id -> files, for every build loaded


def build_info(r: Any, artifacts: dict[str, str]) -> BuildInfo:
    return BuildInfo(
        build_id=r[0],
        ref=EnvRef(r[1], r[2]),
        spec_hash=r[3],
        state=r[4],
        attempt=r[5],
        reason=r[6],
        message=r[7],
        retryable=r[8],
        prefix=r[9],
        source=r[10],
        source_revision=r[11],
        source_path=r[12],
        queued_at=r[13],
        started_at=r[14],
        finished_at=r[15],
        collected_at=r[16],
        timings=json.loads(r[17]) if r[17] else {},
        artifacts=artifacts,
        published_at=r[18],
        publish_error=r[19],
        policy_report=r[20],
        lock_path=r[21],
    )


def env_info(row: Any, builds: dict[int, BuildInfo], latest_id: int | None) -> EnvInfo:
    (
        _,
        ns,
        name,
        source,
        path,
        revision,
        desired,
        current_id,
        pinned,
        retired_at,
        rejection_reason,
        rejection_message,
        warnings,
        removed_at,
        removed_revision,
        retired_reason,
        retired_message,
        display_name,
    ) = row
    return EnvInfo(
        ref=EnvRef(ns, name),
        source=source,
        path=path,
        source_revision=revision,
        desired_spec_hash=desired,
        current_build_id=current_id,
        pinned_spec_hash=pinned,
        retired=retired_at is not None,
        rejection_reason=rejection_reason,
        rejection_message=rejection_message,
        warnings=tuple(json.loads(warnings)) if warnings else (),
        current=builds.get(current_id) if current_id else None,
        latest=builds.get(latest_id) if latest_id else None,
        removed_at=removed_at,
        removed_revision=removed_revision,
        retired_reason=retired_reason,
        retired_message=retired_message,
        display_name=display_name,
    )
