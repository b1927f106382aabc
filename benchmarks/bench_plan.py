"""Benchmark: ``plan`` over 10,000 environment files in 100 namespaces.

Measures the code path of ``condaops plan`` — ``Reconciler.plan()``: read the directory
source, load the recorded state from the state DB, observe prefixes on disk, then the
pure ``plan()`` — in three situations:

* **cold** — a fresh reader (every file read and parsed), empty state DB;
* **warm, nothing recorded** — the same reader again (files older than the SpecCache's
  racy window are not re-parsed), empty state DB;
* **warm, recorded** — the state DB holds 10,000 environments, each with a completed,
  linked build of its current spec (recorded through ``Recorder``: ``apply_plan``, then
  ``claim`` + ``finish``); their prefixes exist (empty folders) and are linked, so the
  plan is all ``UpToDate`` (checked).

Also reported: the cost of recording those builds, a full reconcile pass with nothing
to do (what ``serve`` runs on every wake-up), and ``condaops plan`` as a fresh process.

Run: ``.venv/bin/python benchmarks/bench_plan.py [--envs 10000] [--namespaces 100]``.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import _common as c

if TYPE_CHECKING:
    from condaops.reconciler.model import EnvRef, RecordedEnv
    from condaops.reconciler.plan import Plan
    from condaops.reconciler.service import Reconciler

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
REPEATS = 5
COLD_RUNS = 2


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
        ns.mkdir(parents=True)
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


# --- measuring --------------------------------------------------------------------------


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Timing:
    """End-to-end ``Reconciler.plan()`` (median, min) and the median of each part."""

    total: float
    min: float
    read: float
    load_recorded: float
    observe: float
    plan: float

    def parts(self) -> dict[str, float]:
        return {"read": self.read, "load_recorded": self.load_recorded, "observe": self.observe, "plan": self.plan}


def breakdown(rec: Reconciler) -> dict[str, float]:
    """The parts of ``Reconciler.plan()`` timed one by one (same calls, same order)."""
    from condaops.reconciler.plan import plan
    from condaops.reconciler.service import policy_of
    from condaops.reconciler.state.queries import load_recorded

    t_read, snaps = c.timed(rec.snapshots)
    t_load, recorded = c.timed(lambda: load_recorded(rec.engine))
    t_observe, _ = c.timed(lambda: observe_prefixes(rec, recorded))
    t_plan, _ = c.timed(lambda: plan(snaps, recorded, policy=policy_of(rec.settings), now=rec.clock()))
    return {"read": t_read, "load_recorded": t_load, "observe": t_observe, "plan": t_plan}


def observe_prefixes(rec: Reconciler, recorded: dict[EnvRef, RecordedEnv]) -> int:
    """What ``Reconciler.observed()`` adds to ``load_recorded``: the linked prefixes, looked
    up in the state DB, checked on disk. (The same calls, so that part can be timed alone.)"""
    from condaops.reconciler.state.queries import current_prefixes

    missing = 0
    for ref, prefix in current_prefixes(rec.engine).items():
        if ref in recorded and not rec.layout.absolute(prefix).is_dir():
            missing += 1
    return missing


def summarize(totals: list[float], parts: list[dict[str, float]]) -> Timing:
    return Timing(c.median(totals), min(totals), **{k: c.median([p[k] for p in parts]) for k in parts[0]})


def measure(rec: Reconciler, repeats: int = REPEATS) -> tuple[Timing, Plan]:
    """``repeats`` warm runs of ``rec.plan()``, each followed by its parts; and the last plan."""
    totals, parts = [], []
    for _ in range(repeats):
        t, result = c.timed(rec.plan)
        totals.append(t)
        parts.append(breakdown(rec))
    return summarize(totals, parts), result


def measure_cold(fresh: Callable[[], Reconciler], runs: int = COLD_RUNS) -> Timing:
    """Each run with a new reader, so every file is read and parsed again; parts once."""
    totals = [c.timed(fresh().plan)[0] for _ in range(runs)]
    return summarize(totals, [breakdown(fresh())])


def settle(paths_written_at: float, window: float = 2.0) -> None:
    """Sleep until every file is older than the SpecCache's racy window."""
    wait = paths_written_at + window + 0.2 - time.time()
    if wait > 0:
        time.sleep(wait)


