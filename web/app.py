"""The web application: health, status JSON (the full site grows in its own modules).

Read-only: no route changes an environment.
"""

from __future__ import annotations

from litestar import Litestar, get
from litestar.response import Response
from sqlalchemy import Engine, text

from condaops.config import Settings
from condaops.reconciler.state.queries import list_environments
from condaops.reconciler.status import status_item


def create_app(settings: Settings, engine: Engine) -> Litestar:
    """Build the Litestar app for one process; settings are passed in, never read at import."""

    @get("/healthz", sync_to_thread=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz", sync_to_thread=True)
    def readyz() -> Response[dict[str, str]]:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # the probe reports, it never raises
            return Response({"status": "unavailable", "database": str(exc)}, status_code=503)
        return Response({"status": "ok"})

    @get("/api/v1/status", sync_to_thread=True)
    def status() -> list[dict[str, object]]:
        store = settings.store
        return [status_item(e, retries=settings.build.retries, store=store) for e in list_environments(engine)]

    return Litestar(route_handlers=[healthz, readyz, status], openapi_config=None)
