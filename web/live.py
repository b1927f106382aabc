"""Live pages: server-sent events telling the overview and an environment page that what
they show changed, so the page script fetches the page again and swaps it in.

The pages work without JavaScript (they are whole on every load); with it, ``live.js``
opens ``data-live`` of ``<main>`` as an ``EventSource`` and, on ``changed``, fetches the
page and replaces ``<main>``. Events:

* ``changed`` — the overview's environment list was reloaded (``WebContext.rows_generation``)
  or the environment's stamp moved (``queries.environment_stamp``: any change to it, its
  builds or their files);
* ``step`` — the step a running build of the environment is in (``logs.current_step``),
  which changes without touching the state DB.

Each stream checks every ``POLL_SECONDS`` (one indexed query, or none for the overview:
the list's own background reload does the reading) and ends after ``MAX_STREAM_SECONDS``;
the browser reconnects by itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable

import anyio
from anyio import to_thread
from litestar import get
from litestar.response import ServerSentEvent, ServerSentEventMessage

from condaops.reconciler.model import ACTIVE_STATES, EnvRef
from condaops.reconciler.state.queries import get_environment
from condaops.web.access import ViewerDep
from condaops.web.context import CtxDep, WebContext
from condaops.web.logs import current_step
from condaops.web.params import Name

POLL_SECONDS = 1.0
MAX_STREAM_SECONDS = 300.0
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


async def watch(
    stamp: Callable[[], Hashable],
    *,
    step: Callable[[], str | None] | None = None,
    poll: float = POLL_SECONDS,
    max_seconds: float = MAX_STREAM_SECONDS,
) -> AsyncIterator[ServerSentEventMessage]:
    """``changed`` whenever ``stamp()`` differs from what it was; ``step`` whenever
    ``step()`` does (both read in a thread). Starts with ``ready`` (the browser knows the
    stream is open)."""
    last = await to_thread.run_sync(stamp)
    last_step = await to_thread.run_sync(step) if step else None
    yield ServerSentEventMessage(event="ready", data="")
    deadline = anyio.current_time() + max_seconds
    while anyio.current_time() < deadline:
        await anyio.sleep(poll)
        now = await to_thread.run_sync(stamp)
        if now != last:
            last = now
            yield ServerSentEventMessage(event="changed", data="")
        if step is not None:
            found = await to_thread.run_sync(step)
            if found != last_step and found is not None:
                yield ServerSentEventMessage(event="step", data=found)
            last_step = found


@get("/events", sync_to_thread=False, include_in_schema=False)
def overview_events(ctx: CtxDep, viewer: ViewerDep) -> ServerSentEvent:
    """``changed`` when the list of environments the overview is made of was reloaded."""
    return ServerSentEvent(watch(ctx.rows_generation), headers=HEADERS)


@get("/environments/{namespace:str}/{name:str}/events", sync_to_thread=True, include_in_schema=False)
def environment_events(ctx: CtxDep, viewer: ViewerDep, namespace: Name, name: Name) -> ServerSentEvent:
    """``changed`` when the environment's page would change; ``step`` of its running build."""
    ctx.environment_stamp(namespace, name, viewer)  # 404 when unknown or hidden
    ref = EnvRef(namespace, name)
    return ServerSentEvent(
        watch(lambda: ctx.environment_stamp(namespace, name, viewer), step=lambda: running_step(ctx, ref)),
        headers=HEADERS,
    )


def running_step(ctx: WebContext, ref: EnvRef) -> str | None:
    """The step of the environment's newest build while it runs, else None."""
    env = get_environment(ctx.engine, ref)
    latest = env.latest if env else None
    if latest is None or latest.state not in ACTIVE_STATES:
        return None
    return current_step(ctx.log_file(latest))


LIVE_HANDLERS = [overview_events, environment_events]
