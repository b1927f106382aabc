"""The column lists and statements that read the state DB's rows into the plain
dataclasses of ``infos`` (re-exported here; shared by ``queries`` and the status site's
readers; never ORM rows)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, bindparam, select

from condaops.reconciler.state.infos import (
    ArtifactInfo,
    BuildInfo,
    BuildList,
    EnvInfo,
    EnvView,
    RejectedFileInfo,
    SourceInfo,
    build_info,
    env_info,
)
from condaops.reconciler.state.schema import Artifact, Build, Environment, Namespace, Specification

# Column lists and statements built once: the status site reads these many times per
# second, and plain rows from prepared statements are several times cheaper than ORM
# objects. The results are the same dataclasses.
ENV_COLUMNS = (
    Environment.id,
    Namespace.name,
    Environment.name,
    Environment.source,
    Environment.path,
    Environment.source_revision,
    Environment.desired_spec_hash,
    Environment.current_build_id,
    Environment.pinned_spec_hash,
    Environment.retired_at,
    Environment.rejection_reason,
    Environment.rejection_message,
    Environment.warnings,
    Environment.removed_at,
    Environment.removed_revision,
    Environment.retired_reason,
    Environment.retired_message,
    Environment.display_name,
)
BUILD_COLUMNS = (
    Build.id,
    Namespace.name,
    Environment.name,
    Specification.sha256,
    Build.state,
    Build.attempt,
    Build.reason,
    Build.message,
    Build.retryable,
    Build.prefix,
    Build.source,
    Build.source_revision,
    Build.source_path,
    Build.queued_at,
    Build.started_at,
    Build.finished_at,
    Build.collected_at,
    Build.timings,
    Build.published_at,
    Build.publish_error,
    Build.policy_report,
    Build.lock_path,
)
ENVS = select(*ENV_COLUMNS).join(Namespace, Environment.namespace_id == Namespace.id)
BUILDS_BY_ID = (
    select(*BUILD_COLUMNS)
    .join(Specification, Build.specification_id == Specification.id)
    .join(Environment, Build.environment_id == Environment.id)
    .join(Namespace, Environment.namespace_id == Namespace.id)
    .where(Build.id.in_(bindparam("ids", expanding=True)))
)
ARTIFACTS_BY_BUILD = (
    select(Artifact.build_id, Artifact.kind, Artifact.location, Artifact.size, Artifact.sha256)
    .where(Artifact.build_id.in_(bindparam("ids", expanding=True)))
    .order_by(Artifact.build_id, Artifact.id)
)
LOCATIONS_BY_BUILD = (
    select(Artifact.build_id, Artifact.kind, Artifact.location)
    .where(Artifact.build_id.in_(bindparam("ids", expanding=True)))
    .order_by(Artifact.build_id, Artifact.id)
)
__all__ = [
    "ARTIFACTS_BY_BUILD",
    "BUILDS_BY_ID",
    "BUILD_COLUMNS",
    "ENVS",
    "ENV_COLUMNS",
    "LOCATIONS_BY_BUILD",
    "ArtifactInfo",
    "BuildInfo",
    "BuildList",
    "EnvInfo",
    "EnvView",
    "RejectedFileInfo",
    "SourceInfo",
    "build_info",
    "env_info",
    "load_builds",
]
_CHUNK = 500  # ids per IN (...) list


def load_builds(conn: Connection, ids: Collection[int]) -> dict[int, BuildInfo]:
    """BuildInfo by id, with artifact locations, in two queries per chunk of ids."""
    wanted = sorted(set(ids))
    rows: list[Any] = []
    locations: dict[int, dict[str, str]] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        rows += conn.execute(BUILDS_BY_ID, {"ids": chunk}).all()
        for build_id, kind, location in conn.execute(LOCATIONS_BY_BUILD, {"ids": chunk}):
            locations.setdefault(build_id, {})[kind] = location
    return {r[0]: build_info(r, locations.get(r[0], {})) for r in rows}
