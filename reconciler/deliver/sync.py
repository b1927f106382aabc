"""Making one environment's deliveries match its recorded state: the entry point.

``Deliveries.sync(ref)`` reads the environment (``observe``), decides what it should have
(``plan``), writes it (``fs``), removes what it should no longer have (pinned builds that
``gc`` collected, everything of a retired environment) and records the outcome
(``Recorder.record_deliveries``). It is idempotent and cheap when nothing changed, so it
is called wherever the answer may have changed:

* a build linked (``on_build_event``, a listener of the build worker);
* ``rollback`` and ``repair_links`` moved a link; ``gc`` collected builds;
* an environment was retired (``withdraw``: before or after the state DB knows it);
* at start-up (``sync_all``): settings may have changed since the last run.

A delivery that cannot be written (a name someone else has, an unwritable folder) is
recorded with its reason and logged; it never fails the build or the operation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from sqlalchemy import Engine

from condaops.config import Settings
from condaops.reconciler.deliver import fs
from condaops.reconciler.deliver.kernels import conda_name
from condaops.reconciler.deliver.model import KERNEL, MODULE, NAME, EnvSnapshot, KernelUnit, ModuleUnit, NameUnit
from condaops.reconciler.deliver.observe import snapshot
from condaops.reconciler.deliver.plan import Where, plan_deliveries
from condaops.reconciler.model import BuildOutcome, DeliveryRecord, EnvRef, RecordedEnv, SourceSnapshot
from condaops.reconciler.state.queries import build_ref, list_environments
from condaops.reconciler.state.recorder import Recorder
from condaops.reconciler.store import StoreLayout

log = logging.getLogger("condaops.deliver")


def where_of(settings: Settings) -> Where:
    """The folders deliveries go to, from the settings."""
    names = settings.names
    return Where(
        kernels=settings.kernels.directory,
        pin_kernels=settings.kernels.pin_builds,
        display_name=settings.kernels.display_name,
        modules=settings.modules.directory,
        module_format=settings.modules.format,
        names=(names.directory or settings.store / "envs-by-name") if names.enabled else None,
        store=settings.store,
    )


class Deliveries:
    """Kernels, modulefiles and names of environments, kept in step with their links."""

    def __init__(self, settings: Settings, engine: Engine, recorder: Recorder) -> None:
        self.where = where_of(settings)
        self.engine = engine
        self.recorder = recorder
        self.layout = StoreLayout.of(settings)
        self._platform: str | None = None

    @property
    def enabled(self) -> bool:
        w = self.where
        return w.kernels is not None or w.modules is not None or w.names is not None

    @property
    def detail(self) -> bool:
        """Whether deliveries need more than the current build (kernels and modulefiles read
        its packages, activation and programs, and the kept builds); names alone do not."""
        return self.where.kernels is not None or self.where.modules is not None

    @property
    def platform(self) -> str:
        if self._platform is None:
            from condaops.reconciler.build.channels import host_platform  # loads rattler: only when delivering

            self._platform = host_platform()
        return self._platform

    def sync(self, ref: EnvRef) -> list[DeliveryRecord]:
        """Make ``ref``'s deliveries match its recorded state; returns what was recorded."""
        if not self.enabled:
            return []
        return self._apply(snapshot(self.engine, self.layout, ref, platform=self.platform, detail=self.detail))

    def withdraw(self, ref: EnvRef) -> None:
        """Remove every delivery of ``ref`` (it is being retired), whatever the state DB says."""
        if self.enabled:
            self._apply(EnvSnapshot(ref, str(self.layout.env_link(ref).absolute()), None))

    def sync_all(self) -> int:
        """``sync`` every known environment (retired ones are withdrawn); returns how many."""
        if not self.enabled:
            return 0
        started = time.monotonic()
        refs = [env.ref for env in list_environments(self.engine, include_retired=True)]
        for ref in refs:
            self.sync(ref)
        log.info("deliveries_synced environments=%d seconds=%.3f", len(refs), time.monotonic() - started)
        return len(refs)

    def sync_many(self, refs: Iterable[EnvRef]) -> None:
        for ref in sorted(set(refs)):
            self.sync(ref)

    def renamed(self, snapshots: Iterable[SourceSnapshot], recorded: Mapping[EnvRef, RecordedEnv]) -> list[EnvRef]:
        """The built environments whose file changed only what deliveries show (its
        ``condaops: display_name:``), which no build will deliver: ``sync`` them once the
        pass has recorded it."""
        if not self.enabled:
            return []
        return [
            e.ref
            for snap in snapshots
            for e in snap.envs
            if (rec := recorded.get(e.ref)) is not None
            and rec.current_spec_hash is not None
            and rec.display_name != e.spec.display_name
        ]

    def on_build_event(self, build_id: int, outcome: BuildOutcome | None) -> None:
        """Build worker listener: a build that moved its environment's link is delivered."""
        if outcome is None or not (outcome.ok and outcome.linked):
            return
        ref = build_ref(self.engine, build_id)
        if ref is not None:
            self.sync(ref)

    # --- one environment -------------------------------------------------------------

    def _apply(self, env: EnvSnapshot) -> list[DeliveryRecord]:
        started = time.monotonic()
        plan = plan_deliveries(env, self.where)
        records = list(plan.problems)
        kernels: list[Path] = []
        changed = 0
        for planned in plan.planned:
            if isinstance(planned.unit, KernelUnit):
                kernels.append(planned.unit.path)
            try:
                changed += fs.write_unit(planned.unit, env.ref)
                records += planned.deliveries
            except fs.DeliveryError as exc:
                log.warning("delivery_failed env=%s path=%s reason=%s %s", env.ref, planned.unit.path, exc.reason, exc)
                records += [replace(d, error=f"{exc.reason}: {exc.message}") for d in planned.deliveries]
        kinds = {type(p.unit) for p in plan.planned}
        removed = self._withdraw_rest(env, kernels, kinds)
        for record in plan.problems:
            log.warning("delivery_failed env=%s name=%s %s", env.ref, record.name, record.error)
        self.recorder.record_deliveries(env.ref, records)
        if changed or removed:
            log.info(
                "delivered env=%s build=%s kernels=%d modules=%d names=%d written=%d removed=%d seconds=%.3f",
                env.ref,
                env.current.build_id if env.current else "-",
                sum(r.kind == KERNEL for r in records),
                sum(r.kind == MODULE for r in records),
                sum(r.kind == NAME for r in records),
                changed,
                removed,
                time.monotonic() - started,
            )
        return records

    def _withdraw_rest(self, env: EnvSnapshot, kernels: list[Path], kinds: set[type]) -> int:
        """Remove ``env``'s units that the plan no longer has; failures are logged."""
        w, removed = self.where, 0
        try:
            if w.kernels is not None and w.kernels.is_dir():
                removed += len(fs.remove_kernels(w.kernels, env.ref, kernels))
            if w.modules is not None and ModuleUnit not in kinds:
                folder = w.modules / env.ref.namespace / env.ref.name
                removed += folder.is_dir() and fs.write_unit(ModuleUnit(folder, {}), env.ref)
            if w.names is not None and NameUnit not in kinds:
                removed += fs.remove_name(w.names / conda_name(env.ref), env.link)
        except (OSError, fs.DeliveryError) as exc:
            log.warning("delivery_withdraw_failed env=%s %s", env.ref, exc)
        return removed
