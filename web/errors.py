"""One place that maps errors to responses: JSON under ``/api/``, an HTML page elsewhere.

Unknown names, invisible namespaces and missing files are all 404 with a way back; an
unexpected error is logged and answered with a plain 500 page (no traceback leaks).
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException

from condaops.web.access import ANONYMOUS, Viewer, resolve_viewer
from condaops.web.context import WebContext
from condaops.web.views import valid_name

log = logging.getLogger("condaops.web")

TITLES = {400: "Bad request", 401: "Not logged in", 404: "Not found", 405: "Method not allowed"}


JSON_PREFIXES = ("/api/", "/schema", "/v2")  # machine clients: the API, its schema, the registry


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(JSON_PREFIXES)


def _viewer(request: Request, ctx: WebContext) -> Viewer:
    try:
        return resolve_viewer(request, ctx.access)
    except NotAuthorizedException:
        return ANONYMOUS


def _back(request: Request, ctx: WebContext, viewer: Viewer) -> dict[str, str] | None:
    """The namespace page, when the missing thing was inside a namespace that exists."""
    parts = request.url.path.strip("/").split("/")
    inside = len(parts) >= 3 and parts[0] == "environments" and valid_name(parts[1])
    if inside and ctx.namespace_exists(parts[1], viewer):
        return {"href": f"/namespaces/{parts[1]}", "label": f"Namespace {parts[1]}"}
    return None


def http_error(request: Request, exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    detail = exc.detail or TITLES.get(status, "Error")
    headers = dict(exc.headers or {})
    ctx: WebContext | None = getattr(request.app.state, "web", None)
    if _is_api(request) or ctx is None:
        body: dict[str, object] = {"status_code": status, "detail": detail}
        if getattr(exc, "extra", None):
            body["extra"] = exc.extra
        return Response(body, status_code=status, headers=headers, media_type=MediaType.JSON)
    viewer = _viewer(request, ctx)
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return ctx.renderer.html(
        "error.html",
        status=status,
        headers=headers,
        viewer=viewer,
        auth_enabled=ctx.access.enabled,
        path=path,
        status_code=status,
        title=TITLES.get(status, "Error"),
        detail=detail,
        back=_back(request, ctx, viewer) if status == 404 else None,
    )


def internal_error(request: Request, exc: Exception) -> Response[object]:
    log.exception("request_failed method=%s path=%s", request.method, request.url.path, exc_info=exc)
    if _is_api(request):
        return Response({"status_code": 500, "detail": "internal error; see the server log"}, status_code=500)
    return Response(
        "<!doctype html><title>Internal error</title><h1>Internal error</h1>"
        '<p>See the server log. <a href="/">Back to the overview</a></p>',
        status_code=500,
        media_type=MediaType.HTML,
    )
