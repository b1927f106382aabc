"""A build: its page, its log (whole, as plain text, and live as server-sent events) and
its artifacts, served read-only by build id and kind — never by a path from the request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import QueryParameter
from litestar.response import File, Redirect, ServerSentEvent

from condaops.reconciler.model import ACTIVE_STATES
from condaops.reconciler.state.queries import build_artifacts, get_build
from condaops.web.access import ViewerDep
from condaops.web.context import CtxDep
from condaops.web.logs import current_step, follow_log, read_tail
from condaops.web.pages import page
from condaops.web.params import BuildId, Name
from condaops.web.supplychain import supply_view
from condaops.web.views import build_duration

TEXT = "text/plain"  # Litestar adds "; charset=utf-8" to text types
YAML = "application/yaml"
KIND_TYPES = {
    "conda-lock": YAML,
    "pixi-lock": YAML,
    "environment": YAML,
    "log": TEXT,
    "sbom": "application/vnd.cyclonedx+json",
}
SUFFIX_TYPES = (
    (".tar.zst", "application/zstd"),
    (".tar.gz", "application/gzip"),
    (".tgz", "application/gzip"),
    (".tar.bz2", "application/x-bzip2"),
    (".conda", "application/zip"),
    (".zip", "application/zip"),
    (".tar", "application/x-tar"),
    (".json", "application/json"),
    (".yml", YAML),
    (".yaml", YAML),
    (".lock", TEXT),
    (".log", TEXT),
    (".txt", TEXT),
)


def content_type(kind: Name, file_name: str) -> str:
    """What an artifact is served as: by kind, else by file name; never guessed from bytes."""
    if kind in KIND_TYPES:
        return KIND_TYPES[kind]
    if kind.startswith("explicit-"):
        return TEXT
    return next((t for suffix, t in SUFFIX_TYPES if file_name.endswith(suffix)), "application/octet-stream")


@get("/builds/{build_id:int}", sync_to_thread=True, include_in_schema=False)
def build_page(request: Request, ctx: CtxDep, viewer: ViewerDep, build_id: BuildId) -> Response[str]:
    build = ctx.build(build_id, viewer)
    running = build.state in ACTIVE_STATES
    log_path = ctx.log_file(build)
    tail = read_tail(log_path, whole_lines=running) if log_path else None
    return page(
        request,
        ctx,
        viewer,
        "build.html",
        build=build,
        duration=build_duration(build),
        running=running,
        step=current_step(log_path) if running else None,
        artifacts=build_artifacts(ctx.engine, build_id),
        log=tail,
        supply=supply_view(build, build, signing=ctx.settings.publish.signing.key_file is not None),
    )


@get("/builds/{build_id:int}/log", sync_to_thread=True, tags=["files"])
def build_log(ctx: CtxDep, viewer: ViewerDep, build_id: BuildId) -> File:
    """The whole log as plain text, streamed from disk in chunks."""
    build = ctx.build(build_id, viewer)
    path = ctx.log_file(build)
    if path is None:
        raise NotFoundException(f"build {build_id} has no log yet")
    return File(path, filename=f"build-{build_id}.log", media_type=TEXT, content_disposition_type="inline")


@get("/builds/{build_id:int}/log/events", sync_to_thread=True, tags=["files"])
def build_log_events(
    request: Request,
    ctx: CtxDep,
    viewer: ViewerDep,
    build_id: BuildId,
    offset: Annotated[int, QueryParameter(name="offset", ge=0)] = 0,
) -> ServerSentEvent:
    """Server-sent events: ``log`` with appended text until the build ends, then ``end``."""
    build = ctx.build(build_id, viewer)
    resume = request.headers.get("last-event-id", "")
    start = int(resume) if resume.isdigit() else offset
    path = ctx.log_file(build) or _expected_log(ctx, build_id)

    def state() -> str | None:
        current = get_build(ctx.engine, build_id)
        return current.state if current else None

    return ServerSentEvent(
        follow_log(path, start, state, running=ACTIVE_STATES),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _expected_log(ctx: CtxDep, build_id: BuildId) -> Path:
    """Where the log of a build that has not written one yet will appear."""
    build = get_build(ctx.engine, build_id)
    assert build is not None
    return ctx.layout.build_log(build.ref, build_id)


@get("/builds/{build_id:int}/artifacts/{kind:str}", sync_to_thread=True, tags=["files"])
def artifact_download(ctx: CtxDep, viewer: ViewerDep, build_id: BuildId, kind: Name) -> File | Redirect:
    build = ctx.build(build_id, viewer)
    artifact = next((a for a in build_artifacts(ctx.engine, build.build_id) if a.kind == kind), None)
    url = ctx.artifact_url(artifact) if artifact else None
    if url is not None:  # in object storage: the client downloads it from there
        return Redirect(url, status_code=307)
    path = ctx.artifact_file(artifact) if artifact else None
    if artifact is None or path is None:
        raise NotFoundException(f"build {build_id} has no {kind} artifact")
    name = path.name
    return File(
        path,
        filename=name,
        media_type=content_type(kind, name),
        content_disposition_type="attachment",
        headers={"Cache-Control": "private, max-age=86400, immutable"},
    )


BUILD_HANDLERS = [build_page, build_log, build_log_events, artifact_download]
