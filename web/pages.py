"""The HTML pages: overview, namespace, environment, diff, search, login (change requests:
``review_pages``).

Thin handlers: parameters in, one ``service`` call, one template out. Pages work without
JavaScript; only the live build log needs it (``builds.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

import anyio
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, QueryParameter
from litestar.response import Redirect

from condaops.reconciler.model import ACTIVE_STATES
from condaops.reconciler.state.queries import list_rejected_files, list_sources
from condaops.reconciler.status import STATES
from condaops.web.access import ANONYMOUS, COOKIE, COOKIE_MAX_AGE, ViewerDep, safe_next
from condaops.web.context import CtxDep
from condaops.web.logs import current_step
from condaops.web.overview import FILTER_KEYS, Filters, attention_first, choices, health_counts, sync_counts
from condaops.web.params import FromBuild, Limit, Name, Offset, StateParam, Text, ToBuild
from condaops.web.render import html_response
from condaops.web.service import (
    OVERVIEW_CHARTS,
    build_diff,
    env_detail,
    environment_charts,
    overview_chart,
    search_packages,
    visible_recent_builds,
)
from condaops.web.supplychain import supply_view
from condaops.web.views import (
    EnvRow,
    clamp_page,
    count_states,
    filter_rows,
    namespace_rows,
    parse_query,
    valid_name,
)
from condaops.web.visible import visible_rows

PAGE_LIMIT = 100


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and len(text) < 10 else None


EnvOffset = Annotated[int | None, QueryParameter(name="env_offset", required=False)]
LoginForm = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]


class Paged:
    """A page of anything, for the ``pager`` macro."""

    def __init__(self, items: list[Any], total: int, limit: int, offset: int) -> None:
        self.items, self.total, self.limit, self.offset = items, total, limit, offset


def page_text(request: Request, ctx: CtxDep, viewer: ViewerDep, template: str, **context: Any) -> str:
    """Render ``template`` with what every page needs (who is reading, where we are)."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return ctx.renderer.text(template, viewer=viewer, auth_enabled=ctx.access.enabled, path=path, **context)


def page(
    request: Request, ctx: CtxDep, viewer: ViewerDep, template: str, *, status: int = 200, **context: Any
) -> Response[str]:
    return html_response(page_text(request, ctx, viewer, template, **context), status=status)


def cached_page(
    request: Request,
    ctx: CtxDep,
    viewer: ViewerDep,
    template: str,
    context: Callable[[], dict[str, Any]],
    *,
    version: int = 0,
) -> Response[str]:
    """A page made only of cached lists: rendered at most once per ``cache_seconds``
    for each viewer, URL and ``version`` of the lists."""
    key = _page_key(request, viewer, template, version)
    return html_response(ctx.memo(key, lambda: page_text(request, ctx, viewer, template, **context())))


def _page_key(request: Request, viewer: ViewerDep, template: str, version: int) -> tuple[Any, ...]:
    return (template, request.url.path, request.url.query, viewer, version)


@get("/", include_in_schema=False)
async def overview(request: Request, ctx: CtxDep, viewer: ViewerDep) -> Response[str]:
    """A rendered overview still fresh (``cached_page``) is answered on the event loop;
    making one (about 50 ms at 10,000 environments: counts, sorting, the template) runs in
    a thread, so it never holds up the requests on the loop meanwhile."""
    if ctx.environments.loaded:  # else the first load is waited for, in the thread
        kept = ctx.memo_get(_page_key(request, viewer, "overview.html", ctx.rows_generation()))
        if kept is not None:
            return html_response(kept)
    return await anyio.to_thread.run_sync(lambda: overview_page(request, ctx, viewer))


def overview_page(request: Request, ctx: CtxDep, viewer: ViewerDep) -> Response[str]:
    params = {k: request.query_params.get(k) for k in (*FILTER_KEYS, "offset", "limit")}
    return cached_page(
        request,
        ctx,
        viewer,
        "overview.html",
        lambda: overview_context(ctx, viewer, params),
        version=ctx.rows_generation(),  # a reloaded list shows at once (the live overview asks then)
    )


