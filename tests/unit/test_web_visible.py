"""web.visible.EnvironmentList.derived: made once per load of the environment list, and
nothing made from an older list is kept once a new one is there."""

from __future__ import annotations

import time
from typing import Any

from condaops.config.access import AccessPolicy
from condaops.config.settings import AuthSettings
from condaops.web.cache import Cached
from condaops.web.visible import EnvironmentList


def until(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_derived_values_follow_the_loads_of_the_list() -> None:
    lists, stamp, now = [["a"], ["a", "b"]], [1], [0.0]
    envs = EnvironmentList(None, AccessPolicy(AuthSettings()), retries=0, cache_seconds=1.0)  # type: ignore[arg-type]  # no state DB: the list is swapped below
    envs._rows = Cached(lambda: lists[stamp[0] - 1], ttl=1.0, clock=lambda: now[0], stamp=lambda: stamp[0])  # type: ignore[assignment,arg-type]  # a list of names stands in for rows
    made: list[int] = []

    def count(rows: list[str]) -> int:
        made.append(len(rows))
        return len(rows)

    assert envs.derived("n", count) == 1 and envs.derived("n", count) == 1 and made == [1]
    now[0] = 2.0  # due for a check, unchanged: still the same load
    envs.all_rows()
    assert until(lambda: not envs._rows._lock.locked()) and envs.derived("n", count) == 1 and made == [1]
    stamp[0], now[0] = 2, 4.0
    envs.all_rows()
    assert until(lambda: envs.all_rows() == ["a", "b"])
    assert envs.derived("n", count) == 2 and made == [1, 2]
    assert envs._derived[1].get("n") == 2 and len(envs._derived[1]._items) == 1  # the older value went
