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
from datetime import datetime, timezone
from pathlib import Path

import _common as c

PACKAGES = (
    "numpy", "pandas", "scipy", "matplotlib-base", "scikit-learn", "requests", "flask",
    "pyyaml", "sqlalchemy", "jupyterlab", "xarray", "dask", "pytest", "click", "rich",
    "pydantic", "boto3", "lxml", "pillow", "h5py", "netcdf4", "statsmodels", "seaborn",
)  # fmt: skip
VERSIONS = ("", ">=1.20", "=2.1", ">=2,<3", " 1.5.*", ">=0.9")
PIP = ("black==24.1.1", "ruff>=0.4", "httpx", "structlog>=24", "types-requests",
       "mkdocs-material==9.5.*", "rich-click[dev]>=1.7")
SELECTED = (("pywin32", "win"), ("libgcc-ng", "linux64"), ("appnope", "osx"),
            ("cuda-nvcc", "linux"), ("tbb", "not win"))
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


def breakdown(rec) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The parts of ``Reconciler.plan()`` timed one by one (same calls, same order)."""
    from condaops.reconciler.plan import plan
    from condaops.reconciler.service import policy_of
    from condaops.reconciler.state.queries import load_recorded

    t_read, snaps = c.timed(rec.snapshots)
    t_load, recorded = c.timed(lambda: load_recorded(rec.engine))
    t_observe, _ = c.timed(lambda: observe_prefixes(rec, recorded))
    t_plan, _ = c.timed(lambda: plan(snaps, recorded, policy=policy_of(rec.settings), now=rec.clock()))
    return {"read": t_read, "load_recorded": t_load, "observe": t_observe, "plan": t_plan}


def observe_prefixes(rec, recorded) -> int:  # type: ignore[no-untyped-def]
    """What ``Reconciler.observed()`` adds to ``load_recorded``: the linked prefixes, looked
    up in the state DB, checked on disk. (The same calls, so that part can be timed alone.)"""
    from condaops.reconciler.state.queries import current_prefixes

    missing = 0
    for ref, prefix in current_prefixes(rec.engine).items():
        if ref in recorded and not rec.layout.absolute(prefix).is_dir():
            missing += 1
    return missing


def measure(rec, repeats: int = REPEATS) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Median end-to-end ``Reconciler.plan()`` and the median of each part."""
    totals, parts = [], []
    result = None
    for _ in range(repeats):
        t, result = c.timed(rec.plan)
        totals.append(t)
        parts.append(breakdown(rec))
    keys = parts[0].keys()
    return {"total": c.median(totals), "min": min(totals), "plan_result": result,
            **{k: c.median([p[k] for p in parts]) for k in keys}}


def settle(paths_written_at: float, window: float = 2.0) -> None:
    """Sleep until every file is older than the SpecCache's racy window."""
    wait = paths_written_at + window + 0.2 - time.time()
    if wait > 0:
        time.sleep(wait)


