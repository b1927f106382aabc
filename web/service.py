"""What pages and API answers are made of, assembled once for both.

Handlers stay thin: they parse parameters, call one function here and render the result
as HTML (``pages``, ``builds``) or JSON (``api``). Visibility is enforced here and in
``WebContext``: nothing a viewer may not see is returned.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from litestar.exceptions import NotFoundException
from markupsafe import Markup

from condaops.reconciler.changereqs.compare import file_diff
from condaops.reconciler.model import DeliveryRecord, EnvRef
from condaops.reconciler.pkgdiff import rattler_compare
from condaops.reconciler.state.packages import (
    PackageHit,
    PackageHits,
    find_current_packages,
    indexed_build_ids,
    version_matches,
)
from condaops.reconciler.state.queries import (
    ArtifactInfo,
    BuildInfo,
    BuildList,
    EnvInfo,
    list_builds,
    list_deliveries,
)
from condaops.reconciler.state.site_queries import build_points, build_sizes, namespace_use, timeline
from condaops.reconciler.state.update_queries import list_update_branches, update_reports
from condaops.reconciler.status import updates_item
from condaops.web.access import Viewer
from condaops.web.build_contents import PIXI_LOCK
from condaops.web.context import WebContext
from condaops.web.reviews import diff_lines
from condaops.web.site_charts import disk_chart, durations_chart, outcomes_chart, queue_chart, sizes_chart
from condaops.web.views import (
    Command,
    EnvRow,
    ImageStatus,
    PackageDiff,
    SearchQuery,
    copy_commands,
    delivery_commands,
    diff_packages,
    env_link,
    env_row,
    image_status,
)

MAX_SCAN = 10_000  # package hits gathered when some current builds are not indexed yet


@dataclass(frozen=True, slots=True)
class EnvDetail:
    """Everything the environment page and ``GET /api/v1/environments/{ns}/{name}`` show."""

    row: EnvRow
    shown: BuildInfo | None  # the build whose files and packages are shown
    artifacts: list[ArtifactInfo]
    spec_hash: str | None  # the desired specification (else the current build's)
    canonical: str | None  # the desired specification, canonical JSON
    prefix: str | None
    commands: list[Command]
    history: BuildList
    deliveries: list[DeliveryRecord]  # kernels, modulefiles, names written for it
    image: ImageStatus | None = None  # the shown build's image, when this registry has it
    updates: dict[str, object] | None = None  # the last update check (``status.updates_item``)

    @property
    def env(self) -> EnvInfo:
        return self.row.info


def shown_build(env: EnvInfo) -> BuildInfo | None:
    """The current build; without one, the latest if it got as far as a lockfile."""
    if env.current is not None:
        return env.current
    if env.latest is not None and PIXI_LOCK in env.latest.artifacts:
        return env.latest
    return None


def env_detail(
    ctx: WebContext,
    viewer: Viewer,
    namespace: str,
    name: str,
    *,
    host: str,
    plain_http: bool = False,
    history_limit: int = 0,
    history_offset: int = 0,
) -> EnvDetail:
    view = ctx.environment_view(namespace, name, viewer, history_limit=history_limit, history_offset=history_offset)
    env = view.env
    shown = shown_build(env)
    prefix = env_link(ctx.layout.root, env.ref) if env.current else None
    spec_hash = env.desired_spec_hash or (env.current.spec_hash if env.current else None)
    deliveries = list_deliveries(ctx.engine, [env.ref]).get(env.ref, [])
    current = shown is not None and env.current is not None and shown.build_id == env.current.build_id
    image = image_status(ctx.image_record(shown), current=current) if shown else None
    has_lock = bool(shown and "conda-lock" in shown.artifacts)
    commands = copy_commands(host, env.ref, prefix=prefix, has_lock=has_lock, image=image, plain_http=plain_http)
    return EnvDetail(
        row=env_row(env, retries=ctx.retries),
        shown=shown,
        artifacts=sorted(view.artifacts.get(shown.build_id, []), key=lambda a: a.kind) if shown else [],
        spec_hash=spec_hash,
        canonical=ctx.specification(spec_hash) if spec_hash else None,
        prefix=prefix,
        commands=delivery_commands(env.ref, deliveries) + commands,
        history=view.history,
        deliveries=deliveries,
        image=image,
        updates=_updates(ctx, env.ref),
    )


def _updates(ctx: WebContext, ref: EnvRef) -> dict[str, object] | None:
    report = update_reports(ctx.engine, [ref]).get(ref)
    if report is None:
        return None
    branches = {(b.source, b.branch): b for b in list_update_branches(ctx.engine, source=report.source)}
    return updates_item(report, branches)


def visible_recent_builds(ctx: WebContext, viewer: Viewer, *, limit: int) -> list[BuildInfo]:
    """The newest builds the viewer may see."""
    return list_builds(ctx.engine, namespaces=ctx.visible_namespaces(viewer), limit=limit).items


# --- diff ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiffResult:
    env: EnvInfo
    old: BuildInfo
    new: BuildInfo
    diff: PackageDiff | None  # None when one side has no lockfile
    choices: list[BuildInfo]  # builds with a lockfile, newest first
    file_diff: list[tuple[str, str]] = field(default_factory=list)  # (class, line) of a unified diff
    file_origin: str = ""  # what was compared: the files at their commits, or the specifications


def build_diff(
    ctx: WebContext, viewer: Viewer, namespace: str, name: str, *, old_id: int | None, new_id: int | None
) -> DiffResult:
    """Compare two builds of one environment; by default the current (or newest locked)
    build with the locked build before it."""
    env = ctx.environment(namespace, name, viewer)
    choices = [b for b in list_builds(ctx.engine, ref=env.ref, limit=200).items if PIXI_LOCK in b.artifacts]
    if new_id is None:
        new_id = env.current.build_id if env.current else (choices[0].build_id if choices else None)
    if old_id is None:
        older = [b.build_id for b in choices if new_id is not None and b.build_id < new_id]
        old_id = older[0] if older else new_id
    if old_id is None or new_id is None:
        raise NotFoundException(f"{env.ref} has no build with a lockfile to compare")
    old, new = ctx.build(old_id, viewer), ctx.build(new_id, viewer)
    if old.ref != env.ref or new.ref != env.ref:
        raise NotFoundException(f"builds {old_id} and {new_id} are not both builds of {env.ref}")
    before, after = ctx.packages(old), ctx.packages(new)
    result = diff_packages(before.packages, after.packages, rattler_compare) if before and after else None
    lines, origin = env_file_diff(ctx, old, new)
    return DiffResult(env, old, new, result, choices, lines, origin)


def env_file_diff(ctx: WebContext, old: BuildInfo, new: BuildInfo) -> tuple[list[tuple[str, str]], str]:
    """The unified diff of the environment file between two builds: the files themselves
    at their commits when the source's Git mirror is here, else the recorded (normalized)
    specifications, which every build has."""
    texts = [ctx.revisions.file_text(b.source, b.source_revision, b.source_path) for b in (old, new)]
    if None not in texts and old.source_path and new.source_path:
        origin = "the environment file at each build's commit"
        text = file_diff(texts[0], texts[1], old.source_path, new.source_path)
    else:
        origin = "the recorded specifications (normalized; the files' own text is not available here)"
        name = f"{new.ref.name}.yaml"
        text = file_diff(ctx.spec_text(old.spec_hash), ctx.spec_text(new.spec_hash), name, name)
    return diff_lines(text), origin


# --- search -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PackageSearch:
    hits: PackageHits
    unindexed: int  # current builds read from their pixi.lock (not in the index yet)


def search_packages(ctx: WebContext, viewer: Viewer, query: SearchQuery, *, limit: int, offset: int) -> PackageSearch:
    """Current builds of visible environments that hold ``query.package`` (version prefix)."""
    assert query.package is not None
    rows = ctx.rows(viewer)
    namespaces = ctx.visible_namespaces(viewer)
    current = {r.info.current.build_id: r for r in rows if r.info.current}
    unindexed = sorted(set(current) - indexed_build_ids(ctx.engine, current))
    if not unindexed:
        hits = find_current_packages(
            ctx.engine, query.package, query.version, limit=limit, offset=offset, namespaces=namespaces
        )
        return PackageSearch(hits, 0)
    found = find_current_packages(ctx.engine, query.package, query.version, limit=MAX_SCAN, namespaces=namespaces).items
    for build_id in unindexed:
        info = current[build_id].info
        assert info.current is not None
        locked = ctx.packages(info.current)
        for p in locked.packages if locked else ():
            if fnmatch.fnmatchcase(p.name, query.package) and version_matches(p.version, query.version):
                found.append(PackageHit(info.ref, build_id, p))
    found.sort(key=lambda h: (h.ref.namespace, h.ref.name, h.package.platform, h.package.name))
    return PackageSearch(PackageHits(len(found), found[offset : offset + limit]), len(unindexed))


# --- charts -----------------------------------------------------------------------------------

CHART_SECONDS = 30.0  # the overview's charts are drawn again at most this often


def environment_charts(ctx: WebContext, builds: list[BuildInfo]) -> list[Markup]:
    """Build durations and sizes of ``builds`` (the page of history shown; SVG)."""
    points = build_points(builds, build_sizes(ctx.engine, [b.build_id for b in builds if b.finished_at]))
    return [c for c in (durations_chart(points), sizes_chart(points)) if c is not None]


OVERVIEW_CHARTS = ("disk", "queue", "outcomes")


def overview_chart(ctx: WebContext, viewer: Viewer, name: str) -> Markup | None:
    """One of the overview's charts (``OVERVIEW_CHARTS``) for the namespaces the viewer
    may see: disk use per namespace and in total, queue depth or build outcomes over the
    last day; kept ``CHART_SECONDS``. Served as its own SVG document, so drawing it (disk
    use reads every current build's packages) never holds up the overview."""
    namespaces = ctx.visible_namespaces(viewer)
    key = ("overview-chart", name, frozenset(namespaces) if namespaces is not None else None)

    def draw() -> Markup | None:
        now = ctx.clock()
        if name == "disk":
            return disk_chart(namespace_use(ctx.engine, namespaces))
        day = timeline(ctx.engine, now, namespaces=namespaces)
        return queue_chart(day, now) if name == "queue" else outcomes_chart(day, now)

    return ctx.memo(key, draw, seconds=CHART_SECONDS)
