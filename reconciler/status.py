"""Deriving the user-facing state of an environment from recorded data. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from condaops.reconciler.model import BUILDING, COMPLETED, FAILED, QUEUED, DeliveryRecord
from condaops.reconciler.policy.findings import report_from_json
from condaops.reconciler.reasons import Reason
from condaops.reconciler.sources.layout import lock_kind
from condaops.reconciler.state.infos import BuildInfo, EnvInfo, RejectedFileInfo

if TYPE_CHECKING:
    from condaops.reconciler.state.update_queries import UpdateBranchInfo, UpdateReportInfo

PENDING, READY = "pending", "ready"
REMOVED = "removed"  # its file is gone; kept (prune is off), current build still linked
RETIRED = "retired"  # retired by `condaops retire` or by prune; shown only when asked for
STATES = ("pending", "building", "ready", "failed", REMOVED)
LABELS = {REMOVED: "removed (kept)"}  # how a state reads where people look (status, the site)


def derive_state(env: EnvInfo, *, retries: int) -> tuple[str, str | None, str | None]:
    """(state, reason, message) for an environment: pending, building, ready, failed,
    removed (its file is gone, kept) or retired."""
    if env.retired:
        return RETIRED, env.retired_reason or Reason.RETIRED, env.retired_message
    if env.removed_at is not None:
        kept = f"; build {env.current.build_id} stays linked" if env.current else ""
        return (
            REMOVED,
            Reason.SOURCE_REMOVED_KEPT,
            f"{env.path or env.ref} was removed in revision {(env.removed_revision or '?')[:12]}{kept} "
            f"(prune is off); `condaops retire {env.ref}` retires it",
        )
    if env.rejection_reason:
        return FAILED, env.rejection_reason, env.rejection_message
    latest = env.latest
    wanted = env.desired_spec_hash
    if env.pinned_spec_hash and env.pinned_spec_hash == wanted and env.current:
        return READY, Reason.ROLLED_BACK, f"rolled back to build {env.current.build_id}"
    if latest is not None and latest.spec_hash == wanted and latest.state != COMPLETED:
        if latest.state == QUEUED:
            return PENDING, latest.reason, latest.message
        if latest.state == BUILDING:
            return BUILDING, latest.reason, latest.message
        if latest.state == FAILED:
            if latest.retryable and latest.attempt <= retries:
                return PENDING, Reason.RETRY_PENDING, f"attempt {latest.attempt} failed: {latest.message}"
            return FAILED, latest.reason, latest.message
        return PENDING, latest.reason, latest.message  # canceled: the next plan rebuilds it
    if env.current is not None and env.current.spec_hash == wanted:
        return READY, Reason.UP_TO_DATE, None
    return PENDING, None, None


def status_item(
    env: EnvInfo,
    *,
    retries: int,
    store: Path,
    deliveries: Sequence[DeliveryRecord] = (),
    updates: dict[str, object] | None = None,
) -> dict[str, object]:
    """The JSON object ``condaops status --json`` prints for one environment."""
    state, reason, message = derive_state(env, retries=retries)
    cur = env.current if not env.retired else None  # a retired environment is unlinked
    shown = env.current or env.latest
    return {
        "namespace": env.ref.namespace,
        "name": env.ref.name,
        "display_name": env.display_name,  # the file's condaops: display_name: (kernels, modules)
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
        "removed_revision": env.removed_revision,
        "artifacts": {k: str(store / v) for k, v in sorted((shown.artifacts if shown else {}).items())},
        # kernels, modulefiles and names written for it: what users pick or type (``use``), where, for which build
        "deliveries": [
            {"kind": d.kind, "name": d.name, "use": d.use, "build_id": d.build_id, "path": d.path, "error": d.error}
            for d in deliveries
        ],
        "lock": lock_info(cur or env.latest),
        "policy": policy_item(env.latest or cur),
        "sbom": str(store / shown.artifacts["sbom"]) if shown and "sbom" in shown.artifacts else None,
        "signed": bool(shown and "signatures" in shown.artifacts),
        # what the last update check found: newer packages (a pull request for locked environments)
        "updates": updates,
    }


def policy_item(build: BuildInfo | None) -> dict[str, object]:
    """The policy verdict of a build: whether a policy applied and what it found."""
    findings = report_from_json(build.policy_report) if build else []
    return {
        "build_id": build.build_id if build else None,
        "checked": bool(build and build.policy_report is not None),
        "violations": [asdict(v) for v in findings if v.blocking],
        "warnings": [asdict(v) for v in findings if not v.blocking],
    }


_ITEM_KEYS = (
    "namespace",
    "name",
    "display_name",
    "state",
    "build_id",
    "latest_build_id",
    "prefix",
    "build_prefix",
    "spec_hash",
    "current_spec_hash",
    "reason",
    "message",
    "source",
    "path",
    "revision",
    "built_from_revision",
    "latest_revision",
    "warnings",
    "removed_revision",
    "artifacts",
    "lock",
    "updates",
)


def file_status_item(rejected: RejectedFileInfo) -> dict[str, object]:
    """How ``condaops status --json`` lists a file that cannot be an environment: failed,
    with its reason, and no namespace or name (none could be derived from its path)."""
    item: dict[str, object] = dict.fromkeys(_ITEM_KEYS)  # the shape of every item, for consumers
    item.update(
        state="failed",
        reason=rejected.reason,
        message=rejected.message,
        source=rejected.source,
        path=rejected.path,
        revision=rejected.revision,
        warnings=[],
        artifacts={},
    )
    return item


def lock_info(build: BuildInfo | None) -> dict[str, str | None] | None:
    """The committed lockfile a build installed (``{"path", "kind"}``), None for a solved build."""
    if build is None or build.lock_path is None:
        return None
    return {"path": build.lock_path, "kind": lock_kind(build.lock_path.rsplit("/", 1)[-1])}


def updates_item(
    report: UpdateReportInfo | None, branches: Mapping[tuple[str, str], UpdateBranchInfo]
) -> dict[str, object] | None:
    """``updates`` of a status item: the last check's package changes and, for a locked
    environment, its update branch and pull request. None when no check looked at it."""
    if report is None:
        return None
    branch = branches.get((report.source, report.branch or ""))
    pull = None
    if branch is not None:
        pull = {
            "branch": branch.branch,
            "state": branch.state,
            "number": branch.pr_number,
            "url": branch.pr_url,
            "note": branch.note,
            "error": branch.publish_error,
        }
    return {
        "checked_at": report.checked_at.isoformat(),
        "revision": report.revision,
        "available": report.available,
        "locked": report.locked,
        "packages": report.packages,
        "held": list(report.held),
        "error": report.error,
        "pull_request": pull,
    }
