"""Commands that change recorded state by hand: ``rollback``, ``retire``, ``gc``.

They take the store's writer lock and use the reconciler's recorder, store layout and
deliveries (migrating the state DB first, as any writer does); no scheduler, no worker.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from condaops.config import Settings
from condaops.reconciler.cli.common import EXIT_ERROR, EXIT_OK, parse_ref, print_json, say, unknown
from condaops.reconciler.cli.service import writer
from condaops.reconciler.model import EnvRef
from condaops.reconciler.service import Reconciler


@contextmanager
def _reconciler(settings: Settings, command: str, ref: EnvRef | None = None) -> Iterator[Reconciler]:
    """Under the writer lock: the state DB (migrated) and a reconciler on it; an unknown
    ``ref`` exits 1 naming it."""
    from condaops.reconciler.runtime import prepare_database
    from condaops.reconciler.state.db import make_engine
    from condaops.reconciler.state.queries import get_environment

    with writer(settings, command):
        engine = make_engine(settings.database_url)
        try:
            prepare_database(engine)
            if ref is not None and get_environment(engine, ref) is None:
                raise unknown([str(ref)])
            rec = Reconciler(settings, engine, clock=lambda: datetime.now(timezone.utc))
            try:
                yield rec
            finally:
                rec.close()
        finally:
            engine.dispose()


def cmd_rollback(settings: Settings, args: argparse.Namespace) -> int:
    from condaops.reconciler.operations import rollback

    ref = parse_ref(args.environment)
    with _reconciler(settings, f"rollback {ref} {args.build_id}", ref) as rec:
        b = rollback(
            rec.engine, rec.recorder, rec.layout, ref, args.build_id, settings=settings, deliveries=rec.deliveries
        )
    print(
        f"condaops: {ref} now points at build {b.build_id} ({b.prefix}); it stays there until its specification changes"
    )
    return EXIT_OK


def cmd_retire(settings: Settings, args: argparse.Namespace) -> int:
    from condaops.reconciler.operations import retire

    ref = parse_ref(args.environment)
    with _reconciler(settings, f"retire {ref}", ref) as rec:
        problems = retire(
            rec.engine, rec.recorder, settings, rec.layout, ref, note=args.note, deliveries=rec.deliveries
        )
    for problem in problems:
        say(f"warning: {problem}")
    print(f"condaops: {ref} is retired: unlinked, its lockfiles and builds kept (`condaops history {ref}`)")
    return EXIT_OK


def cmd_gc(settings: Settings, args: argparse.Namespace) -> int:
    from condaops.reconciler.operations import collect_garbage

    if args.keep < 0:
        say("--keep must be 0 or more")
        return EXIT_ERROR
    with _reconciler(settings, "gc") as rec:
        chosen = collect_garbage(
            rec.engine, rec.recorder, rec.layout, keep=args.keep, dry_run=args.dry_run, deliveries=rec.deliveries
        )
    verb = "would remove" if args.dry_run else "removed"
    if not args.json:
        for c in chosen:
            print(f"{verb} {c.build.ref} build {c.build.build_id}: {c.path} ({c.size / 1e6:.1f} MB)")
        print(f"condaops: {verb} {len(chosen)} prefix(es), {sum(c.size for c in chosen) / 1e6:.1f} MB")
    registry = _collect_registry(settings, dry_run=args.dry_run)
    if args.json:
        print_json(
            {
                "dry_run": args.dry_run,
                "prefixes": [
                    {
                        "environment": str(c.build.ref),
                        "build_id": c.build.build_id,
                        "path": str(c.path),
                        "bytes": c.size,
                    }
                    for c in chosen
                ],
                "registry": {
                    "uploads": registry.uploads,
                    "dynamic_images": list(registry.images),
                    "repositories": list(registry.repositories),
                    "blobs": registry.blobs,
                    "bytes": registry.bytes,
                },
            }
        )
        return EXIT_OK
    for repository in registry.repositories:
        print(f"{verb} dynamic repository {repository}")
    print(
        f"condaops: {verb} {registry.uploads} abandoned upload(s), {len(registry.images)} dynamic image(s) "
        f"(keeping {settings.dynamic.keep}), {registry.blobs} blob(s), {registry.bytes / 1e6:.1f} MB"
    )
    return EXIT_OK


def _collect_registry(settings: Settings, *, dry_run: bool):
    """Abandoned uploads and dynamic images beyond dynamic.keep (registry.collect)."""
    from condaops.registry.backends import open_storage
    from condaops.registry.collect import collect_registry

    storage = open_storage(settings)
    try:
        return collect_registry(settings, storage, dry_run=dry_run)
    finally:
        storage.close()
