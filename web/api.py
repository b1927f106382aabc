"""The read-only JSON API under ``/api/v1``: namespaces, environments, builds, artifacts,
packages, sources and change requests. No route changes anything.

Lists are pages (``limit`` clamped to 1..500, default 50; ``offset`` >= 0). Files are
downloaded from the URLs the artifacts carry (``/builds/{id}/artifacts/{kind}``).
``/api/v1/status`` keeps answering exactly what ``condaops status --json`` prints.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from litestar import Request, Router, get
from litestar.exceptions import NotFoundException
from litestar.params import FromQuery

from condaops.reconciler.state.queries import (
    build_artifacts,
    list_builds,
    list_deliveries,
    list_rejected_files,
    list_sources,
)
from condaops.reconciler.state.review_queries import list_change_requests
from condaops.reconciler.state.update_queries import list_update_branches, update_reports
from condaops.reconciler.status import STATES, file_status_item, status_item, updates_item
from condaops.web import api_models as m
from condaops.web.access import ViewerDep
from condaops.web.context import CtxDep
from condaops.web.overview import Filters
from condaops.web.params import (
    BuildId,
    FromBuild,
    HealthParam,
    Limit,
    Name,
    Offset,
    StateParam,
    SyncParam,
    Text,
    ToBuild,
)
from condaops.web.placement import placed
from condaops.web.review_pages import Key
from condaops.web.reviews import review_detail, review_rows
from condaops.web.service import build_diff, env_detail, search_packages, shown_build
from condaops.web.supplychain import supply_view
from condaops.web.views import EnvRow, clamp_page, filter_rows, namespace_rows, next_offset, parse_query, valid_name
from condaops.web.visible import visible_rows


def _page(cls: type[Any], items: list[Any], total: int, limit: int, offset: int, **extra: Any) -> Any:
    return cls(
        items=items, total=total, limit=limit, offset=offset, next_offset=next_offset(offset, limit, total), **extra
    )


@get("/status", sync_to_thread=True, summary="Every environment, as `condaops status --json` prints it")
def status(ctx: CtxDep, viewer: ViewerDep) -> list[dict[str, object]]:
    store = ctx.settings.store
    delivered = list_deliveries(ctx.engine)
    reports, branches = update_reports(ctx.engine), {(b.source, b.branch): b for b in list_update_branches(ctx.engine)}
    items = [
        status_item(
            r.info,
            retries=ctx.retries,
            store=store,
            deliveries=delivered.get(r.ref, ()),
            updates=updates_item(reports.get(r.ref), branches),
        )
        for r in ctx.rows(viewer)
    ]
    if viewer.everything or not ctx.access.enabled:  # files name no namespace: only for who sees all
        items += [file_status_item(f) for f in list_rejected_files(ctx.engine)]
    return items


@get("/namespaces", sync_to_thread=True)
def namespaces(ctx: CtxDep, viewer: ViewerDep, limit: Limit = None, offset: Offset = None) -> m.NamespacePage:
    size, start = clamp_page(limit, offset)
    rows = namespace_rows(ctx.rows(viewer))
    return _page(m.NamespacePage, [m.namespace(n) for n in rows[start : start + size]], len(rows), size, start)


@get("/namespaces/{namespace:str}", sync_to_thread=True)
def namespace(ctx: CtxDep, viewer: ViewerDep, namespace: Name) -> m.Namespace:
    found = [n for n in namespace_rows(ctx.rows(viewer)) if n.name == namespace] if valid_name(namespace) else []
    if not found:
        raise NotFoundException(f"no namespace {namespace}")
    return m.namespace(found[0])


@get("/environments", sync_to_thread=True)
def environments(
    ctx: CtxDep,
    viewer: ViewerDep,
    namespace: Text = None,
    wanted: StateParam = None,
    source: Text = None,
    sync: SyncParam = None,
    health: HealthParam = None,
    reason: Text = None,
    q: Text = None,
    limit: Limit = None,
    offset: Offset = None,
) -> m.EnvironmentPage:
    """Live environments by namespace and name, with the site's sync, health and badges;
    filtered as the overview filters (``source``, ``namespace``, ``sync``, ``health``,
    ``reason``: exact values; ``state``: pending, building, ready, failed or removed, an
    unknown state is ignored) and by name text (``q``)."""
    size, start = clamp_page(limit, offset)
    state = wanted if wanted in STATES else None
    params = {"source": source, "namespace": namespace, "sync": sync, "health": health, "reason": reason}
    filters = replace(Filters.of(params), state=state)  # as the overview reads them (web.overview)

    def matching(every: list[EnvRow]) -> list[EnvRow]:
        rows = visible_rows(ctx.access, viewer, every)
        return filter_rows([r for r in rows if filters.matches(r)] if filters.active else rows, text=q)

    def produce() -> m.EnvironmentPage:
        rows = ctx.environments.derived(("api-environments", viewer, filters, q), matching)
        items = [m.environment(r) for r in rows[start : start + size]]
        return _page(m.EnvironmentPage, items, len(rows), size, start)

    return ctx.memo(("api-environments", viewer, filters, q, size, start, ctx.rows_generation()), produce)


@get("/environments/{namespace:str}/{name:str}", sync_to_thread=True)
def environment(request: Request, ctx: CtxDep, viewer: ViewerDep, namespace: Name, name: Name) -> m.EnvironmentDetail:
    d = env_detail(ctx, viewer, namespace, name, host=request.url.netloc, plain_http=request.url.scheme == "http")
    env, signing = d.row.info, ctx.settings.publish.signing.key_file is not None
    supply = supply_view(env.latest or env.current, d.shown, signing=signing)
    return m.environment_detail(
        d.row,
        canonical=d.canonical,
        prefix=d.prefix,
        commands=d.commands,
        artifacts=d.artifacts,
        deliveries=d.deliveries,
        image=d.image,
        supply=supply,
        updates=d.updates,
    )


@get("/environments/{namespace:str}/{name:str}/builds", sync_to_thread=True)
def environment_builds(
    ctx: CtxDep, viewer: ViewerDep, namespace: Name, name: Name, limit: Limit = None, offset: Offset = None
) -> m.BuildPage:
    env = ctx.environment(namespace, name, viewer)
    size, start = clamp_page(limit, offset)
    page = list_builds(ctx.engine, ref=env.ref, limit=size, offset=start)
    return _page(m.BuildPage, [m.build(b) for b in page.items], page.total, size, start)


@get("/environments/{namespace:str}/{name:str}/packages", sync_to_thread=True)
def environment_packages(
    ctx: CtxDep, viewer: ViewerDep, namespace: Name, name: Name, limit: Limit = None, offset: Offset = None
) -> m.PackagePage:
    """The locked packages of the current build (or, before one, of the latest locked build)."""
    build = shown_build(ctx.environment(namespace, name, viewer))
    if build is None:
        raise NotFoundException(f"{namespace}/{name} has no locked build yet")
    return _packages_page(ctx, viewer, build.build_id, limit, offset)


@get("/environments/{namespace:str}/{name:str}/diff", sync_to_thread=True)
def environment_diff(
    ctx: CtxDep, viewer: ViewerDep, namespace: Name, name: Name, old: FromBuild = None, new: ToBuild = None
) -> m.Diff:
    """Packages added, removed and changed between two builds (default: current vs. the one before)."""
    result = build_diff(ctx, viewer, namespace, name, old_id=old, new_id=new)
    if result.diff is None:
        raise NotFoundException(f"build {result.old.build_id} or {result.new.build_id} has no lockfile")
    return m.diff(result.old.build_id, result.new.build_id, result.diff)


@get("/builds", sync_to_thread=True)
def builds(ctx: CtxDep, viewer: ViewerDep, limit: Limit = None, offset: Offset = None) -> m.BuildPage:
    """All builds, newest first (only those of namespaces the caller may read)."""
    size, start = clamp_page(limit, offset)
    page = list_builds(ctx.engine, namespaces=ctx.visible_namespaces(viewer), limit=size, offset=start)
    return _page(m.BuildPage, [m.build(b) for b in page.items], page.total, size, start)


@get("/builds/{build_id:int}", sync_to_thread=True)
def build(ctx: CtxDep, viewer: ViewerDep, build_id: BuildId) -> m.Build:
    return m.build(ctx.build(build_id, viewer))


@get("/builds/{build_id:int}/artifacts", sync_to_thread=True)
def artifacts(ctx: CtxDep, viewer: ViewerDep, build_id: BuildId) -> m.ArtifactPage:
    found = build_artifacts(ctx.engine, ctx.build(build_id, viewer).build_id)
    return _page(m.ArtifactPage, [m.artifact(a) for a in found], len(found), max(len(found), 1), 0)


@get("/builds/{build_id:int}/packages", sync_to_thread=True)
def build_packages(
    ctx: CtxDep, viewer: ViewerDep, build_id: BuildId, limit: Limit = None, offset: Offset = None
) -> m.PackagePage:
    return _packages_page(ctx, viewer, build_id, limit, offset)


def _packages_page(
    ctx: CtxDep, viewer: ViewerDep, build_id: BuildId, limit: int | None, offset: int | None
) -> m.PackagePage:
    build = ctx.build(build_id, viewer)
    locked = ctx.packages(build)
    if locked is None:
        raise NotFoundException(f"build {build_id} has no lockfile")
    size, start = clamp_page(limit, offset)
    items = [m.package(p) for p in locked.packages[start : start + size]]
    return _page(m.PackagePage, items, len(locked.packages), size, start, build_id=build_id, source=locked.origin)


@get("/packages", sync_to_thread=True)
def packages(
    ctx: CtxDep,
    viewer: ViewerDep,
    name: FromQuery[str],
    version: Text = None,
    limit: Limit = None,
    offset: Offset = None,
) -> m.PackageMatchPage:
    """Environments whose current build has package ``name`` (``*`` globs) at a version
    starting with ``version`` by segments (``3.3`` matches 3.3.2, not 3.30)."""
    query = parse_query(f"{name} {version}" if version else name)
    if query.package is None:
        return _page(m.PackageMatchPage, [], 0, *clamp_page(limit, offset))
    size, start = clamp_page(limit, offset)
    found = search_packages(ctx, viewer, query, limit=size, offset=start)
    return _page(m.PackageMatchPage, [m.package_match(h) for h in found.hits.items], found.hits.total, size, start)


@get("/sources", sync_to_thread=True)
def sources(ctx: CtxDep, viewer: ViewerDep) -> m.SourcePage:
    """Sources with their revision and last read (shown to readers of every namespace)."""
    found = list_sources(ctx.engine) if viewer.everything or not ctx.access.enabled else []
    return _page(m.SourcePage, [m.source(s) for s in found], len(found), max(len(found), 1), 0)


@get("/change-requests", sync_to_thread=True)
def change_requests(ctx: CtxDep, viewer: ViewerDep, limit: Limit = None, offset: Offset = None) -> m.ChangeRequestPage:
    """Reviews of open (and recently closed) pull/merge requests: environments changed and package diffs,
    compared with the merge base. They span namespaces, so only readers of every namespace see them when
    access control is on."""
    size, start = clamp_page(limit, offset)
    rows = review_rows(ctx, viewer)
    infos = {(c.source, c.ref): c for c in list_change_requests(ctx.engine)} if rows else {}
    items = [m.change_request(r, infos[(r.source, r.ref)]) for r in rows[start : start + size]]
    return _page(m.ChangeRequestPage, items, len(rows), size, start)


@get("/change-requests/{source:str}/{key:str}", sync_to_thread=True)
def change_request(ctx: CtxDep, viewer: ViewerDep, source: Name, key: Key) -> m.ChangeRequestDetail:
    """One review: the report, the previews of its head (with their pages), the head commit, forge links."""
    d = review_detail(ctx, viewer, source, key)
    return m.change_request(
        d.row,
        d.info,
        commit=d.commit,
        commit_url=d.commit_url,
        previews=[m.preview(p) for p in d.previews],
        markdown=d.info.report_markdown,
    )


def api_router(*, on_loop: bool = False) -> Router:
    """The API's routes; ``on_loop``: run them on the event loop (``web.placement``)."""
    return Router(
        "/api/v1",
        tags=["status"],
        route_handlers=placed(
            [
                status,
                namespaces,
                namespace,
                environments,
                environment,
                environment_builds,
                environment_packages,
                environment_diff,
                builds,
                build,
                artifacts,
                build_packages,
                packages,
                sources,
                change_requests,
                change_request,
            ],
            on_loop=on_loop,
            light=LIGHT,
        ),
    )


# Small, bounded answers (``web.placement``); ``status`` (every environment at once),
# packages (lockfiles may be read) and diffs stay in threads.
LIGHT = (
    namespaces,
    namespace,
    environments,
    environment,
    environment_builds,
    builds,
    build,
    artifacts,
    sources,
)
