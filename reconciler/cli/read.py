"""Read commands: ``status``, ``history``, ``plan``, ``changes``.

They open the state DB for reading only (``common.open_state``): no migrations, no
scheduler, no worker, no ``Runtime``. Without a state DB they say where they looked and
exit 2 rather than create one; a named environment the DB does not know exits 1.
"""

from __future__ import annotations

import argparse
import gc
import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from condaops.config import Settings
from condaops.reconciler.cli.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    Refused,
    open_reader,
    open_state,
    parse_ref,
    print_json,
    say,
    unknown,
    where_looked,
)

if TYPE_CHECKING:
    from condaops.reconciler.plan import Plan
    from condaops.reconciler.state.infos import BuildInfo

GC_THRESHOLDS = (50_000, 20, 10)  # runtime.GC_THRESHOLDS (not imported: it loads the service)
SUBJECT_WIDTH = 60  # characters of a subject in the table (--json has it whole)


# --- status ---------------------------------------------------------------------------


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    wanted = [str(parse_ref(e)) for e in args.environments]
    with open_reader(settings) as db:
        envs = db.list_environments(include_retired=bool(wanted))  # retired: when named
        if wanted:
            envs = [e for e in envs if str(e.ref) in wanted]
        rejected = [] if wanted else db.list_rejected_files()  # files that could not become environments
    if args.json:
        print_json(_status_items(settings, envs, rejected, named=bool(wanted)))
    missing = sorted(set(wanted) - {str(e.ref) for e in envs})
    if not args.json:
        _print_status(settings, envs, rejected, missing)
    if missing:
        raise unknown(missing)
    return EXIT_OK


def _status_items(settings: Settings, envs: list[Any], rejected: list[Any], *, named: bool) -> list[Any]:
    """The JSON objects of ``status --json`` (``reconciler.status``), deliveries and
    updates included: those are read with SQLAlchemy (``state.queries``), which the table
    does not need."""
    from condaops.reconciler.state.queries import list_deliveries
    from condaops.reconciler.state.update_queries import list_update_branches, update_reports
    from condaops.reconciler.status import file_status_item, status_item, updates_item

    engine = open_state(settings)
    try:
        delivered = list_deliveries(engine, [e.ref for e in envs] if named else None)
        reports = update_reports(engine)
        branches = {(b.source, b.branch): b for b in list_update_branches(engine)}
    finally:
        engine.dispose()
    items = [
        status_item(
            e,
            retries=settings.build.retries,
            store=settings.store,
            deliveries=delivered.get(e.ref, ()),
            updates=updates_item(reports.get(e.ref), branches),
        )
        for e in envs
    ]
    return items + [file_status_item(f) for f in rejected]


def _print_status(settings: Settings, envs: list[Any], rejected: list[Any], missing: list[str]) -> None:
    """One line per environment: the fields of ``status_item`` a person reads first
    (state, reason, build, the stable link), without the queries only the JSON needs."""
    from condaops.reconciler.names import shown
    from condaops.reconciler.status import LABELS, derive_state, file_status_item

    rows: list[tuple[str, Any, Any, Any, int | None, str]] = []
    for e in envs:
        state, reason, message = derive_state(e, retries=settings.build.retries)
        current = e.current if not e.retired else None  # a retired environment is unlinked
        link = f"{settings.store}/{e.ref.namespace}/envs/{e.ref.name}" if current else "-"
        rows.append((str(e.ref), state, reason, message, current.build_id if current else None, link))
    for f in rejected:
        it = file_status_item(f)
        rows.append((f"{it['source']}:{shown(str(it['path']))}", it["state"], it["reason"], it["message"], None, "-"))
    if not rows and not missing:
        print("no environments")
    width = max((len(r[0]) for r in rows), default=0)
    for ref, state, reason, message, build_id, link in rows:
        detail = f"  {reason}: {message}" if state != "ready" and reason else ""
        label = LABELS.get(str(state), str(state))
        print(f"{ref:{width}}  {label:8}  build={build_id or '-':<5} {link}{detail}")


# --- history --------------------------------------------------------------------------


