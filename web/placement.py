"""Where the synchronous read handlers run: in the thread pool or on the event loop.

The handlers of pages and of the JSON API only read the state DB (and, rarely, a lockfile
in the store) and render. Which place costs less depends on the database:

* **SQLite** (one host, a local file): a query takes tens of microseconds, but every
  statement and every row fetched releases the GIL. In the thread pool, with many requests
  at once, each release hands the GIL to another thread, and those hand-offs cost more
  than the queries (on a VM where waking another CPU is expensive, they doubled the
  environment page's CPU: docs/benchmarks.md). The threads gain nothing in exchange, since
  the GIL serializes the Python around the queries anyway. So they run on the event loop.
* **PostgreSQL**: each query is a network round trip; in threads the loop keeps serving
  other requests (registry downloads, live logs) meanwhile.

Only handlers whose work is small and bounded move to the loop (the pages and API answers
of the overview, namespaces, environments and builds): on the loop, a handler holds up
every other request while it runs. Those that may take long stay in threads whatever the
database: package search and diffs (they may read and compare whole lockfiles), logs and
artifact downloads (files of any size), metrics (they walk the store).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from copy import copy

from litestar.handlers import HTTPRouteHandler
from sqlalchemy import Engine


def reads_on_loop(engine: Engine) -> bool:
    """Whether read handlers run on the event loop for this state DB."""
    return engine.dialect.name == "sqlite"


def placed(
    handlers: Iterable[HTTPRouteHandler], *, on_loop: bool, light: Collection[HTTPRouteHandler]
) -> list[HTTPRouteHandler]:
    """``handlers``, those of them in ``light`` that are declared to run in the thread pool
    (``sync_to_thread=True``) copied to run on the event loop when ``on_loop``."""
    result = []
    for handler in handlers:
        if on_loop and handler.sync_to_thread and handler in light:
            handler = copy(handler)
            handler.sync_to_thread = False
        result.append(handler)
    return result
