"""Benchmark: the reconcile pass ``condaops serve`` runs, over 10,000 environments.

What is timed is ``Reconciler.reconcile_once`` — the same call the serve loop makes in its
thread — with the directory source followed by the real ``DirectoryWatcher`` (inotify, in
a thread, wired exactly as ``serve`` wires it: ``Reconciler.follow``). The tree has
10,000 generated environment files in 100 namespaces; the state DB (SQLite, or
PostgreSQL with ``--database postgresql``) is filled by the first pass, then every
build is marked completed and linked (prefix folder + link on disk, one bulk UPDATE: setup,
not timed; the per-build cost of a worker's claim + finish is timed on a sample).

Rows, each checked (the benchmark exits non-zero when a step it claims did not happen):

* **first pass** — cold read + parse of every file and the recording of 10,000 new
  environments and queued builds (of it: ``Recorder.apply_plan``);
* **no-op pass, no watch event** — nothing decided (``planned == 0``, nothing queued);
* **one-file change** — a file rewritten, the watcher's report awaited (not timed), then
  the pass (``SpecChanged`` queued for exactly that environment), and the pass after it
  (the queued build's record moved: one environment decided again);
* **full check** — the clock moved past ``reconcile.full_check``: every file re-read,
  every prefix and link checked, every environment planned (``full``, all ``UpToDate``).

Each figure is printed with its budget from issue 14 and the ratio figure / budget.

Run: ``.venv/bin/python benchmarks/bench_plan.py [--envs 10000] [--namespaces 100]
[--repeats 7] [--database sqlite|postgresql] [--cli]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _common as c

if TYPE_CHECKING:
    from condaops.config import Settings
    from condaops.reconciler.service import PassResult, Reconciler

PACKAGES = (
    "numpy",
    "pandas",
    "scipy",
    "matplotlib-base",
    "scikit-learn",
    "requests",
    "flask",
    "pyyaml",
    "sqlalchemy",
    "jupyterlab",
    "xarray",
    "dask",
    "pytest",
    "click",
    "rich",
    "pydantic",
    "boto3",
    "lxml",
    "pillow",
    "h5py",
    "netcdf4",
    "statsmodels",
    "seaborn",
)
VERSIONS = ("", ">=1.20", "=2.1", ">=2,<3", " 1.5.*", ">=0.9")
PIP = (
    "black==24.1.1",
    "ruff>=0.4",
    "httpx",
    "structlog>=24",
    "types-requests",
    "mkdocs-material==9.5.*",
    "rich-click[dev]>=1.7",
)
SELECTED = (
    ("pywin32", "win"),
    ("libgcc-ng", "linux64"),
    ("appnope", "osx"),
    ("cuda-nvcc", "linux"),
    ("tbb", "not win"),
)
CHANNELS = ((), ("conda-forge",), ("conda-forge",), ("conda-forge", "bioconda"), ("defaults",))
BUDGET = {"noop": 0.100, "change": 0.150, "full": 1.0, "record": 5.0}  # issue 14, target 1 (seconds)


# --- inputs -----------------------------------------------------------------------------


def spec_text(rng: random.Random, name: str) -> str:
    """A realistic small environment file: 3–6 conda lines, some pip lines and selectors."""
    lines = [f"name: {name}"]
    channels = rng.choice(CHANNELS)
    if channels:
        lines += ["channels:", *(f"  - {ch}" for ch in channels)]
    lines.append("dependencies:")
    lines.append(f"  - python={rng.choice(('3.9', '3.10', '3.11', '3.12'))}")
    for pkg in rng.sample(PACKAGES, rng.randint(2, 4)):
        lines.append(f"  - {pkg}{rng.choice(VERSIONS)}")
    roll = rng.random()
    if roll < 0.2:
        pkg, sel = rng.choice(SELECTED)
        lines.append(f"  - {pkg}  # [{sel}]")
    elif roll < 0.3:
        pkg, sel = rng.choice(SELECTED)
        lines.append(f"  - sel({sel}): {pkg}")
    if rng.random() < 0.25:
        lines.append("  - pip")
        lines.append("  - pip:")
        lines += [f"    - {req}" for req in rng.sample(PIP, rng.randint(1, 3))]
    if rng.random() < 0.1:
        lines += ["variables:", f"  PROJECT: {name}"]
    return "\n".join(lines) + "\n"


def write_tree(root: Path, envs: int, namespaces: int, stats: dict[str, int] | None = None) -> int:
    """Write ``envs`` files over ``namespaces``; one in ten as ``<ns>/<name>/environment.yaml``.

    Returns the number of files; ``stats``, if given, is filled with what they contain.
    """
    rng = random.Random(20261120)
    per_ns = envs // namespaces
    stats = {} if stats is None else stats
    stats.update({"files": 0, "folder form": 0, "with pip": 0, "with selectors": 0, "with variables": 0})
    for n in range(namespaces):
        ns = root / f"team-{n:03d}"
        ns.mkdir(parents=True, exist_ok=True)
        for i in range(per_ns):
            name = f"env-{i:03d}"
            path = ns / name / "environment.yaml" if i % 10 == 9 else ns / f"{name}.yaml"
            path.parent.mkdir(exist_ok=True)
            text = spec_text(rng, name)
            path.write_text(text)
            stats["files"] += 1
            stats["folder form"] += path.name == "environment.yaml"
            stats["with pip"] += "- pip:" in text
            stats["with selectors"] += "# [" in text or "sel(" in text
            stats["with variables"] += "variables:" in text
    return stats["files"]


# --- shared with bench_git: a clock to move, a filled state DB, checks that fail loudly --


class MovableClock:
    """The wall clock plus an offset the benchmark moves (to make a full check due)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def pass_full_check(self, settings: Settings) -> None:
        self.offset += timedelta(seconds=settings.reconcile.full_check + 1)


