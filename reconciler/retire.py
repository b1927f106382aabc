"""Retiring an environment: one function, and the clean-ups every retirement runs.

An environment is retired on purpose (``condaops retire NS/NAME``, reason ``Retired``) or
by the plan when its file is gone and ``prune`` is on (``SourceRemoved``). Either way
the state DB records the reason (``Recorder``), and ``retire_environment`` runs each
clean-up in ``ON_RETIRE``, in order:

* ``unlink`` — the environment's link ``<store>/<ns>/envs/<name>`` goes; its builds'
  prefixes stay until ``condaops gc`` (nothing is deleted by surprise) and its lockfiles
  and logs are kept for good;
* ``untag_latest`` — its image's ``latest`` tag goes from the built-in registry (the
  image stays reachable by its other tags and digest). External registries keep theirs:
  deleting a tag is not part of the distribution API; this is logged.

Other outputs that must not outlive an environment add their own clean-up to
``ON_RETIRE``, or pass one bound to a running service as ``also`` (the deliveries —
Jupyter kernels, modulefiles, stable names — are withdrawn that way). Each is idempotent and must
not raise for "already gone"; a failing one is logged and the others still run — a
retirement is recorded whatever its clean-ups meet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from condaops.config import Settings
from condaops.reconciler.build.link import remove_link
from condaops.reconciler.model import EnvRef
from condaops.reconciler.reasons import Reason
from condaops.reconciler.store import StoreLayout

log = logging.getLogger("condaops.retire")

RETIRED = Reason.RETIRED  # retired on purpose with `condaops retire`


@dataclass(frozen=True, slots=True)
class Retirement:
    """What a clean-up gets: which environment is retired, why, and where things are."""

    settings: Settings
    layout: StoreLayout
    ref: EnvRef
    reason: str


Cleanup = Callable[[Retirement], None]


def unlink(retirement: Retirement) -> None:
    remove_link(retirement.layout.env_link(retirement.ref))


def untag_latest(retirement: Retirement) -> None:
    settings = retirement.settings
    if not (settings.publish.enabled and settings.publish.image and settings.publish.push):
        return
    from condaops.reconciler.publish.naming import repository_name  # only retirements of published envs need it
    from condaops.registry.api import open_registry
    from condaops.registry.errors import NAME_INVALID, RegistryError

    for target in settings.registry.push:
        if not target.builtin:
            log.info("latest_kept env=%s target=%s (registries have no tag deletion)", retirement.ref, target.name)
            continue
        registry = open_registry(settings)
        try:
            if registry.delete_tag(repository_name(retirement.ref), "latest"):
                log.info("latest_removed env=%s target=%s", retirement.ref, target.name)
        except RegistryError as exc:
            if exc.code != NAME_INVALID:
                raise
        finally:
            registry.close()


ON_RETIRE: list[Cleanup] = [unlink, untag_latest]


class _Withdrawable(Protocol):
    def withdraw(self, ref: EnvRef) -> None: ...


def withdraw_deliveries(deliveries: _Withdrawable) -> Cleanup:
    """The clean-up that withdraws an environment's deliveries (kernels, modulefiles, names)."""

    def withdraw_deliveries(retirement: Retirement) -> None:
        deliveries.withdraw(retirement.ref)

    return withdraw_deliveries


def retire_environment(
    settings: Settings, layout: StoreLayout, ref: EnvRef, reason: str, *, also: Sequence[Cleanup] = ()
) -> list[str]:
    """Run every clean-up of ``ON_RETIRE``, then ``also`` (clean-ups bound to a running
    service, such as withdrawing its deliveries), for ``ref``; return the problems, one
    line each."""
    retirement = Retirement(settings, layout, ref, reason)
    problems = []
    for cleanup in (*ON_RETIRE, *also):
        try:
            cleanup(retirement)
        except Exception as exc:  # one clean-up failing must not stop the others or the retirement
            name = getattr(cleanup, "__name__", type(cleanup).__name__)
            log.warning("retire_cleanup_failed env=%s cleanup=%s error=%s", ref, name, exc)
            problems.append(f"{name}: {exc}")
    log.info("environment_retired env=%s reason=%s", ref, reason)
    return problems
