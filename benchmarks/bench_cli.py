"""Benchmark: the ``condaops`` command as a fresh process, against ``python -c pass``.

Issue 14, target 5 (an instant CLI): ``condaops --help`` < 150 ms; ``status``,
``history`` and ``plan`` on 1,000 recorded environments < 250 ms; ``plan`` over 10,000
environment files < 1.5 s. The targets were set when ``python -c pass`` took 17 ms on
this machine: the ratio to it, measured in the same run, is what carries over between
loads (``target ratio`` column).

Inputs (``bench_plan.write_tree``): a tree of 1,000 environment files in 10 namespaces
whose builds are recorded as completed and linked (a pass, then ``bench_plan.mark_built``:
the state DB a running service would have), and a tree of 10,000 files in 100 namespaces
with an empty state DB (``--recorded-10k`` records those too; slow). Every command is the
installed console script started as a fresh process (no shell), round-robin with the
anchor ``python -c pass`` (same interpreter), warm-up rounds first. Before timing, each command is run once and its
output checked (exit status; 1,000 environments listed; ``UpToDate`` plans), so a command
that stopped early cannot pass for a fast one.

Each row prints the median, the ratio to the anchor, the budget in ms and the budget as
that ratio; a command whose exit status differs from the checked one stops the run.

Bytecode: condaops' modules are compiled first, as ``pip install`` does
(``--no-compile`` leaves them as they are: with PYTHONDONTWRITEBYTECODE set and no
``__pycache__``, every command compiles them again); the table's title says which.

Run: ``.venv/bin/python benchmarks/bench_cli.py [--runs 20] [--recorded-10k] [--no-compile]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import _common as c
import bench_plan

ANCHOR_MS = 17.0  # python -c pass when the targets were set (issue 14)
TARGETS_MS = {"help": 150.0, "status 1k": 250.0, "history 1k": 250.0, "plan 1k": 250.0, "plan 10k": 1500.0}


def condaops() -> Path:
    exe = Path(sys.executable).with_name("condaops")
    if not exe.exists():
        sys.exit(f"bench_cli: {exe} not found: install the project (pip install -e .) in this interpreter's venv")
    return exe


def prepare(tmp: Path, envs: int, namespaces: int, *, record: bool) -> Path:
    """A project folder with ``envs`` files; with ``record``, their builds in the state DB."""
    from condaops.reconciler.runtime import prepare_database
    from condaops.reconciler.service import Reconciler
    from condaops.reconciler.state.db import make_engine

    tmp.mkdir(parents=True)
    t_write, count = c.timed(lambda: bench_plan.write_tree(tmp / "envs", envs, namespaces))
    config = c.write_config(tmp)
    settings = c.load(config)
    engine = make_engine(settings.database_url)
    prepare_database(engine)
    if record:
        rec = Reconciler(settings, engine, clock=lambda: datetime.now(timezone.utc))

        def fill() -> int:
            first = rec.reconcile_once()  # queues every build, as serve's first pass does
            bench_plan.mark_built(rec, first)  # completed and linked, as workers leave them
            rec.reconcile_once()
            return len(first.queued)

        t_record, builds = c.timed(fill)
        rec.close()
        print(
            f"{tmp.name}: {count} files written in {c.fmt_s(t_write)}; {builds} builds recorded in {c.fmt_s(t_record)}",
            flush=True,
        )
    else:
        print(f"{tmp.name}: {count} files written in {c.fmt_s(t_write)}; nothing recorded", flush=True)
    engine.dispose()
    return config


def check(args: list[str], *, expect: set[int], contains: str = "", lines: int | None = None) -> None:
    """Run once and stop the benchmark unless it did what it is timed for."""
    proc = subprocess.run(args, capture_output=True, text=True, env=_env())
    out = proc.stdout
    problems = []
    if proc.returncode not in expect:
        problems.append(f"exit {proc.returncode}, expected {sorted(expect)}")
    if contains and contains not in out:
        problems.append(f"output lacks {contains!r}")
    if lines is not None and len(out.splitlines()) != lines:
        problems.append(f"{len(out.splitlines())} lines, expected {lines}")
    if problems:
        sys.exit(f"bench_cli: {' '.join(args[1:])}: {'; '.join(problems)}\n{proc.stderr[-2000:]}")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CONDAOPS_")}


def timed_runs(
    commands: dict[str, list[str]], expect: dict[str, set[int]], runs: int, warmup: int = 3
) -> dict[str, dict[str, float]]:
    """name -> {median, min, mean, stddev} in ms of ``runs`` fresh processes each, started
    round-robin (every round runs every command once, so a change of load falls on all of
    them alike) after ``warmup`` rounds. Wall time from spawn to exit, output discarded;
    a run whose exit status is not the one checked before stops the benchmark."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    env = _env()
    for round_no in range(warmup + runs):
        for name, cmd in commands.items():
            started = time.perf_counter()
            done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            took = (time.perf_counter() - started) * 1000
            if done.returncode not in expect[name]:
                sys.exit(
                    f"bench_cli: {name}: run {round_no + 1} exited {done.returncode}, expected {sorted(expect[name])}"
                )
            if round_no >= warmup:
                times[name].append(took)
    return {
        name: {
            "median": statistics.median(t),
            "min": min(t),
            "mean": statistics.fmean(t),
            "stddev": statistics.stdev(t) if len(t) > 1 else 0.0,
        }
        for name, t in times.items()
    }


