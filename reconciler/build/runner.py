"""The build-step runner: solve → policy → pip-lock → install → pip-install → lock → verify → link.

A *locked* spec (a committed lockfile, ``spec.lock``) reads its records from the lock the
ticket carries instead of solving and pip-locking (``LOCKED_STEPS``): no repodata is
fetched; installing checks every package's hash as for solved builds.

Each step has the same signature, ``step(work, ctx) -> None``, and reads/writes the
shared ``Work``. The runner is the only place that catches bare ``Exception``: every
failure becomes a ``BuildOutcome`` (retryable or not), never an escaping exception.

Invariants: a failed or interrupted build never moves the environment link and leaves
no half prefix behind; a prefix that is currently linked is never rebuilt in place. A
build that finds the disk below ``min_free_space``, or fills it, fails with ``DiskFull``
and is retried with backoff.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from condaops.config import Settings
from condaops.reconciler.build.channels import host_platform, shared_client, spec_channels
from condaops.reconciler.build.disk import DISK_FULL, is_disk_full, require_free_space
from condaops.reconciler.build.install import install_prefix, verify_prefix
from condaops.reconciler.build.installlog import InstallLog
from condaops.reconciler.build.link import read_link, swap_link
from condaops.reconciler.build.lock import (
    CONDA_LOCK,
    CONDA_LOCK_FILE,
    ENVIRONMENT,
    ENVIRONMENT_FILE,
    EXPLICIT,
    PIXI_LOCK,
    PIXI_LOCK_FILE,
    read_pip_locks,
    write_lockfiles,
)
from condaops.reconciler.build.pip import PipLock, install_pip, lock_pip, python_version
from condaops.reconciler.build.solve import solve_platforms
from condaops.reconciler.buildlog import LOG_KIND, logging_to, one_line
from condaops.reconciler.errors import (
    BuildError,
    BuildTimeoutError,
    CondaopsError,
    LeaseLostError,
    LockError,
    PipError,
    PolicyInvalidError,
    PolicyViolationError,
    TransientError,
)
from condaops.reconciler.lockfiles import LOCK_INVALID, LOCK_PLATFORM_MISSING
from condaops.reconciler.lockread import read_pixi_lock
from condaops.reconciler.model import ArtifactRecord, BuildOutcome, BuildTicket
from condaops.reconciler.policy.check import check_policy
from condaops.reconciler.policy.findings import INVALID, Violation, report_json, summary
from condaops.reconciler.policy.rules import rules_for
from condaops.reconciler.reasons import Reason
from condaops.reconciler.store import StoreLayout

T = TypeVar("T")

SUCCEEDED, SUPERSEDED, INTERNAL_ERROR = Reason.BUILD_SUCCEEDED, Reason.SUPERSEDED, Reason.INTERNAL_ERROR


@dataclass(frozen=True)
class BuildContext:
    """What every build of this process shares."""

    settings: Settings
    layout: StoreLayout
    may_link: Callable[[int], bool]
    held: Callable[[int], bool] = lambda _build_id: True  # False once this worker lost its lease


@dataclass
class Work:
    """One build's working state, passed from step to step."""

    ticket: BuildTicket
    prefix: Path
    artifacts_dir: Path
    deadline: float
    log: logging.Logger
    host: str = field(default_factory=host_platform)
    client: Any = None
    records: dict[str, list[Any]] = field(default_factory=dict)
    pip: dict[str, list[PipLock]] = field(default_factory=dict)
    files: list[tuple[str, Path]] = field(default_factory=list)
    findings: list[Violation] = field(default_factory=list)
    recheck: bool = False  # re-check the linked prefix of this spec (see BuildTicket.recheck_lock)
    installed: bool = False
    linked: bool = False

    @property
    def label(self) -> str:
        return str(self.ticket.ref)

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise BuildTimeoutError(f"{self.label}: build ran past build.timeout; it will be retried")
        return left

    def run_async(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a rattler coroutine on this thread with the remaining time as its limit."""
        limit = self.remaining()

        async def bounded() -> T:
            return await asyncio.wait_for(make(), timeout=limit)

        try:
            return asyncio.run(bounded())
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise BuildTimeoutError(f"{self.label}: build ran past build.timeout; it will be retried") from exc


def solve_step(w: Work, ctx: BuildContext) -> None:
    if w.recheck:
        _recheck_records(w, ctx)
        return
    spec = w.ticket.spec
    platforms = sorted(set(spec.platforms) | {w.host})
    w.client = shared_client(ctx.settings.channels.mirrors, alias=ctx.settings.channels.alias)
    w.records = w.run_async(
        lambda: solve_platforms(
            spec,
            platforms,
            channels=ctx.settings.channels,
            cache_dir=ctx.layout.caches / "repodata",
            client=w.client,
            env_label=w.label,
        )
    )
    for platform, recs in sorted(w.records.items()):
        w.log.info("solved platform=%s packages=%d", platform, len(recs))


def policy_step(w: Work, ctx: BuildContext) -> None:
    """Check the solve of every platform against the environment's policy (if any)."""
    if w.ticket.policy is None:
        return
    w.findings = check_policy(w.records, rules_for(w.ticket.policy))
    for finding in w.findings:
        w.log.log(logging.ERROR if finding.blocking else logging.WARNING, "policy_%s %s", finding.level, finding.line())
    w.log.info("policy_checked findings=%d blocking=%d", len(w.findings), sum(f.blocking for f in w.findings))
    if any(f.rule == INVALID for f in w.findings):
        raise PolicyInvalidError(summary(w.findings))
    if any(f.blocking for f in w.findings):
        raise PolicyViolationError(summary(w.findings))


def _recheck_records(w: Work, ctx: BuildContext) -> None:
    """The linked prefix is a build of this spec: check the records it was built from (its
    pixi.lock, every platform) rather than a new solve that may differ from what is linked."""
    lock = ctx.layout.absolute(w.ticket.recheck_lock or "")
    w.records = read_pixi_lock(lock)
    conda_lock = lock.with_name(CONDA_LOCK_FILE)
    w.pip = read_pip_locks(conda_lock) if conda_lock.is_file() else {}
    w.log.info("recheck linked=%s platforms=%s", w.prefix, ",".join(sorted(w.records)))


def read_lock_step(w: Work, ctx: BuildContext) -> None:
    """The records of a committed lockfile, for every platform it locks: no solve."""
    from condaops.reconciler.build.locked import read_lock  # conda-lock's models: only for locked builds

    ticket, pin = w.ticket, w.ticket.spec.lock
    assert pin is not None
    where = ticket.lock_path or "the lockfile"
    if ticket.lock_data is None:
        raise LockError(f"{w.label}: {where} is missing from the state database; commit it again", reason=LOCK_INVALID)
    locked = read_lock(ticket.lock_data, pin.kind, path=where)
    if locked.digest != pin.digest:
        raise LockError(f"{w.label}: {where} is not the lock this build was queued for", reason=LOCK_INVALID)
    if w.host not in locked.records:
        raise LockError(
            f"{w.label}: {where} locks {', '.join(locked.platforms)} only; this worker runs {w.host}",
            reason=LOCK_PLATFORM_MISSING,
        )
    w.records = {p: list(recs) for p, recs in locked.records.items()}
    w.pip = {p: list(locks) for p, locks in locked.pip.items() if locks}
    w.client = shared_client(ctx.settings.channels.mirrors, alias=ctx.settings.channels.alias)
    w.log.info(
        "lock_read path=%s kind=%s platforms=%s packages=%d solve=none",
        where,
        pin.kind,
        ",".join(locked.platforms),
        len(w.records[w.host]),
    )


def pip_lock_step(w: Work, ctx: BuildContext) -> None:
    if w.recheck:
        return
    for platform, recs in sorted(w.records.items()):
        reqs = w.ticket.spec.pip_for(platform)
        if not reqs:
            continue
        version = python_version(recs)
        if version is None:
            raise PipError(f"{w.label}: the spec has pip: dependencies but no python for {platform}; add python")
        w.pip[platform] = lock_pip(
            reqs,
            python_version=version,
            platform=platform,
            settings=ctx.settings.pip,
            workdir=ctx.layout.work_dir / str(w.ticket.build_id) / platform,
            timeout=w.remaining(),
            cache_dir=ctx.layout.caches / "uv",
        )
        w.log.info("pip_locked platform=%s packages=%d", platform, len(w.pip[platform]))


def lock_step(w: Work, ctx: BuildContext) -> None:
    if w.recheck:  # the same lock as the linked build: its files, copied
        w.files = _copy_lockfiles(ctx.layout.absolute(w.ticket.recheck_lock or "").parent, w.artifacts_dir)
        return
    w.files = write_lockfiles(
        w.artifacts_dir,
        w.records,
        w.ticket.spec,
        name=w.ticket.ref.name,
        channels=spec_channels(w.ticket.spec, ctx.settings.channels, w.label),
        host_platform=w.host,
        pip=w.pip,
        source_path=w.ticket.source_path,
    )
    w.log.info("locked files=%s", ",".join(p.name for _, p in w.files))


def install_step(w: Work, ctx: BuildContext) -> None:
    if w.recheck:
        return  # the linked prefix already holds these records (verify checks it)
    require_free_space(w.prefix.parent, ctx.settings.min_free_space, w.label)
    if read_link(ctx.layout.env_link(w.ticket.ref)) == w.prefix.resolve():
        raise BuildError(
            f"{w.label}: {w.prefix} is the linked prefix and is never rebuilt in place", reason=Reason.PREFIX_IN_USE
        )
    if w.prefix.exists():  # left over from an earlier, unlinked build of the same spec
        shutil.rmtree(w.prefix)
    w.installed = True
    w.run_async(
        lambda: install_prefix(
            w.records[w.host],
            w.prefix,
            cache_dir=ctx.layout.cache_dir,
            client=w.client,
            requested_specs=w.ticket.spec.dependencies_for(w.host),
            env_label=w.label,
            reporter=InstallLog(w.log),  # download and install progress in the build log
        )
    )
    w.log.info("installed prefix=%s packages=%d", w.prefix, len(w.records[w.host]))


def pip_install_step(w: Work, ctx: BuildContext) -> None:
    if w.recheck:
        return
    locks = w.pip.get(w.host, [])
    if locks:
        install_pip(
            w.prefix, locks, settings=ctx.settings.pip, timeout=w.remaining(), cache_dir=ctx.layout.caches / "uv"
        )
        w.log.info("pip_installed packages=%d", len(locks))


def verify_step(w: Work, ctx: BuildContext) -> None:
    verify_prefix(w.prefix, w.records[w.host])


def link_step(w: Work, ctx: BuildContext) -> None:
    if not ctx.may_link(w.ticket.build_id):
        w.log.info("not_linked reason=%s", SUPERSEDED)
        return
    swap_link(ctx.layout.env_link(w.ticket.ref), w.prefix)
    w.linked = True
    w.log.info("linked link=%s", ctx.layout.env_link(w.ticket.ref))


def _copy_lockfiles(source: Path, folder: Path) -> list[tuple[str, Path]]:
    """Copy a build's lockfiles into another build's artifacts folder, as ``(kind, path)``."""
    kinds = {CONDA_LOCK_FILE: CONDA_LOCK, PIXI_LOCK_FILE: PIXI_LOCK, ENVIRONMENT_FILE: ENVIRONMENT}
    copied = []
    for path in sorted(source.iterdir()):
        kind = kinds.get(path.name) or (EXPLICIT if path.name.startswith("conda-") and path.suffix == ".lock" else None)
        if kind is not None and path.is_file():
            copied.append((kind, Path(shutil.copy2(path, folder / path.name))))
    return copied


STEPS: tuple[tuple[str, Callable[[Work, BuildContext], None]], ...] = (
    ("solve", solve_step),
    ("policy", policy_step),  # before anything is downloaded: a build the policy refuses stops here
    ("pip-lock", pip_lock_step),
    ("install", install_step),
    ("pip-install", pip_install_step),
    ("lock", lock_step),
    ("verify", verify_step),
    ("link", link_step),
)
LOCKED_STEPS: tuple[tuple[str, Callable[[Work, BuildContext], None]], ...] = (
    ("read-lock", read_lock_step),
    *(step for step in STEPS if step[0] not in ("solve", "pip-lock")),
)


def run_build(ticket: BuildTicket, ctx: BuildContext) -> BuildOutcome:
    """Run every step; return the outcome. Never raises."""
    layout = ctx.layout
    w = Work(
        ticket=ticket,
        prefix=layout.prefix(ticket.ref, ticket.spec_hash).absolute(),
        artifacts_dir=layout.artifacts_dir(ticket.ref, ticket.build_id),
        deadline=time.monotonic() + ctx.settings.build.timeout,
        log=logging.getLogger(f"condaops.build.{ticket.build_id}"),
    )
    w.recheck = ticket.recheck_lock is not None and read_link(layout.env_link(ticket.ref)) == w.prefix.resolve()
    w.artifacts_dir.mkdir(parents=True, exist_ok=True)
    with logging_to(layout.build_log(ticket.ref, ticket.build_id), w.log):
        outcome, timings = _run_steps(w, ctx)
    if not outcome.ok:
        _remove_unlinked_prefix(w, ctx)
    artifacts = _artifacts(w, layout)
    return BuildOutcome(
        outcome.ok,
        outcome.reason,
        outcome.message,
        outcome.retryable,
        outcome.prefix,
        artifacts,
        tuple(timings),
        outcome.linked,
        records=w.records if outcome.ok else {},
        pip=w.pip if outcome.ok else {},
        policy_report=report_json(w.findings) if ticket.policy is not None else None,
    )


def _run_steps(w: Work, ctx: BuildContext) -> tuple[BuildOutcome, list[tuple[str, float]]]:
    """The steps in order, logged to the build log; the outcome and each step's seconds."""
    timings: list[tuple[str, float]] = []
    ticket = w.ticket
    try:
        w.log.info("build_started env=%s spec=%s attempt=%s", w.label, ticket.spec_hash, ticket.attempt)
        for name, step in STEPS if ticket.spec.lock is None else LOCKED_STEPS:
            w.remaining()
            if not ctx.held(ticket.build_id):
                raise LeaseLostError(
                    f"{w.label}: this worker's lease on build {ticket.build_id} expired and "
                    "another worker took it over; stopping without touching its prefix"
                )
            started = time.monotonic()
            w.log.info("step_started step=%s", name)  # the site shows a running build's step from this
            step(w, ctx)
            timings.append((name, round(time.monotonic() - started, 3)))
        reason, message = (SUCCEEDED, "") if w.linked else (SUPERSEDED, "a newer specification was queued")
        w.log.info("build_finished env=%s reason=%s", w.label, reason)
        outcome = BuildOutcome(True, reason, message, prefix=ctx.layout.relative(w.prefix), linked=w.linked)
    except LeaseLostError as exc:
        w.installed = False  # the prefix now belongs to the worker that took the build over
        outcome = _failed(w, exc.reason, exc.message, retryable=False)
    except CondaopsError as exc:
        if is_disk_full(exc):  # whatever step hit it: retried once space is freed
            outcome = _failed(w, DISK_FULL, exc.message, retryable=True)
        else:
            outcome = _failed(w, exc.reason, exc.message, retryable=isinstance(exc, TransientError))
    except Exception as exc:  # the one place a bare Exception becomes a recorded outcome
        if is_disk_full(exc):
            outcome = _failed(w, DISK_FULL, f"{w.label}: the store's disk is full: {exc}", retryable=True)
        else:
            w.log.exception("build_crashed env=%s", w.label)
            outcome = _failed(w, INTERNAL_ERROR, f"{w.label}: unexpected {type(exc).__name__}: {exc}", retryable=False)
    return outcome, timings


def _failed(w: Work, reason: str, message: str, *, retryable: bool) -> BuildOutcome:
    """The full (often multi-line) text goes to the build log; the recorded message is one
    line that names the environment file, so status lines and tables stay readable."""
    w.log.error("build_failed env=%s reason=%s retryable=%s\n%s", w.label, reason, retryable, message)
    where = f"{w.ticket.source_path}: " if w.ticket.source_path else ""
    return BuildOutcome(False, reason, one_line(where + message), retryable=retryable)


def _remove_unlinked_prefix(w: Work, ctx: BuildContext) -> None:
    """A failed build leaves no half prefix (unless that prefix is what users have linked)."""
    if w.installed and w.prefix.exists() and read_link(ctx.layout.env_link(w.ticket.ref)) != w.prefix.resolve():
        shutil.rmtree(w.prefix, ignore_errors=True)


def _artifacts(w: Work, layout: StoreLayout) -> tuple[ArtifactRecord, ...]:
    files = list(w.files) + [(LOG_KIND, layout.build_log(w.ticket.ref, w.ticket.build_id))]
    out = []
    for kind, path in files:
        if not path.exists():
            continue
        if kind == EXPLICIT:  # one per platform: conda-<platform>.lock
            kind = f"explicit-{path.name.removeprefix('conda-').removesuffix('.lock')}"
        data = path.read_bytes()
        out.append(ArtifactRecord(kind, layout.relative(path), len(data), hashlib.sha256(data).hexdigest()))
    return tuple(out)