def record_builds(rec: Reconciler, p: Plan) -> dict[str, float]:
    """Record a completed, linked build of every planned environment, as a worker would.

    ``apply_plan`` queues them all in one transaction, then each is claimed, given an
    empty prefix folder and its link, and finished as a linked success.
    """
    from condaops.reconciler.build.link import swap_link
    from condaops.reconciler.model import ArtifactRecord, BuildOutcome

    layout, recorder = rec.layout, rec.recorder
    started = time.perf_counter()
    t_apply, queued = c.timed(lambda: recorder.apply_plan(p))
    claim, finish = c.Stopwatch(), c.Stopwatch()
    for qb in queued:
        with claim:
            ticket = recorder.claim(qb.build_id, "bench")
        assert ticket is not None, f"build {qb.build_id} was not queued"
        prefix = layout.prefix(qb.ref, qb.spec_hash)
        prefix.mkdir(parents=True)
        swap_link(layout.env_link(qb.ref), prefix)
        arts = tuple(
            ArtifactRecord(kind, f"artifacts/{qb.ref}/{qb.build_id}/{file}", 1000, "0" * 64)
            for kind, file in (
                ("conda-lock", "conda-lock.yml"),
                ("pixi-lock", "pixi.lock"),
                ("environment", "environment.yaml"),
                ("log", "build.log"),
            )
        )
        outcome = BuildOutcome(
            True,
            "BuildSucceeded",
            prefix=layout.relative(prefix),
            linked=True,
            artifacts=arts,
            timings=(("solve", 1.0), ("lock", 0.2), ("install", 3.0)),
        )
        with finish:
            recorder.finish(qb.build_id, outcome)
    n = max(len(queued), 1)
    return {
        "builds": len(queued),
        "apply_plan": t_apply,
        "claim_each": claim.seconds / n,
        "finish_each": finish.seconds / n,
        "total": time.perf_counter() - started,
    }


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


# --- main -------------------------------------------------------------------------------


@dataclass
class Results:
    count: int = 0
    namespaces: int = 0
    inputs: dict[str, int] = field(default_factory=dict)
    cold: Timing | None = None
    warm_empty: Timing | None = None
    warm_recorded: Timing | None = None
    up_to_date: int = 0
    fill: dict[str, float] = field(default_factory=dict)
    passes: list[float] = field(default_factory=list)
    noop_apply: float = 0.0
    repair: float = 0.0
    cli: list[tuple[float, int]] = field(default_factory=list)


def run(tmp: Path, envs: int, namespaces: int, cli: bool) -> Results:
    from condaops.reconciler.plan import BUILD, NOOP, UP_TO_DATE
    from condaops.reconciler.service import Reconciler
    from condaops.reconciler.state.db import make_engine, migrate

    r = Results(namespaces=namespaces)
    t_write, r.count = c.timed(lambda: write_tree(tmp / "envs", envs, namespaces, r.inputs))
    written_at = time.time()
    print(
        f"inputs: {', '.join(f'{n} {k}' for k, n in r.inputs.items())} in {namespaces} namespaces "
        f"(written in {c.fmt_s(t_write)})",
        flush=True,
    )
    settings = c.load(c.write_config(tmp))
    engine = make_engine(settings.database_url)
    migrate(engine)
    r.cold = measure_cold(lambda: Reconciler(settings, engine, clock=utcnow))
    rec = Reconciler(settings, engine, clock=utcnow)
    settle(written_at)
    rec.plan()  # fills this reader's SpecCache now that the files are settled
    r.warm_empty, planned = measure(rec)
    builds = len(planned.by_kind(BUILD))
    assert builds == r.count, f"expected {r.count} builds, planned {builds}"
    del planned
    r.fill = record_builds(rec, rec.plan())
    gc.collect()  # plans and sessions of the fill are garbage, as after any pass
    r.warm_recorded, result = measure(rec)
    r.up_to_date = sum(1 for a in result.actions if a.kind == NOOP and a.reason == UP_TO_DATE)
    if r.up_to_date != r.count or len(result.actions) != r.count:
        print(f"warning: {r.up_to_date} of {len(result.actions)} actions are UpToDate", file=sys.stderr)
    r.passes = [c.timed(rec.reconcile_once)[0] for _ in range(3)]
    r.noop_apply = c.median([c.timed(lambda: rec.recorder.apply_plan(result))[0] for _ in range(3)])
    r.repair = c.median([c.timed(rec.repair_links)[0] for _ in range(3)])
    r.cli = [cli_plan(tmp / "condaops.yaml") for _ in range(2 if cli else 0)]
    engine.dispose()
    return r


