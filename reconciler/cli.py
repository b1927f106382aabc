"""The ``condaops`` command line.

Exit status: 0 success / no change, 1 changes (``plan``), failed builds
(``reconcile --wait``) or a blocking policy violation (``check``), 2 bad configuration,
bad arguments, a broken environment or policy file (``check``, ``plan --git``) or an error.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from condaops.config import ConfigError, Settings, load_settings
from condaops.reconciler.errors import CondaopsError
from condaops.reconciler.model import EnvRef
from condaops.reconciler.names import shown

if TYPE_CHECKING:
    from condaops.reconciler.changereqs.compare import ChangeReport

EXIT_OK, EXIT_CHANGES, EXIT_ERROR = 0, 1, 2
# Long-running processes use uvloop: the site serves a page with about a quarter less CPU
# (docs/benchmarks.md, status site). Still asyncio, which APScheduler's data store needs.
LOOP_OPTIONS = {"use_uvloop": True}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="condaops", description="GitOps for conda environments.")
    p.add_argument("--config", type=Path, help="settings file (default: ./condaops.yaml if present)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="watch sources, build, serve the status site and API")
    s.add_argument("--no-web", action="store_true", help="do not start the web server")
    s.add_argument(
        "--role",
        choices=["all", "web", "reconciler"],
        default="all",
        help="all: everything in one process (default); web: status site, API, registry and "
        "webhooks; reconciler: sources, passes and scheduling (roles other than all need "
        "PostgreSQL, with `condaops worker` processes running the builds)",
    )

    w = sub.add_parser("worker", help="run builds, previews and publishing from the shared queue (PostgreSQL)")
    w.add_argument(
        "--slots",
        type=int,
        default=None,
        help="jobs this process runs at once (default build.concurrency; "
        "build.concurrency still holds across all workers)",
    )

    sub.add_parser("migrate", help="create or upgrade the database schema, then exit")

    r = sub.add_parser("reconcile", help="run one reconcile pass and its builds")
    r.add_argument("--once", action="store_true", required=True, help="one pass, then exit")
    r.add_argument("--wait", action="store_true", help="also wait for retries; exit 1 if any build failed")

    pl = sub.add_parser("plan", help="show what a reconcile would change (0 none, 1 changes, 2 error)")
    pl.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    pl.add_argument("--git", metavar="URL_OR_PATH", help="review a change of this repository instead (as `check`)")
    _check_options(pl, git_default=None)

    ck = sub.add_parser(
        "check",
        help="CI gate of a change: solve what it changes against its merge base and check its policy "
        "(0 pass, 1 a blocking policy violation, 2 a broken environment or policy file, or an error)",
    )
    ck.add_argument("--format", choices=["markdown", "json"], default="markdown")
    ck.add_argument("--git", metavar="URL_OR_PATH", default=".", help="the repository: a clone (default .) or a URL")
    _check_options(ck, git_default=".")

    st = sub.add_parser("status", help="show the state of every environment")
    st.add_argument("--json", action="store_true")
    st.add_argument("environments", nargs="*", metavar="NS/NAME")

    h = sub.add_parser("history", help="list the builds of one environment")
    h.add_argument("environment", metavar="NS/NAME")
    h.add_argument("--json", action="store_true")

    rb = sub.add_parser("rollback", help="link an earlier build of an environment")
    rb.add_argument("environment", metavar="NS/NAME")
    rb.add_argument("build_id", type=int)

    rt = sub.add_parser(
        "retire", help="retire an environment whose file is gone: unlink it, drop its image's latest tag"
    )
    rt.add_argument("environment", metavar="NS/NAME")
    rt.add_argument("--note", default="", help="why, recorded with the retirement")

    ch = sub.add_parser("changes", help="show the recorded reviews of open change requests")
    ch.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    ch.add_argument("--source", help="only this source")
    ch.add_argument("--ref", help="only this ref (e.g. refs/pull/7/head)")

    lk = sub.add_parser("lock", help="write or refresh the committed lockfiles of a working tree (no conda needed)")
    lk.add_argument("environments", nargs="*", metavar="NS/NAME", help="environments or globs (default: all)")
    lk.add_argument("--dir", type=Path, default=Path("."), help="the working tree: a clone's root (default .)")
    lk.add_argument("--path", help="the sub-folder holding the environments (default: the source's path)")
    lk.add_argument("--source", help="the configured source whose settings apply (default: the only one)")
    lk.add_argument("--format", choices=["conda-lock", "pixi"], help="default: the existing lock's, else conda-lock")
    lk.add_argument("--platform", action="append", default=[], help="lock these platforms (default: configured)")
    lk.add_argument("--cooldown", type=float, default=0.0, help="days a new package version must be old (default 0)")
    lk.add_argument("--check", action="store_true", help="write nothing; exit 1 when a lock is missing or stale")

    up = sub.add_parser("update", help="run the update check of sources with `updates` now (pull requests, reports)")
    up.add_argument("--source", action="append", default=[], help="only this source (repeatable)")

    g = sub.add_parser(
        "gc",
        help="remove old build prefixes (never the current build, never lockfiles), abandoned "
        "registry uploads and dynamic images beyond dynamic.keep",
    )
    g.add_argument("--keep", type=int, default=2, help="previous builds to keep per environment (default 2)")
    g.add_argument("--dry-run", action="store_true")
    return p


def _check_options(p: argparse.ArgumentParser, *, git_default: str | None) -> None:
    where = "" if git_default else "with --git: "
    p.add_argument("--ref", help=f"{where}the change: HEAD (default), refs/pull/7/head, a branch or a SHA")
    p.add_argument(
        "--base", help=f"{where}the target: origin/main, refs/remotes/origin/main, main (default: the source's branch)"
    )
    p.add_argument("--path", help=f"{where}the sub-folder holding the environments (default: the source's path)")
    p.add_argument("--source", help=f"{where}the configured source whose settings apply (default: matched by URL)")
    p.add_argument(
        "--no-fetch", action="store_true", help=f"{where}never fetch history into a shallow clone (fail instead)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.log_level)
    try:
        settings = load_settings(args.config)
        return COMMANDS[args.command](settings, args)
    except ConfigError as exc:
        print(f"condaops: configuration error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except CondaopsError as exc:
        print(f"condaops: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("apscheduler", "alembic", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _runtime(settings: Settings, **options: object):  # type: ignore[no-untyped-def]
    from condaops.reconciler.runtime import Runtime

    return Runtime(settings, **options)  # type: ignore[arg-type]


def _writer(settings: Settings, command: str):  # type: ignore[no-untyped-def]
    """The store's writer lock for this command (SQLite: one writing process at a time)."""
    from condaops.reconciler.state.writer import store_writer

    return store_writer(settings.database_url, command)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    web = not args.no_web
    what = "health and metrics" if args.role == "reconciler" else "web"
    with _writer(settings, "serve"):
        return _run_until_signalled(
            _runtime(settings, role=args.role),
            web,
            f"{args.role} role; {len(settings.sources)} source(s); store {settings.store}; "
            f"{what} {'http://' + settings.web.listen if web else 'off'}",
        )


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    if args.slots is not None and args.slots < 1:
        print("condaops: --slots must be 1 or more", file=sys.stderr)
        return EXIT_ERROR
    rt = _runtime(settings, role="worker", slots=args.slots)
    return _run_until_signalled(
        rt,
        False,
        f"worker {rt.worker.name}; {args.slots or settings.build.concurrency} slot(s); store {settings.store}",
    )


