"""Update pull requests as one part of a running process: the job the scheduler runs, the
publisher that talks to the forge, and what the reconcile loop asks of them. The runtime
holds one ``UpdateService``; with no ``updates`` configured it does nothing at all."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from condaops.config import ConfigError, Settings
from condaops.reconciler.state.update_recorder import UpdateRecorder
from condaops.reconciler.updates.job import UpdateJob, utcnow
from condaops.reconciler.updates.publish import UpdatePublisher

if TYPE_CHECKING:
    from condaops.reconciler.schedule import BuildScheduler


class UpdateService:
    def __init__(
        self, settings: Settings, engine: Engine, *, runs_jobs: bool, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.settings = settings
        self.schedules = {s.name: s.updates.schedule for s in settings.sources if s.updates is not None}
        self.publisher = UpdatePublisher(settings, UpdateRecorder(engine, clock))
        self.job = (
            UpdateJob(settings, engine, clock=clock, notify=self.publisher.on_branch)
            if runs_jobs and self.schedules
            else None
        )

    @property
    def enabled(self) -> bool:
        return bool(self.schedules)

    async def schedule(self, scheduler: BuildScheduler) -> None:
        """Register the recurring runs (a reconciling process, once at start)."""
        if not self.schedules:
            return
        try:
            await scheduler.schedule_updates(self.schedules)
        except ValueError as exc:  # a cron expression of the right shape that still does not parse
            index = next(i for i, s in enumerate(self.settings.sources) if s.name in self.schedules)
            raise ConfigError(str(exc), key=f"sources[{index}].updates.schedule") from exc

    def catch_up(self) -> None:
        """Pull requests the forge has not heard of yet (every pass)."""
        if self.publisher.enabled:
            self.publisher.catch_up()

    def close(self, timeout: float = 10.0) -> None:
        self.publisher.close(timeout)


def run_update_command(settings: Settings, args: argparse.Namespace) -> int:
    """``condaops update``: one run per source now; pull requests are posted before it exits."""
    from condaops.reconciler.schedule import create_tables
    from condaops.reconciler.state.db import make_engine, migrate

    names = [s.name for s in settings.sources if s.updates is not None and (not args.source or s.name in args.source)]
    if not names:
        print("condaops: no source with `updates` matches; configure updates: on a source", file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url)
    migrate(engine, also=[create_tables])  # as every process starts: the schema, then the scheduler's tables
    service = UpdateService(settings, engine, runs_jobs=True)
    assert service.job is not None
    failed = False
    runs = []
    for name in names:
        run = service.job.run(name)
        runs.append(
            {
                "source": name,
                "checked": run.checked,
                "decisions": dict(sorted(run.decisions.items())),
                "error": run.error,
            }
        )
        decisions = ", ".join(f"{b}: {d}" for b, d in sorted(run.decisions.items())) or "no branches"
        if not getattr(args, "json", False):
            print(
                f"{name}: {run.checked} environment(s) checked; {decisions}"
                + (f"; error: {run.error}" if run.error else "")
            )
        failed |= run.error is not None
    if getattr(args, "json", False):
        print(json.dumps(runs, indent=2, default=str))
    service.catch_up()
    service.publisher.drain(120.0)
    service.close()
    engine.dispose()
    return 2 if failed else 0
