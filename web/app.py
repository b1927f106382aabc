"""The web application: status pages, JSON API, artifact downloads, metrics and health.

Read-only: no route changes an environment (the login form only sets a cookie).
``create_app`` wires the parts; each area lives in its own module:

==================  ==============================================================
``pages``           overview, namespace, environment, diff, change requests, search
``builds``          build page, log (plain and live), artifact downloads
``api``             ``/api/v1/...`` (OpenAPI at ``/schema``)
``ops``             ``/healthz``, ``/readyz``, ``/metrics``
``access``          ``web.auth``: tokens, per-namespace visibility
``supplychain``     policy/SBOM/signature views, the signing key at ``/.well-known/condaops/``
==================  ==============================================================
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from litestar import Litestar, Request, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.handlers import BaseRouteHandler
from litestar.logging.config import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin
from litestar.static_files import create_static_files_router
from litestar.types import Message, Scope
from sqlalchemy import Engine

from condaops.config import Settings
from condaops.web.access import Viewer, resolve_viewer
from condaops.web.api import api_router
from condaops.web.builds import BUILD_HANDLERS
from condaops.web.context import WebContext, utcnow
from condaops.web.errors import http_error, internal_error
from condaops.web.live import LIVE_HANDLERS
from condaops.web.metrics import ServiceMetrics
from condaops.web.ops import OpsState, ops_router
from condaops.web.pages import LIGHT_PAGES, PAGE_HANDLERS
from condaops.web.placement import placed, reads_on_loop
from condaops.web.render import STATIC
from condaops.web.review_pages import REVIEW_FILES, REVIEW_PAGES
from condaops.web.supplychain import KEY_HANDLERS

# Pages load only their own CSS and JS; nothing from other hosts.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy", CSP.encode()),
]


async def add_security_headers(message: Message, scope: Scope) -> None:
    """On every response (pages, API, files, errors): no sniffing, no foreign assets."""
    if message["type"] == "http.response.start":
        message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]


def create_app(
    settings: Settings,
    engine: Engine,
    *,
    metrics: ServiceMetrics | None = None,
    routers: Sequence[Router | BaseRouteHandler] = (),
    clock: Callable[[], datetime] = utcnow,
    cache_seconds: float = 2.0,
    sources_gate: bool = True,
) -> Litestar:
    """Build the Litestar app for one process; settings are passed in, never read at import.

    ``metrics`` is the process's ``ServiceMetrics`` (the runtime and the registry update
    it); ``routers`` are mounted as they are (the registry's ``/v2`` router, the webhook
    receiver ``web.hooks.hooks_router``).
    ``cache_seconds`` bounds how stale lists of environments may be. ``sources_gate``: the
    sources' freshness decides readiness (not in the web role, where another process reads
    them: web replicas must stay in service while the reconciler restarts).
    """
    ctx = WebContext(settings, engine, metrics=metrics or ServiceMetrics(), clock=clock, cache_seconds=cache_seconds)

    ops = OpsState(ctx, sources_gate=sources_gate)

    def provide_viewer(request: Request) -> Viewer:
        return resolve_viewer(request, ctx.access)

    on_loop = reads_on_loop(engine)

    # The first overview and pages after a start (WebContext.warm), while the rest of the
    # service starts (``serve`` creates the app before its first pass and recovery).
    threading.Thread(target=ctx.warm, name="condaops-web-warm", daemon=True).start()
    return Litestar(
        route_handlers=[
            *placed(PAGE_HANDLERS, on_loop=on_loop, light=LIGHT_PAGES),
            *BUILD_HANDLERS,  # logs and downloads: files of any size, always in threads
            *LIVE_HANDLERS,  # server-sent events of the live pages (web.live)
            *REVIEW_PAGES,  # reviews read several rows and parse JSON: in threads
            *REVIEW_FILES,
            *KEY_HANDLERS,
            api_router(on_loop=on_loop),
            ops_router(ops),
            create_static_files_router(
                "/static", directories=[STATIC], send_as_attachment=False, include_in_schema=False, cache_control=None
            ),
            *routers,
        ],
        dependencies={
            "ctx": Provide(lambda: ctx, sync_to_thread=False),
            "viewer": Provide(provide_viewer, sync_to_thread=False),
        },
        exception_handlers={HTTPException: http_error, Exception: internal_error},
        before_send=[add_security_headers],
        logging_config=LoggingConfig(configure_root_logger=False),  # keep condaops' log format
        state=State({"web": ctx, "ops": ops}),
        openapi_config=OpenAPIConfig(
            title="condaops",
            version="1",
            description="Read-only status of condaops environments, builds and packages.",
            path="/schema",
            render_plugins=[JsonRenderPlugin(path=["/", "/openapi.json"]), YamlRenderPlugin()],
        ),
    )


def create_ops_app(settings: Settings, engine: Engine, *, metrics: ServiceMetrics) -> Litestar:
    """Only ``/healthz``, ``/readyz`` and ``/metrics``: what the reconciler role serves, so its
    own figures (reconcile passes, source reads) are scraped and probed like any process."""
    ctx = WebContext(settings, engine, metrics=metrics)
    return Litestar(
        route_handlers=[ops_router(OpsState(ctx))],
        openapi_config=None,
        logging_config=LoggingConfig(configure_root_logger=False),
    )