def bytecode(compile_first: bool) -> str:
    """Compile condaops' modules as ``pip install`` does (an editable install compiles
    them at first import, unless PYTHONDONTWRITEBYTECODE is set, as it is on these
    machines: then every command would compile ~100 modules again, 40–90 ms). Returns
    what the table says about it."""
    import compileall

    folders = [c.REPO / part for part in ("reconciler", "config", "web", "registry")]
    if not compile_first:
        cached = sum(1 for f in folders for _ in f.rglob("__pycache__/*.pyc"))
        return f"bytecode not compiled first ({cached} cached .pyc files found)"
    ok = all(compileall.compile_dir(str(f), quiet=1) for f in folders)
    if not ok:
        sys.exit("bench_cli: compiling condaops' modules failed")
    return "bytecode compiled first, as pip install does"


def run(tmp: Path, runs: int, recorded_10k: bool, compile_first: bool = True) -> dict[str, object]:
    exe = str(condaops())
    compiled = bytecode(compile_first)
    print(compiled, flush=True)
    c1k = prepare(tmp / "1k", 1_000, 10, record=True)
    if not list((tmp / "1k" / "store" / ".cache" / "specs").glob("specs-*.json")):
        sys.exit("bench_cli: the reconcile pass kept no parse results (<store>/.cache/specs): plan 1k would parse")
    c10k = prepare(tmp / "10k", 10_000, 100, record=recorded_10k)
    probe = "team-000/env-000"
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "help": [exe, "--help"],
        "status 1k": [exe, "--config", str(c1k), "status"],
        "history 1k": [exe, "--config", str(c1k), "history", probe],
        "plan 1k": [exe, "--config", str(c1k), "plan"],
        "plan 10k": [exe, "--config", str(c10k), "plan"],
    }
    expect = {"python -c pass": {0}, "help": {0}, "status 1k": {0}, "history 1k": {0}, "plan 1k": {0}}
    expect["plan 10k"] = {0} if recorded_10k else {1}
    check(commands["help"], expect=expect["help"], contains="history")
    check(commands["status 1k"], expect=expect["status 1k"], lines=1_000)
    check(commands["history 1k"], expect=expect["history 1k"], contains="completed", lines=2)
    check(commands["plan 1k"], expect=expect["plan 1k"], contains="0 to change, 1000 unchanged")
    done = "0 to change, 10000 unchanged" if recorded_10k else "10000 to change, 0 unchanged"
    check(commands["plan 10k"], expect=expect["plan 10k"], contains=done)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    figures = timed_runs(commands, expect, runs)
    took = time.perf_counter() - started
    load_after = os.getloadavg()[0]
    missing = [name for name in commands if name not in figures]
    if missing:
        sys.exit(f"bench_cli: no figure for {missing}")
    anchor = figures["python -c pass"]["median"]
    rows = []
    for name, f in figures.items():
        ratio = f["median"] / anchor
        target = TARGETS_MS.get(name)
        target_ratio = target / ANCHOR_MS if target else None
        rows.append(
            (
                name,
                f"{f['median']:.0f} ms",
                f"{f['min']:.0f} ms",
                f"± {f['stddev']:.0f}",
                f"{ratio:.1f}x",
                "-" if target is None else f"{target:.0f} ms",
                "-" if target is None else ("met" if f["median"] <= target else "NOT met"),
                "-" if target_ratio is None else f"≤ {target_ratio:.1f}x",
                "-" if target_ratio is None else ("met" if ratio <= target_ratio else "NOT met"),
            )
        )
    print()
    print(
        c.table(
            f"fresh processes, {runs} runs each, round-robin after 3 warm-up rounds "
            f"(load {load_before:.2f} → {load_after:.2f}, {took:.0f} s; {compiled})",
            ("command", "median", "min", "stddev", "÷ python -c pass", "budget", "", "budget ÷ 17 ms", ""),
            rows,
        )
    )
    return {
        "runs": runs,
        "load_before": round(load_before, 2),
        "load_after": round(load_after, 2),
        "median_ms": {k: round(v["median"], 1) for k, v in figures.items()},
        "ratio": {k: round(v["median"] / anchor, 2) for k, v in figures.items()},
        "plan_10k_recorded": recorded_10k,
        "bytecode_compiled_first": compile_first,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--recorded-10k", action="store_true", help="also record the 10,000 builds (minutes)")
    ap.add_argument("--no-compile", action="store_true", help="time without compiling condaops' modules first")
    args = ap.parse_args()
    c.print_header("bench_cli")
    with c.workdir("bench-cli") as tmp:
        figures = run(tmp / "work", args.runs, args.recorded_10k, compile_first=not args.no_compile)
    c.print_summary("bench_cli", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