def report(r: Results) -> None:
    assert r.cold and r.warm_empty and r.warm_recorded
    cases = (
        (f"cold (fresh reader, empty DB; {COLD_RUNS} runs)", r.cold),
        ("warm, nothing recorded", r.warm_empty),
        (f"warm, {r.count} recorded, all UpToDate", r.warm_recorded),
    )
    rows = [
        (name, *(c.fmt_s(v) for v in (m.total, m.min, m.read, m.load_recorded, m.observe, m.plan))) for name, m in cases
    ]
    print()
    print(
        c.table(
            f"Reconciler.plan() over {r.count} files / {r.namespaces} namespaces "
            f"(median of {REPEATS} unless noted; parts timed separately)",
            ("case", "median", "min", "read", "load_recorded", "observe", "plan()"),
            rows,
        )
    )
    print(f"\nwarm recorded plan: {r.up_to_date}/{r.count} actions are noop UpToDate\n")
    extra = [
        (f"record {r.count} builds: apply_plan (one transaction)", c.fmt_s(r.fill["apply_plan"])),
        ("record: claim, per build", c.fmt_s(r.fill["claim_each"])),
        ("record: finish, per build", c.fmt_s(r.fill["finish_each"])),
        ("record: total, incl. prefix folders and links", c.fmt_s(r.fill["total"])),
        ("reconcile_once, nothing to do (median of 3)", c.fmt_s(c.median(r.passes))),
        (f"  of which Recorder.apply_plan of {r.count} noop actions", c.fmt_s(r.noop_apply)),
        ("  of which repair_links (readlink + resolve per env)", c.fmt_s(r.repair)),
    ]
    if r.cli:
        extra.append(
            (
                "condaops plan, fresh process (median of 2)",
                f"{c.fmt_s(c.median([t for t, _ in r.cli]))} (exit {r.cli[0][1]})",
            )
        )
    print(c.table("Around the plan", ("what", "time"), extra))
    c.print_summary(
        "bench_plan",
        {
            "envs": r.count,
            "namespaces": r.namespaces,
            "inputs": r.inputs,
            "cold_s": round(r.cold.total, 3),
            "warm_empty_s": round(r.warm_empty.total, 3),
            "warm_recorded_s": round(r.warm_recorded.total, 3),
            "warm_recorded_parts_s": {k: round(v, 3) for k, v in r.warm_recorded.parts().items()},
            "all_up_to_date": r.up_to_date == r.count,
            "record_apply_plan_s": round(r.fill["apply_plan"], 3),
            "record_claim_finish_ms": round((r.fill["claim_each"] + r.fill["finish_each"]) * 1000, 2),
            "reconcile_once_noop_s": round(c.median(r.passes), 3),
            "reconcile_once_parts_s": {"apply_plan": round(r.noop_apply, 3), "repair_links": round(r.repair, 3)},
            "cli_plan_s": round(c.median([t for t, _ in r.cli]), 3) if r.cli else None,
        },
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--envs", type=int, default=10_000)
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--no-cli", action="store_true", help="skip the fresh-process `condaops plan`")
    args = ap.parse_args()
    c.print_header("bench_plan")
    with c.workdir("bench-plan") as tmp:
        results = run(tmp, args.envs, args.namespaces, cli=not args.no_cli)
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
