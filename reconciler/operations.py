"""Operator actions from the CLI: rollback, retire and garbage collection.

Selection is pure (``choose_collectable``); the IO functions act on the store and
record what they did through the recorder.
"""

from __future__ import annotations

import getpass
import logging
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from condaops.config import Settings
from condaops.reconciler.build.link import swap_link
from condaops.reconciler.deliver.sync import Deliveries
from condaops.reconciler.errors import CondaopsError
from condaops.reconciler.model import ACTIVE_STATES, COMPLETED, EnvRef
from condaops.reconciler.reasons import Reason
from condaops.reconciler.retire import RETIRED, retire_environment, withdraw_deliveries
from condaops.reconciler.state.queries import BuildInfo, env_builds, get_environment, list_environments
from condaops.reconciler.state.recorder import Recorder
from condaops.reconciler.store import StoreLayout

log = logging.getLogger("condaops.operations")


class OperationError(CondaopsError):
    reason = Reason.OPERATION_REFUSED


def rollback(
    engine: Engine,
    recorder: Recorder,
    layout: StoreLayout,
    ref: EnvRef,
    build_id: int,
    *,
    settings: Settings | None = None,
    deliveries: Deliveries | None = None,
) -> BuildInfo:
    """Link an earlier completed build of ``ref``; it stays until the spec changes again.

    With ``settings`` (and ``publish.enabled``), ``latest`` then moves to that build's image
    in every push target; a target that cannot be retagged is logged, the rollback stands.
    ``deliveries`` (kernels, modulefiles) are rewritten for the build now linked."""
    builds = {b.build_id: b for b in env_builds(engine, ref)}
    if not builds:
        raise OperationError(f"environment {ref} is not known; see `condaops status`")
    target = builds.get(build_id)
    if target is None:
        raise OperationError(f"build {build_id} does not belong to {ref}; see `condaops history {ref}`")
    if target.state != COMPLETED or not target.prefix:
        raise OperationError(f"build {build_id} of {ref} is {target.state}; only completed builds can be linked")
    prefix = layout.absolute(target.prefix)
    if target.collected_at is not None or not prefix.is_dir():
        raise OperationError(
            f"build {build_id} of {ref} was garbage-collected ({target.prefix} is gone); pick a newer build"
        )
    swap_link(layout.env_link(ref), prefix)
    recorder.record_rollback(ref, build_id)
    log.info("rolled_back env=%s build=%s", ref, build_id)
    if deliveries is not None:
        deliveries.sync(ref)
    if settings is not None and settings.publish.enabled and settings.publish.image and settings.publish.push:
        from condaops.reconciler.publish.latest import move_latest  # only rollbacks of published builds need it

        move_latest(settings, layout, target)
    return target


def retire(
    engine: Engine,
    recorder: Recorder,
    settings: Settings,
    layout: StoreLayout,
    ref: EnvRef,
    *,
    note: str = "",
    deliveries: Deliveries | None = None,
) -> list[str]:
    """Retire an environment whose file is gone (or whose source is no longer configured):
    recorded with the reason ``Retired``, then ``retire.retire_environment`` (unlink, drop
    ``latest``; lockfiles stay). Returns the clean-ups' problems, one line each."""
    env = get_environment(engine, ref)
    if env is None:
        raise OperationError(f"environment {ref} is not known; see `condaops status`")
    if env.retired:
        raise OperationError(f"{ref} is already retired ({env.retired_reason}: {env.retired_message})")
    if env.removed_at is None and env.source in {s.name for s in settings.sources}:
        raise OperationError(
            f"{ref} is still defined by {env.source}:{env.path}; remove that file first (retire is for "
            "environments whose file is gone, shown as 'removed (kept)' by `condaops status`)"
        )
    who = f"{getpass.getuser()}@{socket.gethostname()}"
    message = f"retired with `condaops retire` by {who}" + (f": {note}" if note else "")
    recorder.record_retired(ref, RETIRED, message)
    also = (withdraw_deliveries(deliveries),) if deliveries is not None else ()
    return retire_environment(settings, layout, ref, RETIRED, also=also)


@dataclass(frozen=True, slots=True)
class Collectable:
    build: BuildInfo
    path: Path
    size: int


def choose_collectable(builds: list[BuildInfo], current_id: int | None, keep: int) -> list[BuildInfo]:
    """Builds whose prefix may go: only completed ones, never the current one, and not
    the ``keep`` most recent other completed builds. Lockfiles are never chosen (only
    prefixes are collected). Pure."""
    live = [
        b
        for b in sorted(builds, key=lambda b: b.build_id, reverse=True)
        if b.state == COMPLETED and b.collected_at is None and b.prefix and b.build_id != current_id
    ]
    return live[keep:]


def collect_garbage(
    engine: Engine,
    recorder: Recorder,
    layout: StoreLayout,
    *,
    keep: int,
    dry_run: bool,
    deliveries: Deliveries | None = None,
) -> list[Collectable]:
    """Remove old build prefixes (never the linked one, never lockfiles or logs), then the
    ``deliveries`` pinned to them (``module load ns/name/<build>``, pinned kernels)."""
    chosen: list[Collectable] = []
    for env in list_environments(engine, include_retired=True):
        builds = env_builds(engine, env.ref)
        linked = {env.current_build_id}
        in_use = {b.prefix for b in builds if b.build_id in linked or b.state in ACTIVE_STATES}
        for b in choose_collectable(builds, env.current_build_id, keep):
            if b.prefix in in_use:  # the same spec rebuilt: the prefix is shared with a live build
                continue
            path = layout.absolute(b.prefix or "")
            chosen.append(Collectable(b, path, _du(path)))
    if not dry_run:
        for c in chosen:
            shutil.rmtree(c.path, ignore_errors=True)
            log.info("prefix_collected env=%s build=%s bytes=%s", c.build.ref, c.build.build_id, c.size)
        recorder.record_collected(c.build.build_id for c in chosen)
        if deliveries is not None:
            deliveries.sync_many(c.build.ref for c in chosen)
    return chosen


def _du(path: Path) -> int:
    """Bytes used by a tree, counting hardlinked files once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total