class StepSkipped(SystemExit):
    """A step the benchmark claims to measure did not run as claimed."""


def require(condition: bool, what: str) -> None:
    if not condition:
        raise StepSkipped(f"bench: FAILED: {what}")


def mark_built(rec: Reconciler, result: PassResult) -> None:
    """Every build queued by ``result`` completed and linked, as a worker leaves it: prefix
    folder and link on disk, the build row completed and current (setup: one bulk UPDATE)."""
    from sqlalchemy import text

    from condaops.reconciler.build.link import swap_link

    layout, now = rec.layout, rec.clock()
    rows = []
    for q in result.queued:
        prefix = layout.prefix(q.ref, q.spec_hash)
        prefix.mkdir(parents=True, exist_ok=True)
        swap_link(layout.env_link(q.ref), prefix)
        rows.append({"id": q.build_id, "prefix": layout.relative(prefix), "now": now})
    with rec.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE builds SET state = 'completed', reason = 'BuildSucceeded', started_at = :now, "
                "finished_at = :now, prefix = :prefix WHERE id = :id"
            ),
            rows,
        )
        conn.execute(
            text(
                "UPDATE environments SET current_build_id = :id, state_version = state_version + 1 "
                "WHERE id = (SELECT environment_id FROM builds WHERE id = :id)"
            ),
            [{"id": r["id"]} for r in rows],
        )


def recording_elsewhere(rec: Reconciler, first: PassResult, engine: Any, sample: int) -> tuple[float, float]:
    """The first pass's plan recorded again into an empty state DB (``engine``): seconds
    for ``Recorder.apply_plan`` of every new environment; then the median seconds a worker
    spends recording one build (claim + finish through the Recorder) over ``sample`` builds."""
    from condaops.reconciler.model import BuildOutcome
    from condaops.reconciler.state.recorder import Recorder

    recorder = Recorder(engine, rec.clock)
    t_record, queued = c.timed(lambda: recorder.apply_plan(first.plan))
    require(len(queued) == len(first.queued), f"recording again queued {len(queued)} of {len(first.queued)}")
    outcome = BuildOutcome(True, "BuildSucceeded", prefix="x", linked=True)
    each = [
        c.timed(lambda q=q: (recorder.claim(q.build_id, "bench"), recorder.finish(q.build_id, outcome, "bench")))[0]
        for q in queued[:sample]
    ]
    return t_record, c.median(each)