def cmd_history(settings: Settings, args: argparse.Namespace) -> int:
    from condaops.reconciler.sources.revisions import RevisionReader

    ref = parse_ref(args.environment)
    with open_reader(settings) as db:
        rows = db.env_builds(ref)
        if not rows and db.get_environment(ref) is None:  # one query when it has builds
            raise unknown([str(ref)])
    now = datetime.now(timezone.utc)
    revisions = RevisionReader(settings.sources)  # the site's lookup: the Git mirror, the file
    try:
        subjects = [subject(revisions, b) for b in rows]
    finally:
        revisions.close()
    if args.json:
        print_json([build_row(b, now, s) for b, s in zip(rows, subjects, strict=True)])
        return EXIT_OK
    table: list[tuple[str, ...]] = [
        ("BUILD", "STATE", "ATTEMPT", "QUEUED", "FINISHED", "TOOK", "REVISION", "SUBJECT", "NOTE")
    ]
    table += [_history_line(b, now, s) for b, s in zip(rows, subjects, strict=True)]
    widths = [max(len(r[i]) for r in table) for i in range(8)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r[:8], widths, strict=True)) + ("  " + r[8] if r[8] else ""))
    unknown_commits = sum(1 for b, s in zip(rows, subjects, strict=True) if s is None and b.source_revision)
    if unknown_commits:
        say(f"{unknown_commits} revision(s) without a subject: the commit is not in this host's Git mirror")
    return EXIT_OK


def subject(revisions: Any, b: BuildInfo) -> str | None:
    """What a build's revision was: the commit subject (Git), the file's path (directory)."""
    found = revisions.describe(b.source, b.source_revision, b.source_path)
    if found is None:
        return None
    return found.subject if found.kind == "git" else found.path


def _history_line(b: BuildInfo, now: datetime, about: str | None) -> tuple[str, ...]:
    from condaops.reconciler.sources.revisions import short_revision

    took = duration(b, now)
    text = "-" if took is None else _human(took) + ("" if b.finished_at else " so far")
    note = " ".join(x for x in (b.reason or "", b.message or "") if x)
    if b.lock_path:
        note += f" locked: {b.lock_path}"
    shown = about or b.source_path or "-"
    return (
        str(b.build_id),
        b.state,
        str(b.attempt),
        _when(b.queued_at),
        _when(b.finished_at),
        text,
        short_revision(b.source_revision),
        _fit(shown, keep_end=about is None or about.startswith("/")),  # a path (directory source) or a subject
        note.strip(),
    )


def _fit(text: str, *, keep_end: bool) -> str:
    """``text`` in ``SUBJECT_WIDTH`` characters: a path keeps its end (the file's name)."""
    if len(text) <= SUBJECT_WIDTH:
        return text
    return "…" + text[1 - SUBJECT_WIDTH :] if keep_end else text[: SUBJECT_WIDTH - 1] + "…"


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)  # SQLite gives naive UTC back


def _when(at: datetime | None) -> str:
    return "-" if at is None else _utc(at).strftime("%Y-%m-%d %H:%M:%SZ")


def duration(b: BuildInfo, now: datetime) -> float | None:
    """Seconds from start to finish (to now while it runs); None before it starts."""
    if b.started_at is None:
        return None
    end = _utc(b.finished_at) if b.finished_at else now
    return max((end - _utc(b.started_at)).total_seconds(), 0.0)