def overview_context(ctx: CtxDep, viewer: ViewerDep, params: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Counts of sync and health, every environment that is not Synced/Healthy first
    (filtered by the URL's parameters, ``web.overview``), sources, recent builds. What
    comes from the environment list alone is made once per change of the list."""
    params = params or {}
    filters = Filters.of(params)
    summary = ctx.environments.derived(
        ("overview", viewer, filters), lambda every: overview_summary(visible_rows(ctx.access, viewer, every), filters)
    )
    listed = summary["listed_rows"]
    size, start = clamp_page(_int(params.get("limit")), _int(params.get("offset")), default=50)
    recent = visible_recent_builds(ctx, viewer, limit=10)
    show_sources = viewer.everything or not ctx.access.enabled
    return {
        **summary,
        "live": "/events",
        "filters": filters,
        "listed": Paged(listed[start : start + size], len(listed), size, start),
        "list_base": "/?" + (filters.query() + "&" if filters.active else ""),
        "sources": list_sources(ctx.engine) if show_sources else [],
        "rejected_files": list_rejected_files(ctx.engine) if show_sources else [],
        "recent": recent,
        "recent_rows": ctx.fragments.build_rows(recent, show_env=True),
        "hides_more": ctx.access.hides_some(viewer) and not viewer.authenticated,
    }


def overview_summary(rows: list[EnvRow], filters: Filters) -> dict[str, Any]:
    """The overview's parts made from the environment list alone (``overview_context``)."""
    return {
        "total": len(rows),
        "states": count_states(rows),
        "syncs": sync_counts(rows),
        "healths": health_counts(rows),
        "attention": sum(not r.status.ok for r in rows),
        "choices": choices(rows),
        "listed_rows": attention_first(rows, filters),
        "namespaces": namespace_rows(rows),
        "charts": OVERVIEW_CHARTS if rows else (),
    }


@get("/charts/{name:str}", sync_to_thread=True, include_in_schema=False)
def chart(ctx: CtxDep, viewer: ViewerDep, name: Name) -> Response[str]:
    """An overview chart as an SVG document (``/charts/disk.svg``, ``queue.svg``, ``outcomes.svg``)."""
    stem = name.removesuffix(".svg")
    drawn = overview_chart(ctx, viewer, stem) if stem in OVERVIEW_CHARTS and name.endswith(".svg") else None
    if drawn is None:
        raise NotFoundException(f"no chart {name}")
    return Response(str(drawn), media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=30"})


@get("/namespaces/{namespace:str}", sync_to_thread=True, include_in_schema=False)
def namespace_page(
    request: Request,
    ctx: CtxDep,
    viewer: ViewerDep,
    namespace: Name,
    wanted: StateParam = None,
    filter: Text = None,
    limit: Limit = None,
    offset: Offset = None,
) -> Response[str]:
    if not valid_name(namespace) or not ctx.namespace_exists(namespace, viewer):
        raise NotFoundException(f"no namespace {namespace}")
    size, start = clamp_page(limit, offset, default=PAGE_LIMIT)
    state = wanted if wanted in STATES else None
    rows = filter_rows(ctx.rows(viewer), namespace=namespace, state=state, text=filter)
    base = f"/namespaces/{namespace}?" + urlencode({"state": state or "", "filter": filter or ""}) + "&"
    return page(
        request,
        ctx,
        viewer,
        "namespace.html",
        namespace=namespace,
        state_names=STATES,
        state_filter=state or "",
        text_filter=filter or "",
        base=base,
        page=Paged(rows[start : start + size], len(rows), size, start),
    )


@get("/environments/{namespace:str}/{name:str}", sync_to_thread=True, include_in_schema=False)
def environment_page(
    request: Request,
    ctx: CtxDep,
    viewer: ViewerDep,
    namespace: Name,
    name: Name,
    limit: Limit = None,
    offset: Offset = None,
) -> Response[str]:
    """Rendered again only when the environment's stamp changed (``WebContext.pages``); the
    page also depends on who reads it, the scheme and host it was asked on (the commands to
    copy name them) and its query string."""
    key = (namespace, name, viewer, request.url.scheme, request.url.netloc, request.url.query)
    text = ctx.pages.get(
        key,
        lambda: ctx.environment_stamp(namespace, name, viewer),
        lambda: environment_text(request, ctx, viewer, namespace, name, limit, offset),
    )
    return html_response(text)


def environment_text(
    request: Request, ctx: CtxDep, viewer: ViewerDep, namespace: str, name: str, limit: int | None, offset: int | None
) -> str:
    size, start = clamp_page(limit, offset, default=20, maximum=200)
    detail = env_detail(
        ctx,
        viewer,
        namespace,
        name,
        host=request.url.netloc,
        plain_http=request.url.scheme == "http",
        history_limit=size,
        history_offset=start,
    )
    history = detail.history
    latest = detail.env.latest
    step = current_step(ctx.log_file(latest)) if latest is not None and latest.state in ACTIVE_STATES else None
    choices = [b for b in history.items if "pixi-lock" in b.artifacts]
    locked = ctx.packages_html(detail.shown) if detail.shown else None
    return page_text(
        request,
        ctx,
        viewer,
        "environment.html",
        env=detail.env,
        row=detail.row,
        step=step,
        live=f"/environments/{namespace}/{name}/events",
        current=detail.env.current,
        shown=detail.shown,
        artifacts=detail.artifacts,
        downloads=ctx.fragments.downloads(detail.artifacts),
        locked=locked[0] if locked else None,
        locked_origin=locked[1] if locked else "",
        spec=ctx.spec_text(detail.spec_hash),
        prefix=detail.prefix,
        commands=detail.commands,
        deliveries=detail.deliveries,
        image=detail.image,
        updates=detail.updates,
        history=Paged(history.items, history.total, size, start),
        history_rows=ctx.fragments.build_rows(history.items),
        choices=choices,
        compare_from=ctx.fragments.build_options(choices, selected=1),
        compare_to=ctx.fragments.build_options(choices, selected=0),
        base=f"/environments/{namespace}/{name}?",
        charts=environment_charts(ctx, history.items),
        supply=supply_view(
            detail.env.latest or detail.env.current,
            detail.shown,
            signing=ctx.settings.publish.signing.key_file is not None,
        ),
    )


@get("/environments/{namespace:str}/{name:str}/diff", sync_to_thread=True, include_in_schema=False)
def diff_page(
    request: Request,
    ctx: CtxDep,
    viewer: ViewerDep,
    namespace: Name,
    name: Name,
    old: FromBuild = None,
    new: ToBuild = None,
) -> Response[str]:
    result = build_diff(ctx, viewer, namespace, name, old_id=old, new_id=new)
    return page(
        request,
        ctx,
        viewer,
        "diff.html",
        env=result.env,
        old=result.old,
        new=result.new,
        diff=result.diff,
        choices=result.choices,
        file_diff=result.file_diff,
        file_origin=result.file_origin,
    )


@get("/search", sync_to_thread=True, include_in_schema=False)
def search_page(
    request: Request,
    ctx: CtxDep,
    viewer: ViewerDep,
    q: Text = None,
    wanted: StateParam = None,
    limit: Limit = None,
    offset: Offset = None,
    env_offset: EnvOffset = None,
) -> Response[str]:
    query = parse_query(q)
    size, start = clamp_page(limit, offset)
    _, env_start = clamp_page(limit, env_offset)
    state = wanted if wanted in STATES else None
    found = search_packages(ctx, viewer, query, limit=size, offset=start) if query.package else None
    rows = filter_rows(ctx.rows(viewer), state=state, text=query.text) if (query.text or state) else []
    base = "/search?" + urlencode({"q": query.text, "state": state or ""}) + "&"
    return page(
        request,
        ctx,
        viewer,
        "search.html",
        q=query.text,
        query=query,
        state_names=STATES,
        state_filter=state or "",
        hits=Paged(found.hits.items if found else [], found.hits.total if found else 0, size, start),
        unindexed=found.unindexed if found else 0,
        pkg_base=base + f"env_offset={env_start}&",
        envs=Paged(rows[env_start : env_start + size], len(rows), size, env_start),
        env_base=base + f"offset={start}&",
    )


# --- login ---------------------------------------------------------------------------------


@get("/login", sync_to_thread=False, include_in_schema=False)
def login_form(request: Request, ctx: CtxDep, viewer: ViewerDep, next: Text = None) -> Response[str]:
    return page(request, ctx, viewer, "login.html", next=safe_next(next), error=None)


@post("/login", sync_to_thread=False, status_code=303, include_in_schema=False)
def login(request: Request, ctx: CtxDep, viewer: ViewerDep, data: LoginForm) -> Response[Any]:
    token = (data.get("token") or "").strip()
    target = safe_next(data.get("next"))
    if ctx.access.viewer(token) in (None, ANONYMOUS):
        return page(request, ctx, viewer, "login.html", status=401, next=target, error="That token is not known.")
    cookie = Cookie(
        key=COOKIE,
        value=token,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="lax",
        path="/",
        secure=request.url.scheme == "https",
    )
    return Redirect(target, status_code=303, cookies=[cookie])


@post("/logout", sync_to_thread=False, status_code=303, include_in_schema=False)
def logout() -> Redirect:
    return Redirect("/", status_code=303, cookies=[Cookie(key=COOKIE, value="", max_age=0, path="/")])


PAGE_HANDLERS = [
    overview,
    chart,
    namespace_page,
    environment_page,
    diff_page,
    search_page,
    login_form,
    login,
    logout,
]
LIGHT_PAGES = (namespace_page, environment_page)  # see web.placement (the overview: its own placement)
