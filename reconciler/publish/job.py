"""The publish job: tarball, image and pushes of one finished, linked build.

``PublishJob(settings, recorder)(build_id)`` is the callable the scheduler runs (task
``condaops.publish``, job id ``publish:<build_id>``) in a worker thread, after the build is
recorded: publishing never delays or fails a build. Everything it needs is read back:

* from the state DB — the build (environment, spec hash, prefix, source and revision, its
  lockfiles), its specification, and whether it is the environment's current build;
* from disk — the prefix, with its package records from ``conda-meta/*.json``
  (rattler's ``PrefixRecord``), and the lockfiles in the build's artifacts folder.

It is idempotent: the tarball and image come out byte-identical, registries store content
by digest, and ``Recorder.add_artifacts`` keeps one row per artifact kind. A build whose
prefix was garbage-collected meanwhile is logged and recorded as not publishable. Every
failure ends as one line in ``publish_error`` (the full text goes to the build's
``build.log``, which the job appends to); none escapes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from condaops.config import Settings
from condaops.reconciler.build.channels import host_platform
from condaops.reconciler.build.lock import PIXI_LOCK, is_lockfile_kind
from condaops.reconciler.build.memory import release_memory
from condaops.reconciler.buildlog import LOG_KIND, logging_to, one_line
from condaops.reconciler.errors import CondaopsError
from condaops.reconciler.model import COMPLETED, ArtifactRecord
from condaops.reconciler.publish.base import BASE_CACHE
from condaops.reconciler.publish.build import (
    Published,
    PublishError,
    PublishRequest,
    publish_build,
    source_url,
)
from condaops.reconciler.publish.targets import open_targets
from condaops.reconciler.spec import spec_from_canonical
from condaops.reconciler.state.queries import BuildInfo, get_build, get_environment, get_specification, list_builds
from condaops.reconciler.state.recorder import Recorder
from condaops.reconciler.store import StoreLayout

T = TypeVar("T")
VERSION_LOOKBACK = 200  # earlier builds searched for the same lock (see lock_version)
PUBLISH_NICENESS = 10  # publishing yields the CPU to builds and the site (see PublishJob.__call__)
log = logging.getLogger("condaops.publish")


class PublishJob:
    """Callable job: ``job(build_id)`` publishes that build (blocking)."""

    def __init__(self, settings: Settings, recorder: Recorder, *, name: str | None = None) -> None:
        self.settings = settings
        self.recorder = recorder
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.layout = StoreLayout.of(settings)

    def __call__(self, build_id: int) -> None:
        """Publish in a thread of lower CPU priority (``PUBLISH_NICENESS``), joined here:
        publishing keeps a core busy compressing, and builds (whose link users wait for)
        and the site must not queue behind it. Its own threads inherit the priority; the
        scheduler's thread keeps its own (an unprivileged thread cannot raise it again)."""
        failure: list[BaseException] = []

        def run() -> None:
            lower_priority(PUBLISH_NICENESS)
            try:
                self._publish_build(build_id)
            except BaseException as exc:  # handed to the caller's thread as raised
                failure.append(exc)

        thread = threading.Thread(target=run, name=f"condaops-publish-{build_id}", daemon=True)
        thread.start()
        thread.join()
        if failure:
            raise failure[0]

    def _publish_build(self, build_id: int) -> None:
        build = get_build(self.recorder.engine, build_id)
        if build is None:
            log.info("publish_skipped build=%s reason=BuildUnknown", build_id)
            return
        if build.state != COMPLETED or not build.prefix:
            log.info("publish_skipped build=%s env=%s reason=NotCompleted state=%s", build_id, build.ref, build.state)
            return
        prefix = self.layout.absolute(build.prefix)
        if build.collected_at is not None or not (prefix / "conda-meta").is_dir():
            log.info("publish_skipped build=%s env=%s reason=PrefixCollected", build_id, build.ref)
            self.recorder.add_artifacts(
                build_id, [], error=f"PrefixCollected: {build.prefix} was garbage-collected before it was published"
            )
            return
        artifacts_dir = self.layout.artifacts_dir(build.ref, build_id)
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.layout.build_log(build.ref, build_id)
        with logging_to(log_path, logging.getLogger(f"condaops.publish.{build_id}")) as build_log:
            files, error = self._publish(build, prefix, artifacts_dir, build_log)
        release_memory()  # the layers' buffers, freed in worker threads' arenas, go back
        files.append((LOG_KIND, log_path))  # it grew: record its new size and digest
        self.recorder.add_artifacts(
            build_id, [self._record(kind, path) for kind, path in files if path.exists()], error=_one_line(error)
        )
        log.log(
            logging.WARNING if error else logging.INFO,
            "publish_finished build=%s env=%s ok=%s %s",
            build_id,
            build.ref,
            error is None,
            _one_line(error) or "",
        )

    def _publish(
        self, build: BuildInfo, prefix: Path, artifacts_dir: Path, build_log: logging.Logger
    ) -> tuple[list[tuple[str, Path]], str | None]:
        """The files written and the error text (None on success). Never raises."""
        build_log.info("publish_started env=%s build=%s worker=%s", build.ref, build.build_id, self.name)
        try:
            published = self._run(build, prefix, artifacts_dir, build_log)
        except CondaopsError as exc:
            build_log.warning("publish_failed env=%s reason=%s\n%s", build.ref, exc.reason, exc.message)
            return [], f"{exc.reason}: {exc.message}"
        except Exception as exc:  # the job's boundary, like the build runner's: a bug becomes a recorded outcome
            build_log.exception("publish_crashed env=%s", build.ref)
            return [], f"InternalError: unexpected {type(exc).__name__}: {exc}"
        for problem in published.problems:
            build_log.warning("publish_failed env=%s %s", build.ref, problem)
        build_log.info("published files=%s", ",".join(p.name for _, p in published.files))
        return published.files, "; ".join(published.problems) or None

    def _run(self, build: BuildInfo, prefix: Path, artifacts_dir: Path, build_log: logging.Logger) -> Published:
        settings = self.settings
        engine = self.recorder.engine
        canonical = get_specification(engine, build.spec_hash)
        if canonical is None:
            raise PublishError(
                f"{build.ref}: the specification {build.spec_hash[:12]} of build {build.build_id} is not recorded"
            )
        spec = spec_from_canonical(json.loads(canonical), name=build.ref.name)
        env = get_environment(engine, build.ref)
        host = host_platform()
        work_dir = self.layout.work_dir / f"publish-{build.build_id}-{uuid.uuid4().hex[:8]}"
        req = PublishRequest(
            ref=build.ref,
            build_id=build.build_id,
            spec_hash=build.spec_hash,
            prefix=prefix,
            artifacts_dir=artifacts_dir,
            work_dir=work_dir,
            platform=host,
            records=prefix_records(prefix),
            requested_specs=spec.dependencies_for(host),
            variables=spec.variables,
            lockfiles=lockfiles(build, self.layout),
            linked=env is not None and env.current_build_id == build.build_id,
            revision=build.source_revision,
            source_url=source_url(settings.sources, build.source),
            base_cache=self.layout.root / BASE_CACHE,
            version=lock_version(build, list_builds(engine, ref=build.ref, limit=VERSION_LOOKBACK).items, self.layout),
        )
        try:
            return publish_build(
                req, settings, open_targets=lambda: open_targets(settings), run_async=self._run_async, log=build_log
            )
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)

    def _run_async(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a rattler coroutine on this thread, bounded by ``build.timeout``."""
        limit = self.settings.build.timeout

        async def bounded() -> T:
            return await asyncio.wait_for(make(), timeout=limit)

        try:
            return asyncio.run(bounded())
        except TimeoutError as exc:
            raise PublishError(f"publishing ran past build.timeout ({limit:g} s)") from exc

    def _record(self, kind: str, path: Path) -> ArtifactRecord:
        sha, size = hashlib.sha256(), 0
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                sha.update(chunk)
                size += len(chunk)
        return ArtifactRecord(kind, self.layout.relative(path), size, sha.hexdigest())


def lower_priority(niceness: int) -> None:
    """Raise this thread's nice value by ``niceness`` (Linux: per thread); never fails."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness + os.getpriority(os.PRIO_PROCESS, 0))
    except (AttributeError, OSError):  # not Linux, or not allowed: publish at the usual priority
        log.debug("publish_priority_unchanged", exc_info=True)


def prefix_records(prefix: Path) -> list[Any]:
    """The package records of an installed prefix (``conda-meta/*.json``), by name."""
    from rattler import PrefixRecord

    try:
        records = [PrefixRecord.from_path(path) for path in sorted((prefix / "conda-meta").glob("*.json"))]
    except Exception as exc:  # rattler raises its own exception types for unreadable records
        raise PublishError(f"{prefix}: conda-meta cannot be read ({exc}); the prefix was changed or removed") from exc
    return sorted(records, key=lambda r: r.name.normalized)


def lockfiles(build: BuildInfo, layout: StoreLayout) -> list[Path]:
    """The build's lockfiles (and pinned environment.yaml) recorded in its artifacts folder."""
    paths = [layout.absolute(location) for kind, location in sorted(build.artifacts.items()) if is_lockfile_kind(kind)]
    return [path for path in paths if path.is_file()]


def lock_version(build: BuildInfo, history: list[BuildInfo], layout: StoreLayout) -> str:
    """``build-<id>`` of the earliest completed build of the same environment and spec
    whose ``pixi.lock`` has the same bytes as ``build``'s (itself when none has): the
    image's ``version`` label, so that rebuilding a lock keeps its image digest."""
    own = _file_digest(layout, build)
    same_spec = [
        b for b in history if b.build_id < build.build_id and b.spec_hash == build.spec_hash and b.state == COMPLETED
    ]
    for earlier in sorted(same_spec, key=lambda b: b.build_id) if own else ():
        if _file_digest(layout, earlier) == own:
            return f"build-{earlier.build_id}"
    return f"build-{build.build_id}"


def _file_digest(layout: StoreLayout, build: BuildInfo) -> str | None:
    location = build.artifacts.get(PIXI_LOCK)
    if not location:
        return None
    try:
        return hashlib.sha256(layout.absolute(location).read_bytes()).hexdigest()
    except OSError:
        return None


def _one_line(error: str | None) -> str | None:
    return one_line(error) if error else None