@contextlib.contextmanager
def watched(rec: Reconciler) -> Iterator[threading.Event]:
    """The real ``DirectoryWatcher`` on the (single) directory source, in a thread, feeding
    ``Reconciler.follow`` as ``serve`` does; yields an event set at every report."""
    import anyio

    from condaops.reconciler.sources.watch import DirectoryWatcher

    (src,) = [s for s in rec.settings.sources if s.directory is not None]
    watcher = DirectoryWatcher(src)
    reported = threading.Event()
    with rec.follow(src.name, ready=lambda: watcher.watching) as changed:

        def on_change(paths: frozenset[str]) -> None:
            changed(paths)
            reported.set()

        thread = threading.Thread(target=lambda: anyio.run(watcher.run, on_change), daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not watcher.watching and time.monotonic() < deadline:
            time.sleep(0.05)
        require(watcher.watching, "the directory watcher started")
        try:
            yield reported
        finally:
            watcher.stop()
            thread.join(timeout=10)


# --- measuring --------------------------------------------------------------------------


@dataclass
class Results:
    envs: int = 0
    namespaces: int = 0
    database: str = "sqlite"
    inputs: dict[str, int] = field(default_factory=dict)
    first: float = 0.0
    first_record: float = 0.0
    worker_each: float = 0.0
    noop: list[float] = field(default_factory=list)
    change: list[float] = field(default_factory=list)
    after_change: list[float] = field(default_factory=list)
    full: list[float] = field(default_factory=list)
    cli: list[tuple[float, int]] = field(default_factory=list)


def timed_pass(rec: Reconciler) -> tuple[float, PassResult]:
    return c.timed(rec.reconcile_once)


def run(tmp: Path, args: argparse.Namespace, database: str, other: str) -> Results:
    from condaops.reconciler.plan import BUILD, NOOP, SPEC_CHANGED, UP_TO_DATE
    from condaops.reconciler.service import Reconciler
    from condaops.reconciler.state.db import make_engine, migrate

    r = Results(namespaces=args.namespaces, database=args.database)
    t_write, r.envs = c.timed(lambda: write_tree(tmp / "envs", args.envs, args.namespaces, r.inputs))
    print(f"inputs: {', '.join(f'{n} {k}' for k, n in r.inputs.items())} (written in {c.fmt_s(t_write)})", flush=True)
    time.sleep(2.2)  # older than the parse cache's racy window, as files of a running site are
    extra = f"database: {database}" if database else ""
    settings = c.load(c.write_config(tmp, extra=extra))
    engine = make_engine(settings.database_url)
    migrate(engine)
    clock = MovableClock()
    rec = Reconciler(settings, engine, clock=clock)
    try:
        with watched(rec) as reported:
            r.first, first = timed_pass(rec)
            require(first.full and len(first.queued) == r.envs, f"first pass queued {len(first.queued)} of {r.envs}")
            aside = make_engine(other)
            migrate(aside)
            r.first_record, r.worker_each = recording_elsewhere(rec, first, aside, 100)
            aside.dispose()
            mark_built(rec, first)
            settled = rec.reconcile_once()  # the filled records moved: every environment decided once more
            require(settled.planned >= r.envs, f"the pass after filling decided {settled.planned}")
            ups = sum(1 for a in settled.plan.actions if a.kind == NOOP and a.reason == UP_TO_DATE)
            require(ups == r.envs, f"{ups} of {r.envs} environments UpToDate after filling")
            for _ in range(args.repeats):
                t, result = timed_pass(rec)
                require(result.planned == 0 and not result.queued and not result.full, "a no-op pass decided nothing")
                r.noop.append(t)
            for i in range(args.repeats):
                path = tmp / "envs" / f"team-{i % args.namespaces:03d}" / "env-000.yaml"
                reported.clear()
                path.write_text(f"dependencies:\n  - numpy >=1.{i}\n")
                require(reported.wait(10), f"the watcher reported the change to {path.name}")
                t, result = timed_pass(rec)
                builds = [a for a in result.plan.actions if a.kind == BUILD and a.reason == SPEC_CHANGED]
                require(
                    len(result.queued) == 1 and result.planned == 1 and len(builds) >= 1,
                    f"the pass after one change queued {len(result.queued)}, decided {result.planned}",
                )
                r.change.append(t)
                t, result = timed_pass(rec)
                require(result.planned == 1 and not result.queued, "the pass after it decided the queued one")
                r.after_change.append(t)
            for _ in range(max(3, args.repeats // 2)):
                clock.pass_full_check(settings)
                t, result = timed_pass(rec)
                require(result.full and result.planned >= r.envs, f"full check decided {result.planned}")
                r.full.append(t)
        r.cli = [cli_plan(tmp / "condaops.yaml") for _ in range(2 if args.cli else 0)]
    finally:
        rec.close()
        engine.dispose()
    return r


def cli_plan(config: Path) -> tuple[float, int]:
    """Wall time and exit status of ``condaops plan`` in a fresh process."""
    exe = Path(sys.executable).with_name("condaops")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "condaops.reconciler.cli"]
    start = time.perf_counter()
    proc = subprocess.run(
        [*cmd, "--config", str(config), "--log-level", "warning", "plan"],
        capture_output=True,
        text=True,
        env={**os.environ, "CONDAOPS_CONFIG": ""},
    )
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        print(proc.stderr, file=sys.stderr)
    return elapsed, proc.returncode


def report(r: Results) -> dict[str, object]:
    rows = [
        ("first pass: read + parse + record (cold)", [r.first], None),
        (f"recording {r.envs} new environments (its apply_plan, again)", [r.first_record], "record"),
        ("no-op pass, no watch event", r.noop, "noop"),
        ("pass after a one-file change (watcher report)", r.change, "change"),
        ("  the pass after it (the queued build recorded)", r.after_change, "change"),
        ("full check (every file, prefix, link, environment)", r.full, "full"),
    ]
    table = []
    for name, values, budget in rows:
        med = c.median(values)
        b = BUDGET.get(budget or "")
        ratio = f"{med / b:.2f}" if b else "-"
        table.append((name, c.fmt_s(med), c.fmt_s(min(values)), c.fmt_s(b) if b else "-", ratio))
    print()
    print(
        c.table(
            f"Reconciler.reconcile_once as `serve` runs it: {r.envs} environments, {r.database}, "
            f"directory source followed by the watcher (median, min of the runs)",
            ("pass", "median", "min", "budget", "ratio"),
            table,
        )
    )
    print(f"\nworker recording per build (claim + finish through the Recorder): {c.fmt_s(r.worker_each)}")
    figures: dict[str, object] = {
        "envs": r.envs,
        "database": r.database,
        "first_pass_s": round(r.first, 3),
        "record_new_s": round(r.first_record, 3),
        "noop_pass_s": round(c.median(r.noop), 4),
        "change_pass_s": round(c.median(r.change), 4),
        "after_change_pass_s": round(c.median(r.after_change), 4),
        "full_check_s": round(c.median(r.full), 3),
        "worker_record_each_ms": round(r.worker_each * 1000, 2),
    }
    if r.cli:
        med = c.median([t for t, _ in r.cli])
        print(f"condaops plan, fresh process (median of {len(r.cli)}): {c.fmt_s(med)} (exit {r.cli[0][1]})")
        figures["cli_plan_s"] = round(med, 3)
    figures["within_budget"] = (
        c.median(r.noop) < BUDGET["noop"]
        and c.median(r.change) < BUDGET["change"]
        and c.median(r.full) < BUDGET["full"]
        and r.first_record < BUDGET["record"]
    )
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--envs", type=int, default=10_000)
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--cli", action="store_true", help="also time `condaops plan` in a fresh process")
    args = ap.parse_args()
    c.print_header("bench_plan")
    with c.workdir("bench-plan") as tmp, database_url(args.database) as url, database_url(args.database) as other:
        results = run(tmp, args, url, other or f"sqlite:///{tmp / 'aside.db'}")
    c.print_summary("bench_plan", report(results))
    return 0


@contextlib.contextmanager
def database_url(kind: str) -> Iterator[str]:
    """ "" (SQLite in the store) or a fresh PostgreSQL database, dropped after."""
    if kind == "sqlite":
        yield ""
        return
    from tests.support.postgres import fresh_database

    with fresh_database() as url:
        yield url


if __name__ == "__main__":
    sys.exit(main())
