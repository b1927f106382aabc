"""The change-request pages: the list, one review (``/change-requests/<source>/<key>``),
and each preview build with its live log. Thin handlers over ``reviews``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import Parameter, QueryParameter
from litestar.response import File, ServerSentEvent

from condaops.reconciler.model import ACTIVE_STATES
from condaops.reconciler.state.review_queries import ChangeRequestInfo, PreviewInfo, get_preview
from condaops.web.access import ViewerDep
from condaops.web.context import CtxDep
from condaops.web.logs import follow_log, read_tail
from condaops.web.pages import page
from condaops.web.params import Name
from condaops.web.reviews import KINDS, find_preview, review_detail, review_rows

Key = Annotated[str, Parameter(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$", description="PR number or ref slug")]
PreviewId = Annotated[int, Parameter(ge=1, le=2**62)]
TEXT = "text/plain"


@get("/change-requests", sync_to_thread=True, include_in_schema=False)
def change_requests_page(request: Request, ctx: CtxDep, viewer: ViewerDep) -> Response[str]:
    return page(request, ctx, viewer, "change_requests.html", items=review_rows(ctx, viewer))


@get("/change-requests/{source:str}/{key:str}", sync_to_thread=True, include_in_schema=False)
def change_request_page(request: Request, ctx: CtxDep, viewer: ViewerDep, source: Name, key: Key) -> Response[str]:
    detail = review_detail(ctx, viewer, source, key)
    return page(request, ctx, viewer, "change_request.html", d=detail, kinds=KINDS)


@get("/change-requests/{source:str}/{key:str}/previews/{preview_id:int}", sync_to_thread=True, include_in_schema=False)
def preview_page(
    request: Request, ctx: CtxDep, viewer: ViewerDep, source: Name, key: Key, preview_id: PreviewId
) -> Response[str]:
    cr, preview = find_preview(ctx, viewer, source, key, preview_id)
    running = preview.state in ACTIVE_STATES
    path = _log_path(ctx, cr, preview)
    tail = read_tail(path, whole_lines=running) if path.is_file() else None
    base = f"/change-requests/{source}/{key}"
    return page(request, ctx, viewer, "preview.html", cr=cr, p=preview, base=base, running=running, log=tail)


@get("/change-requests/{source:str}/{key:str}/previews/{preview_id:int}/log", sync_to_thread=True, tags=["files"])
def preview_log(ctx: CtxDep, viewer: ViewerDep, source: Name, key: Key, preview_id: PreviewId) -> File:
    """A preview build's whole log, as plain text."""
    cr, preview = find_preview(ctx, viewer, source, key, preview_id)
    path = _log_path(ctx, cr, preview)
    if not path.is_file():
        raise NotFoundException(f"preview {preview_id} has no log (yet)")
    return File(path, filename=f"preview-{preview_id}.log", media_type=TEXT, content_disposition_type="inline")


@get(
    "/change-requests/{source:str}/{key:str}/previews/{preview_id:int}/log/events", sync_to_thread=True, tags=["files"]
)
def preview_log_events(
    request: Request,
    ctx: CtxDep,
    viewer: ViewerDep,
    source: Name,
    key: Key,
    preview_id: PreviewId,
    offset: Annotated[int, QueryParameter(name="offset", ge=0)] = 0,
) -> ServerSentEvent:
    """Server-sent events: ``log`` with appended text until the preview ends, then ``end``."""
    cr, preview = find_preview(ctx, viewer, source, key, preview_id)
    resume = request.headers.get("last-event-id", "")
    start = int(resume) if resume.isdigit() else offset

    def state() -> str | None:
        found = get_preview(ctx.engine, preview_id)
        return found[2].state if found else None

    return ServerSentEvent(
        follow_log(_log_path(ctx, cr, preview), start, state, running=ACTIVE_STATES),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _log_path(ctx: CtxDep, cr: ChangeRequestInfo, preview: PreviewInfo) -> Path:
    """Where a preview writes its log: its head's area (never a path from the request)."""
    area = ctx.layout.preview(cr.source, cr.ref, preview.head_revision)
    return area.build_log(preview.ref, preview.preview_id)


REVIEW_PAGES = [change_requests_page, change_request_page, preview_page]
REVIEW_FILES = [preview_log, preview_log_events]  # files of any size: in threads