def _run_until_signalled(rt, web: bool, banner: str) -> int:  # type: ignore[no-untyped-def]
    print(f"condaops: {banner}", file=sys.stderr)
    try:
        anyio.run(_serve_until_signalled, rt, web, backend_options=LOOP_OPTIONS)
    except BaseExceptionGroup as group:  # raised inside the service's task group
        matched, _ = group.split(CondaopsError)
        if matched is None:
            raise
        raise _first_leaf(matched) from None
    print("condaops: stopped", file=sys.stderr)
    return EXIT_OK


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from condaops.reconciler.runtime import prepare_database
    from condaops.reconciler.state.db import make_engine, revision

    engine = make_engine(settings.database_url)
    before = revision(engine)
    prepare_database(engine)
    after = revision(engine)
    print(
        f"condaops: database at revision {after}" + ("" if before == after else f" (was {before or 'empty'})"),
        file=sys.stderr,
    )
    engine.dispose()
    return EXIT_OK


async def _serve_until_signalled(rt, web: bool) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM/SIGINT stop the service gracefully: running builds finish, nothing is lost."""
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:

        async def on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    stop.set()
                    return

        tg.start_soon(on_signal)
        await rt.serve(web=web, stop=stop)
        tg.cancel_scope.cancel()


def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    from condaops.reconciler.progress import Progress

    with _writer(settings, "reconcile --once" + (" --wait" if args.wait else "")):
        return _reconcile(settings, args, Progress(sys.stderr))


def _reconcile(settings: Settings, args: argparse.Namespace, progress) -> int:  # type: ignore[no-untyped-def]
    rt = _runtime(settings)
    rt.worker.listeners.append(progress.on_build)
    summary = anyio.run(lambda: rt.run_once(wait_retries=args.wait))
    progress.close()
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.counts.items())) or "no environments"
    print(f"condaops: {counts}", file=sys.stderr)
    for ref in summary.failed:
        print(f"condaops: failed: {ref}", file=sys.stderr)
    return EXIT_CHANGES if args.wait and not summary.ok else EXIT_OK


def cmd_plan(settings: Settings, args: argparse.Namespace) -> int:
    from condaops.reconciler.plan import render_plan

    if args.git:  # the older spelling of `condaops check`, with plan's exit status
        report = _check_change(settings, args)
        if report.has_errors or report.has_violations:
            return EXIT_ERROR
        return EXIT_CHANGES if report.has_changes else EXIT_OK
    p = _runtime(settings).reconciler.plan()
    print(render_plan(p, args.format))
    return EXIT_CHANGES if p.has_changes else EXIT_OK


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    """The CI gate: 0 when every changed environment solves and breaks no blocking policy
    rule (warnings allowed), 1 on a blocking violation, 2 when an environment or a policy
    file is broken (or, raised, when the check cannot run)."""
    report = _check_change(settings, args)
    if report.has_errors or report.policy_invalid:
        return EXIT_ERROR
    return EXIT_CHANGES if report.has_violations else EXIT_OK


def _check_change(settings: Settings, args: argparse.Namespace) -> ChangeReport:
    """Review the change ``args`` name against its merge base; print the review."""
    from condaops.reconciler.changereqs.check import CheckRequest, check
    from condaops.reconciler.changereqs.render import KIND_WORDS, render_report

    request = CheckRequest(
        git=args.git,
        ref=args.ref or "HEAD",
        base=args.base,
        path=args.path,
        source=args.source,
        fetch=not args.no_fetch,
    )
    report = check(settings, request)
    print(render_report(report, "json" if args.format == "json" else "markdown"))
    counts = ", ".join(f"{n} {KIND_WORDS.get(k, k)}" for k, n in report.counts().items()) or "no environment changes"
    blocked = sum(1 for e in report.changed if e.blocked)
    policy = f"; {blocked} break a blocking policy rule" if blocked else ""
    print(f"condaops: {request.ref} ({(report.head_revision or '')[:12]}): {counts}{policy}", file=sys.stderr)
    return report


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from condaops.reconciler.state.queries import list_deliveries, list_environments, list_rejected_files
    from condaops.reconciler.state.update_queries import list_update_branches, update_reports
    from condaops.reconciler.status import LABELS, file_status_item, status_item, updates_item

    rt = _runtime(settings)
    wanted = {str(EnvRef.parse(e)) for e in args.environments} if args.environments else None
    delivered = list_deliveries(rt.engine)
    reports, branches = update_reports(rt.engine), {(b.source, b.branch): b for b in list_update_branches(rt.engine)}
    items = [
        status_item(
            e,
            retries=settings.build.retries,
            store=settings.store,
            deliveries=delivered.get(e.ref, ()),
            updates=updates_item(reports.get(e.ref), branches),
        )
        for e in list_environments(rt.engine, include_retired=wanted is not None)  # retired: when named
        if wanted is None or str(e.ref) in wanted
    ]
    if wanted is None:  # files that could not become environments are failures too
        items += [file_status_item(f) for f in list_rejected_files(rt.engine)]
    if args.json:
        print(json.dumps(items, indent=2, default=str))
        return EXIT_OK
    if not items:
        print("no environments")
    width = max((len(_status_ref(it)) for it in items), default=0)
    for it in items:
        ref = _status_ref(it)
        detail = f"  {it['reason']}: {it['message']}" if it["state"] != "ready" and it["reason"] else ""
        state = LABELS.get(str(it["state"]), str(it["state"]))
        print(f"{ref:{width}}  {state:8}  build={it['build_id'] or '-':<5} {it['prefix'] or '-'}{detail}")
    return EXIT_OK


def _status_ref(item: dict[str, object]) -> str:
    """``ns/name``, or ``source:path`` for a file that names no environment."""
    if item["namespace"] is None:
        return f"{item['source']}:{shown(str(item['path']))}"
    return f"{item['namespace']}/{item['name']}"


def cmd_history(settings: Settings, args: argparse.Namespace) -> int:
    from condaops.reconciler.state.queries import env_builds

    rows = env_builds(_runtime(settings).engine, EnvRef.parse(args.environment))
    if args.json:
        print(json.dumps([_build_row(b) for b in rows], indent=2, default=str))
        return EXIT_OK
    for b in rows:
        print(
            f"{b.build_id:6} {b.state:10} attempt={b.attempt} {b.spec_hash[:12]} "
            f"{b.source_revision or '-':20.20} {b.reason or ''} {b.message or ''}"
            f"{' locked: ' + b.lock_path if b.lock_path else ''}".rstrip()
        )
    return EXIT_OK


def _build_row(b) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {
        "build_id": b.build_id,
        "state": b.state,
        "attempt": b.attempt,
        "spec_hash": b.spec_hash,
        "reason": b.reason,
        "message": b.message,
        "prefix": b.prefix,
        "revision": b.source_revision,
        "queued_at": b.queued_at,
        "started_at": b.started_at,
        "finished_at": b.finished_at,
        "collected": b.collected_at is not None,
        "artifacts": b.artifacts,
        "published_at": b.published_at,
        "publish_error": b.publish_error,
        "lock_path": b.lock_path,
    }


def cmd_rollback(settings: Settings, args: argparse.Namespace) -> int:
    from condaops.reconciler.operations import rollback

    ref = EnvRef.parse(args.environment)
    with _writer(settings, f"rollback {ref} {args.build_id}"):
        rt = _runtime(settings)
        b = rollback(
            rt.engine,
            rt.reconciler.recorder,
            rt.reconciler.layout,
            ref,
            args.build_id,
            settings=settings,
            deliveries=rt.reconciler.deliveries,
        )
    print(
        f"condaops: {ref} now points at build {b.build_id} ({b.prefix}); it stays there until its specification changes"
    )
    return EXIT_OK


def cmd_retire(settings: Settings, args: argparse.Namespace) -> int:
    from condaops.reconciler.operations import retire

    ref = EnvRef.parse(args.environment)
    with _writer(settings, f"retire {ref}"):
        rt = _runtime(settings)
        problems = retire(
            rt.engine,
            rt.reconciler.recorder,
            settings,
            rt.reconciler.layout,
            ref,
            note=args.note,
            deliveries=rt.reconciler.deliveries,
        )
    for problem in problems:
        print(f"condaops: warning: {problem}", file=sys.stderr)
    print(f"condaops: {ref} is retired: unlinked, its lockfiles and builds kept (`condaops history {ref}`)")
    return EXIT_OK


def cmd_changes(settings: Settings, args: argparse.Namespace) -> int:
    from condaops.reconciler.state.review_queries import list_change_requests, list_previews

    engine = _runtime(settings).engine
    rows = [c for c in list_change_requests(engine, source=args.source) if args.ref is None or c.ref == args.ref]
    if args.format == "json":
        print(
            json.dumps(
                [
                    {
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
                        "previews": [
                            _preview_row(settings, p)
                            for p in list_previews(engine, source=c.source, ref=c.ref)
                            if p.head_revision == c.head_revision
                        ],
                    }
                    for c in rows
                ],
                indent=2,
                default=str,
            )
        )
    elif args.format == "markdown":
        print("\n\n".join(c.report_markdown or f"`{c.ref}`: {c.error}" for c in rows))
    else:
        for c in rows:
            what = "error: " + (c.error or "") if c.error else ("changes" if c.has_changes else "no changes")
            print(f"{c.source}  {c.ref}  {c.state}  {c.head_revision[:12]}  {what}")
    return EXIT_OK


def _preview_row(settings: Settings, p) -> dict[str, object]:  # type: ignore[no-untyped-def]
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


def cmd_lock(settings: Settings, args: argparse.Namespace) -> int:
    from condaops.reconciler.lockcommand import run_lock_command

    return run_lock_command(settings, args)


def cmd_update(settings: Settings, args: argparse.Namespace) -> int:
    from condaops.reconciler.updates.service import run_update_command

    return run_update_command(settings, args)


def cmd_gc(settings: Settings, args: argparse.Namespace) -> int:
    from condaops.reconciler.operations import collect_garbage

    if args.keep < 0:
        print("condaops: --keep must be 0 or more", file=sys.stderr)
        return EXIT_ERROR
    with _writer(settings, "gc"):
        rt = _runtime(settings)
        chosen = collect_garbage(
            rt.engine,
            rt.reconciler.recorder,
            rt.reconciler.layout,
            keep=args.keep,
            dry_run=args.dry_run,
            deliveries=rt.reconciler.deliveries,
        )
    verb = "would remove" if args.dry_run else "removed"
    for c in chosen:
        print(f"{verb} {c.build.ref} build {c.build.build_id}: {c.path} ({c.size / 1e6:.1f} MB)")
    print(f"condaops: {verb} {len(chosen)} prefix(es), {sum(c.size for c in chosen) / 1e6:.1f} MB")
    _collect_registry(settings, verb, dry_run=args.dry_run)
    return EXIT_OK


def _collect_registry(settings: Settings, verb: str, *, dry_run: bool) -> None:
    """Abandoned uploads and dynamic images beyond dynamic.keep (registry.collect)."""
    from condaops.registry.backends import open_storage
    from condaops.registry.collect import collect_registry

    storage = open_storage(settings)
    try:
        done = collect_registry(settings, storage, dry_run=dry_run)
    finally:
        storage.close()
    for repository in done.repositories:
        print(f"{verb} dynamic repository {repository}")
    print(
        f"condaops: {verb} {done.uploads} abandoned upload(s), {len(done.images)} dynamic image(s) "
        f"(keeping {settings.dynamic.keep}), {done.blobs} blob(s), {done.bytes / 1e6:.1f} MB"
    )


COMMANDS = {
    "serve": cmd_serve,
    "worker": cmd_worker,
    "migrate": cmd_migrate,
    "reconcile": cmd_reconcile,
    "plan": cmd_plan,
    "check": cmd_check,
    "status": cmd_status,
    "history": cmd_history,
    "rollback": cmd_rollback,
    "retire": cmd_retire,
    "gc": cmd_gc,
    "changes": cmd_changes,
    "lock": cmd_lock,
    "update": cmd_update,
}

if __name__ == "__main__":
    sys.exit(main())