def _human(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    m, s = divmod(s, 60)
    return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


def build_row(b: BuildInfo, now: datetime, about: str | None = None) -> dict[str, object]:
    return {
        "build_id": b.build_id,
        "state": b.state,
        "attempt": b.attempt,
        "spec_hash": b.spec_hash,
        "reason": b.reason,
        "message": b.message,
        "prefix": b.prefix,
        "source": b.source,
        "revision": b.source_revision,
        "path": b.source_path,
        "subject": about,  # the commit subject (Git), the file's full path (directory), None when unknown
        "queued_at": b.queued_at,
        "started_at": b.started_at,
        "finished_at": b.finished_at,
        "duration_seconds": duration(b, now),
        "collected": b.collected_at is not None,
        "artifacts": b.artifacts,
        "published_at": b.published_at,
        "publish_error": b.publish_error,
        "lock_path": b.lock_path,
    }


# --- plan -----------------------------------------------------------------------------


def cmd_plan(settings: Settings, args: argparse.Namespace) -> int:
    fmt = "json" if args.json else args.format
    if args.git:  # the older spelling of `condaops check`, with plan's exit status
        from condaops.reconciler.cli.gate import check_change

        report = check_change(settings, args, fmt)
        if report.has_errors or report.has_violations:
            return EXIT_ERROR
        return EXIT_CHANGES if report.has_changes else EXIT_OK
    from condaops.reconciler.plan import render_plan

    p = read_plan(settings)
    print(render_plan(p, fmt))
    return EXIT_CHANGES if p.has_changes else EXIT_OK


def read_plan(settings: Settings) -> Plan:
    """What a pass would do now: the sources read, the state DB only read (a missing one
    plans against nothing recorded; it is not created)."""
    from condaops.reconciler.desired import effective, policy_of
    from condaops.reconciler.plan import plan
    from condaops.reconciler.sources.reader import SourceReader
    from condaops.reconciler.store import StoreLayout

    # Reading 10,000 files keeps every spec until exit: the collector's full collections
    # would walk them (and the modules) again and again while freeing nothing; the same
    # settings as a serving process (runtime.freeze_startup_objects), without its collect.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    if not settings.sources:
        raise Refused(f"nothing to plan: no sources are configured ({where_looked(settings)})")
    try:
        db = open_reader(settings)
    except Refused as exc:
        say(f"{exc}; planning against nothing recorded")
        recorded = {}
    else:
        root = str(StoreLayout.of(settings).root)
        with db:  # a vanished prefix needs a rebuild (as service.observe)
            recorded = db.recorded(lambda prefix: os.path.isdir(os.path.join(root, prefix)))
    # the reconciler's parse results, by content: unchanged files are not parsed again
    reader = SourceReader(parse_cache=StoreLayout.of(settings).caches / "specs", save_parses=False)
    try:
        snapshots = [effective(reader(src), settings) for src in settings.sources]
    finally:
        reader.close()
    return plan(snapshots, recorded, policy=policy_of(settings), now=datetime.now(timezone.utc))


# --- changes --------------------------------------------------------------------------


def cmd_changes(settings: Settings, args: argparse.Namespace) -> int:
    from condaops.reconciler.state.review_queries import list_change_requests, list_previews

    fmt = "json" if args.json else args.format
    engine = open_state(settings)
    try:
        rows = [c for c in list_change_requests(engine, source=args.source) if args.ref is None or c.ref == args.ref]
        previews = {
            (c.source, c.ref): [
                p for p in list_previews(engine, source=c.source, ref=c.ref) if p.head_revision == c.head_revision
            ]
            for c in rows
        }
    finally:
        engine.dispose()
    if fmt == "json":
        print_json([_change_row(settings, c, previews[c.source, c.ref]) for c in rows])
    elif fmt == "markdown":
        print("\n\n".join(c.report_markdown or f"`{c.ref}`: {c.error}" for c in rows))
    else:
        for c in rows:
            what = "error: " + (c.error or "") if c.error else ("changes" if c.has_changes else "no changes")
            print(f"{c.source}  {c.ref}  {c.state}  {c.head_revision[:12]}  {what}")
    return EXIT_OK


def _change_row(settings: Settings, c: Any, previews: list[Any]) -> dict[str, object]:
    import json

    return {
        "source": c.source,
        "ref": c.ref,
        "state": c.state,
        "head_revision": c.head_revision,
        "base_revision": c.base_revision,
        "has_changes": c.has_changes,
        "has_errors": c.has_errors,
        "error": c.error,
        "reason": c.reason,
        "title": c.title,
        "merge_base": c.base_revision,
        "target_revision": c.target_revision,
        "forge": {
            "comment_id": c.comment_id,
            "published": c.published_version is not None and c.published_version >= c.version,
            "published_at": c.published_at,
            "error": c.publish_error,
        },
        "report": json.loads(c.report_json) if c.report_json else None,
        "previews": [_preview_row(settings, p) for p in previews],
    }


def _preview_row(settings: Settings, p: Any) -> dict[str, object]:
    return {
        "environment": str(p.ref),
        "state": p.state,
        "reason": p.reason,
        "message": p.message,
        "spec_hash": p.spec_hash,
        "reused": p.reused,
        "prefix": str(settings.store / p.prefix) if p.prefix else None,
        "artifacts": {k: str(settings.store / v) for k, v in sorted(p.artifacts.items())},
    }