def record_builds(rec, p) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Record a completed, linked build of every planned environment, as a worker would.

    ``apply_plan`` queues them all in one transaction, then each is claimed, given an
    empty prefix folder and its link, and finished as a linked success.
    """
    from condaops.reconciler.build.link import swap_link
    from condaops.reconciler.model import ArtifactRecord, BuildOutcome

    layout, recorder = rec.layout, rec.recorder
    t_apply, queued = c.timed(lambda: recorder.apply_plan(p))
    claim, finish = c.Stopwatch(), c.Stopwatch()
    for qb in queued:
        with claim:
            ticket = recorder.claim(qb.build_id, "bench")
        assert ticket is not None, f"build {qb.build_id} was not queued"
        prefix = layout.prefix(qb.ref, qb.spec_hash)
        prefix.mkdir(parents=True)
        swap_link(layout.env_link(qb.ref), prefix)
        arts = tuple(ArtifactRecord(kind, f"artifacts/{qb.ref}/{qb.build_id}/{file}", 1000, "0" * 64)
                     for kind, file in (("conda-lock", "conda-lock.yml"), ("pixi-lock", "pixi.lock"),
                                        ("environment", "environment.yaml"), ("log", "build.log")))
        outcome = BuildOutcome(True, "BuildSucceeded", prefix=layout.relative(prefix), linked=True,
                               artifacts=arts, timings=(("solve", 1.0), ("lock", 0.2), ("install", 3.0)))
        with finish:
            recorder.finish(qb.build_id, outcome)
    n = max(len(queued), 1)
    return {"builds": len(queued), "apply_plan": t_apply, "claim_each": claim.seconds / n,
            "finish_each": finish.seconds / n}


def cli_plan(config: Path) -> tuple[float, int]:
    """Wall time and exit status of ``condaops plan`` in a fresh process."""
    exe = Path(sys.executable).with_name("condaops")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "condaops.reconciler.cli"]
    start = time.perf_counter()
    proc = subprocess.run([*cmd, "--config", str(config), "--log-level", "warning", "plan"],
                          capture_output=True, text=True, env={**os.environ, "CONDAOPS_CONFIG": ""})
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        print(proc.stderr, file=sys.stderr)
    return elapsed, proc.returncode


# --- main -------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--envs", type=int, default=10_000)
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--no-cli", action="store_true", help="skip the fresh-process `condaops plan`")
    args = ap.parse_args()

    from condaops.reconciler.plan import BUILD, NOOP, UP_TO_DATE
    from condaops.reconciler.service import Reconciler
    from condaops.reconciler.state.db import make_engine, migrate

    c.print_header("bench_plan")
    with c.workdir("bench-plan") as tmp:
        inputs: dict[str, int] = {}
        t_write, count = c.timed(lambda: write_tree(tmp / "envs", args.envs, args.namespaces, inputs))
        written_at = time.time()
        settings = c.load(c.write_config(tmp))
        engine = make_engine(settings.database_url)
        migrate(engine)

        def fresh() -> Reconciler:
            return Reconciler(settings, engine, clock=utcnow)

        print(f"inputs: {', '.join(f'{n} {k}' for k, n in inputs.items())} in {args.namespaces} namespaces "
              f"(written in {c.fmt_s(t_write)})", flush=True)
        cold = measure_cold(fresh, COLD_RUNS)
        rec = fresh()
        settle(written_at)
        rec.plan()  # fills this reader's SpecCache now that the files are settled
        warm_empty = measure(rec)
        builds = len(warm_empty.pop("plan_result").by_kind(BUILD))  # type: ignore[union-attr]
        assert builds == count, f"expected {count} builds, planned {builds}"
        t_fill, fill = c.timed(lambda: record_builds(rec, rec.plan()))
        gc.collect()  # plans and sessions of the fill are garbage, as after any pass
        warm_rec = measure(rec)
        result = warm_rec["plan_result"]
        reasons = {(a.kind, a.reason) for a in result.actions}  # type: ignore[union-attr]
        up_to_date = sum(1 for a in result.actions if a.kind == NOOP and a.reason == UP_TO_DATE)  # type: ignore[union-attr]
        if reasons != {(NOOP, UP_TO_DATE)} or up_to_date != count:
            print(f"warning: expected {count} UpToDate, got {sorted(reasons)}", file=sys.stderr)
        passes = [c.timed(rec.reconcile_once)[0] for _ in range(3)]
        t_noop_apply = c.median([c.timed(lambda: rec.recorder.apply_plan(result))[0] for _ in range(3)])
        t_repair = c.median([c.timed(rec.repair_links)[0] for _ in range(3)])
        cli = [cli_plan(tmp / "condaops.yaml") for _ in range(0 if args.no_cli else 2)]

    rows = [(name, c.fmt_s(m["total"]), c.fmt_s(m["min"]), c.fmt_s(m["read"]),  # type: ignore[arg-type]
             c.fmt_s(m["load_recorded"]), c.fmt_s(m["observe"]), c.fmt_s(m["plan"]))  # type: ignore[arg-type]
            for name, m in ((f"cold (fresh reader, empty DB; {COLD_RUNS} runs)", cold),
                            ("warm, nothing recorded", warm_empty),
                            (f"warm, {count} recorded, all UpToDate", warm_rec))]
    print()
    print(c.table(f"Reconciler.plan() over {count} files / {args.namespaces} namespaces "
                  f"(median of {REPEATS} unless noted; parts timed separately)",
                  ("case", "median", "min", "read", "load_recorded", "observe", "plan()"), rows))
    print(f"\nwarm recorded plan: {up_to_date}/{count} actions are noop UpToDate")
    print()
    extra = [
        (f"record {count} builds: apply_plan (one transaction)", c.fmt_s(fill["apply_plan"])),
        ("record: claim, per build", c.fmt_s(fill["claim_each"])),
        ("record: finish, per build", c.fmt_s(fill["finish_each"])),
        ("record: total, incl. prefix folders and links", c.fmt_s(t_fill)),
        ("reconcile_once, nothing to do (median of 3)", c.fmt_s(c.median(passes))),
        (f"  of which Recorder.apply_plan of {count} noop actions", c.fmt_s(t_noop_apply)),
        ("  of which repair_links (readlink + resolve per env)", c.fmt_s(t_repair)),
    ]
    extra += [("condaops plan, fresh process (median of 2)",
               c.fmt_s(c.median([t for t, _ in cli])) + f" (exit {cli[0][1]})")] if cli else []
    print(c.table("Around the plan", ("what", "time"), extra))
    c.print_summary("bench_plan", {
        "envs": count, "namespaces": args.namespaces, "inputs": inputs,
        "cold_s": round(cold["total"], 3), "warm_empty_s": round(warm_empty["total"], 3),  # type: ignore[arg-type]
        "warm_recorded_s": round(warm_rec["total"], 3),  # type: ignore[arg-type]
        "warm_recorded_parts_s": {k: round(warm_rec[k], 3) for k in  # type: ignore[arg-type]
                                  ("read", "load_recorded", "observe", "plan")},
        "all_up_to_date": up_to_date == count,
        "record_apply_plan_s": round(fill["apply_plan"], 3),
        "record_claim_finish_ms": round((fill["claim_each"] + fill["finish_each"]) * 1000, 2),
        "reconcile_once_noop_s": round(c.median(passes), 3),
        "reconcile_once_parts_s": {"apply_plan": round(t_noop_apply, 3), "repair_links": round(t_repair, 3)},
        "cli_plan_s": round(c.median([t for t, _ in cli]), 3) if cli else None,
    })
    return 0


def measure_cold(fresh, runs: int = 2) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Each run with a new reader, so every file is read and parsed again; parts once."""
    totals = [c.timed(fresh().plan)[0] for _ in range(runs)]
    return {"total": c.median(totals), "min": min(totals), **breakdown(fresh())}

if __name__ == "__main__":
    sys.exit(main())
