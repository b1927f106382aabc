"""Deriving the user-facing state of an environment from recorded data. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from condaops.reconciler.model import BUILDING, COMPLETED, FAILED, QUEUED, DeliveryRecord
from condaops.reconciler.state.queries import EnvInfo

PENDING, READY = "pending", "ready"
STATES = ("pending", "building", "ready", "failed")


def derive_state(env: EnvInfo, *, retries: int) -> tuple[str, str | None, str | None]:
    """(state, reason, message) for an environment: pending, building, ready or failed."""
    if env.rejection_reason:
        return FAILED, env.rejection_reason, env.rejection_message
    latest = env.latest
    wanted = env.desired_spec_hash
    if env.pinned_spec_hash and env.pinned_spec_hash == wanted and env.current:
        return READY, "RolledBack", f"rolled back to build {env.current.build_id}"
    if latest is not None and latest.spec_hash == wanted and latest.state != COMPLETED:
        if latest.state == QUEUED:
            return PENDING, latest.reason, latest.message
        if latest.state == BUILDING:
            return BUILDING, latest.reason, latest.message
        if latest.state == FAILED:
            if latest.retryable and latest.attempt <= retries:
                return PENDING, "RetryPending", f"attempt {latest.attempt} failed: {latest.message}"
            return FAILED, latest.reason, latest.message
        return PENDING, latest.reason, latest.message  # canceled: the next plan rebuilds it
    if env.current is not None and env.current.spec_hash == wanted:
        return READY, "UpToDate", None
    return PENDING, None, None


def status_item(
    env: EnvInfo, *, retries: int, store: Path, deliveries: Sequence[DeliveryRecord] = ()
) -> dict[str, object]:
    """The JSON object ``condaops status --json`` prints for one environment."""
    state, reason, message = derive_state(env, retries=retries)
    cur = env.current
    shown = cur or env.latest
    return {
        "namespace": env.ref.namespace,
        "name": env.ref.name,
        "state": state,
        "build_id": cur.build_id if cur else None,
        "latest_build_id": env.latest.build_id if env.latest else None,
        "prefix": str(store / env.ref.namespace / "envs" / env.ref.name) if cur else None,
        "build_prefix": cur.prefix if cur else None,
        "spec_hash": env.desired_spec_hash,
        "current_spec_hash": cur.spec_hash if cur else None,
        "reason": reason,
        "message": message,
        "source": env.source,
        "path": env.path,
        "revision": env.source_revision,
        "built_from_revision": cur.source_revision if cur else None,
        # the commit (or directory digest) the newest build — running, failed or done — came from
        "latest_revision": env.latest.source_revision if env.latest else None,
        "warnings": list(env.warnings),
        "artifacts": {k: str(store / v) for k, v in sorted((shown.artifacts if shown else {}).items())},
        # kernels, modulefiles and names written for it: what users pick or type (``use``), where, for which build
        "deliveries": [
            {"kind": d.kind, "name": d.name, "use": d.use, "build_id": d.build_id, "path": d.path, "error": d.error}
            for d in deliveries
        ],
    }
