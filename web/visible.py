"""What a viewer may see of the state DB: the environment list (kept in memory, reloaded in
the background when ``queries.environments_stamp`` moved) filtered by the access policy,
and single environments and builds read on demand, 404 when unknown or hidden (the same
answer, so hidden names are not revealed)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

from litestar.exceptions import NotFoundException
from sqlalchemy import Engine

from condaops.reconciler.model import EnvRef
from condaops.reconciler.state.queries import (
    BuildInfo,
    EnvInfo,
    EnvView,
    environment_stamp,
    environment_view,
    environments_stamp,
    get_build,
    get_environment,
    list_environments,
)
from condaops.web.access import AccessPolicy, Viewer
from condaops.web.cache import LRU, Cached
from condaops.web.views import EnvRow, env_rows, valid_name

T = TypeVar("T")
DERIVED = 256  # values kept per load of the environment list (viewers x filters)


def visible_rows(access: AccessPolicy, viewer: Viewer, rows: list[EnvRow]) -> list[EnvRow]:
    """Those of ``rows`` the viewer may see, in the same order."""
    return [r for r in rows if access.can_see(viewer, r.ref.namespace)]


class EnvironmentList:
    """Every live environment with its derived state, checked every ``cache_seconds`` in
    the background and loaded again when the stamp moved (the overview, namespace pages,
    lists and search share it)."""

    def __init__(self, engine: Engine, access: AccessPolicy, *, retries: int, cache_seconds: float) -> None:
        self.engine = engine
        self.access = access
        self.retries = retries
        self._rows = Cached(self._load_rows, cache_seconds, stamp=lambda: environments_stamp(engine))
        self._derived: tuple[int, LRU[Hashable, Any]] = (0, LRU(DERIVED))  # (load, values made from it)

    @property
    def loaded(self) -> bool:
        """Whether the list is there (asking for it does not wait for the first load)."""
        return self._rows.loaded

    def _load_rows(self) -> list[EnvRow]:
        return env_rows(list_environments(self.engine), retries=self.retries)

    def rows_generation(self) -> int:
        """Which load of the environment list is current (it changes with every reload
        that found a change; asking starts a reload when one is due)."""
        return self._rows.current()[1]

    def derived(self, key: Hashable, produce: Callable[[list[EnvRow]], T]) -> T:
        """``produce(rows)`` of the current list (every environment, whoever asks: filter
        by viewer inside, and put the viewer in ``key``), kept for as long as that list
        is current: counts, orderings and choices are made once per change."""
        rows, load = self._rows.current()
        derived = self._derived
        if derived[0] != load:  # a new list: what was made from older ones goes (and frees them)
            derived = self._derived = (load, LRU(DERIVED))
        hit = derived[1].get(key)
        if hit is not None:
            return cast(T, hit)
        value = produce(rows)
        derived[1].put(key, value)
        return value

    def all_rows(self) -> list[EnvRow]:
        """Every live environment, whoever asks (for aggregate metrics only)."""
        return self._rows.get()

    def rows(self, viewer: Viewer) -> list[EnvRow]:
        """Live environments the viewer may see, by namespace and name."""
        return visible_rows(self.access, viewer, self._rows.get())

    def visible_namespaces(self, viewer: Viewer) -> set[str] | None:
        """The namespaces ``viewer`` may read, or None for all of them."""
        if viewer.everything or not self.access.enabled:
            return None
        return {r.ref.namespace for r in self._rows.get() if self.access.can_see(viewer, r.ref.namespace)}

    def namespace_exists(self, namespace: str, viewer: Viewer) -> bool:
        return self.access.can_see(viewer, namespace) and any(r.ref.namespace == namespace for r in self._rows.get())


class Lookups:
    """One environment or build, read from the state DB for a viewer."""

    def __init__(self, engine: Engine, access: AccessPolicy) -> None:
        self.engine = engine
        self.access = access

    def environment(self, namespace: str, name: str, viewer: Viewer) -> EnvInfo:
        """One environment (retired ones too); 404 when unknown or not visible."""
        return self._one(namespace, name, viewer, lambda ref: get_environment(self.engine, ref))

    def environment_stamp(self, namespace: str, name: str, viewer: Viewer) -> tuple[Any, ...]:
        """What changes whenever the environment's page would (``queries.environment_stamp``);
        404 when unknown or not visible."""
        return self._one(namespace, name, viewer, lambda ref: environment_stamp(self.engine, ref))

    def environment_view(
        self, namespace: str, name: str, viewer: Viewer, *, history_limit: int, history_offset: int
    ) -> EnvView:
        """An environment with a page of its builds; 404 when unknown or not visible."""
        return self._one(
            namespace,
            name,
            viewer,
            lambda ref: environment_view(self.engine, ref, history_limit=history_limit, history_offset=history_offset),
        )

    def _one(self, namespace: str, name: str, viewer: Viewer, read: Callable[[EnvRef], T | None]) -> T:
        """``read`` of one environment the viewer may see; 404 when it is not visible or
        ``read`` finds nothing (the same answer, so hidden names are not revealed)."""
        found = None
        if valid_name(namespace) and valid_name(name) and self.access.can_see(viewer, namespace):
            found = read(EnvRef(namespace, name))
        if found is None:
            raise NotFoundException(f"no environment {namespace}/{name}")
        return found

    def build(self, build_id: int, viewer: Viewer) -> BuildInfo:
        build = get_build(self.engine, build_id) if 0 < build_id < 2**63 else None
        if build is None or not self.access.can_see(viewer, build.ref.namespace):
            raise NotFoundException(f"no build {build_id}")
        return build
