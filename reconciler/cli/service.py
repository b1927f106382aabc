"""Service commands: ``serve``, ``worker``, ``migrate``, ``reconcile``.

``serve``, ``worker`` and ``reconcile`` build a ``Runtime`` (the composition root:
migrations, the reconciler, the scheduler, the workers and, for ``serve``, the site).
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys

import anyio

from condaops.config import Settings
from condaops.reconciler.cli.common import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, print_json, say
from condaops.reconciler.errors import CondaopsError

# Long-running processes use uvloop: the site serves a page with about a quarter less CPU
# (docs/benchmarks.md, status site). Still asyncio, which APScheduler's data store needs.
LOOP_OPTIONS = {"use_uvloop": True}


def _runtime(settings: Settings, **options: object):
    from condaops.reconciler.runtime import Runtime

    return Runtime(settings, **options)  # type: ignore[arg-type]  # options are Runtime's keyword arguments, passed through from the command


def writer(settings: Settings, command: str):
    """The store's writer lock for this command (SQLite: one writing process at a time)."""
    from condaops.reconciler.state.writer import store_writer

    return store_writer(settings.database_url, command)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    web = not args.no_web
    what = "health and metrics" if args.role == "reconciler" else "web"
    with writer(settings, "serve"):
        return _run_until_signalled(
            _runtime(settings, role=args.role),
            web,
            f"{args.role} role; {len(settings.sources)} source(s); store {settings.store}; "
            f"{what} {'http://' + settings.web.listen if web else 'off'}",
        )


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    if args.slots is not None and args.slots < 1:
        say("--slots must be 1 or more")
        return EXIT_ERROR
    rt = _runtime(settings, role="worker", slots=args.slots)
    return _run_until_signalled(
        rt,
        False,
        f"worker {rt.worker.name}; {args.slots or settings.build.concurrency} slot(s); store {settings.store}",
    )


def _run_until_signalled(rt, web: bool, banner: str) -> int:
    say(banner)
    try:
        anyio.run(_serve_until_signalled, rt, web, backend_options=LOOP_OPTIONS)
    except BaseExceptionGroup as group:  # raised inside the service's task group
        matched, _ = group.split(CondaopsError)
        if matched is None:
            raise
        raise _first_leaf(matched) from None
    say("stopped")
    return EXIT_OK


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


async def _serve_until_signalled(rt, web: bool) -> None:
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


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from condaops.reconciler.runtime import prepare_database
    from condaops.reconciler.state.db import make_engine, revision

    engine = make_engine(settings.database_url)
    before = revision(engine)
    prepare_database(engine)
    after = revision(engine)
    say(f"database at revision {after}" + ("" if before == after else f" (was {before or 'empty'})"))
    engine.dispose()
    return EXIT_OK


def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    """One pass and its builds (``--once`` is the default and only mode: ``serve`` loops)."""
    from condaops.reconciler.progress import Progress

    with writer(settings, "reconcile" + (" --wait" if args.wait else "")):
        progress = Progress(sys.stderr)
        rt = _runtime(settings)
        # What is loaded by now (modules, settings, the ORM) lives until exit: out of the
        # collector's way, so neither the run's collections nor the one at exit walk it.
        gc.freeze()
        rt.worker.listeners.append(progress.on_build)
        summary = anyio.run(lambda: rt.run_once(wait_retries=args.wait))
        progress.close()
        gc.freeze()  # the process exits soon after: its last collection has nothing to walk
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.counts.items())) or "no environments"
    say(counts)
    for ref in summary.failed:
        say(f"failed: {ref}")
    if args.json:
        print_json({"counts": dict(sorted(summary.counts.items())), "failed": list(summary.failed)})
    return EXIT_CHANGES if args.wait and not summary.ok else EXIT_OK
