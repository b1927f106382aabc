"""Benchmark: one end-to-end build of the flask environment, condaops against raw py-rattler.

The real ``defaults-2021-py27-flask`` channel (18 packages, Python 2.7 + flask) is
served over HTTP on 127.0.0.1 as ``pkgs/main`` (plus an empty ``pkgs/r``), reached
through ``channels.mirrors`` — the way an air-gapped site reaches ``defaults``.

* **condaops**: a fresh store with ``team/flask.yaml`` (``python=2.7``, ``flask``),
  ``Runtime.run_once()`` in this process: reconcile pass, scheduler, solve, lockfiles,
  install, verify, link, records. The per-step timings come from the state DB
  (``builds.timings``).
* **raw**: ``rattler.solve`` + ``rattler.install`` of the same specs, with the same
  channels, virtual packages, server and mirror middleware.

Rounds alternate which side goes first. **Cold**: empty package and repodata caches
for each build. **Warm**: caches filled beforehand (a copy of the same warm caches for
each build; the prefix and store are new). Before the rounds, one untimed build of
each side loads the libraries (conda-lock's import alone is ~0.8 s), so the rounds show
a long-running service's **steady state**; the **first build in a fresh process** is
measured separately as ``condaops reconcile --once`` against a raw script, both as new
processes (interpreter start and imports included).

Run: ``.venv/bin/python benchmarks/bench_build.py [--rounds 3] [--no-fresh-process]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

import _common as c

if TYPE_CHECKING:
    from rattler.networking import Client

    from condaops.config import Settings

STEPS = ("solve", "pip-lock", "lock", "install", "pip-install", "verify", "link")
Rows = list[dict[str, float]]  # one dict of timings per build


# --- condaops ---------------------------------------------------------------------------


def condaops_build(folder: Path, mirrors: dict[str, list[str]], warm: Path | None) -> dict[str, float]:
    """One build through ``Runtime.run_once()`` in a fresh store; returns wall times and steps."""
    import anyio

    from condaops.reconciler.runtime import Runtime
    from condaops.reconciler.state.queries import get_build, list_environments

    (folder / "envs" / "team").mkdir(parents=True)
    (folder / "envs" / "team" / "flask.yaml").write_text(
        "dependencies:\n" + "".join(f"  - {s}\n" for s in c.FLASK_SPECS)
    )
    settings = c.load(c.write_config(folder, mirrors=mirrors))
    if warm is not None:
        seed_caches(warm, settings.store / ".cache" / "pkgs", settings.store / ".cache" / "repodata")
    t_runtime, rt = c.timed(lambda: Runtime(settings))
    try:
        t_run, summary = c.timed(lambda: anyio.run(rt.run_once))
        envs = list_environments(rt.engine)
        build = get_build(rt.engine, envs[0].current.build_id) if envs and envs[0].current else None
    finally:
        rt.engine.dispose()
    if not summary.ok or build is None:
        sys.exit(f"condaops build failed: {summary}; see {folder}")
    steps = {name: float(build.timings.get(name, 0.0)) for name in STEPS}
    return {"total": t_run, "runtime_init": t_runtime, **steps, "outside_steps": t_run - sum(steps.values())}


# --- raw py-rattler ---------------------------------------------------------------------


def raw_client(mirrors: dict[str, list[str]]) -> Client:
    from rattler.networking import Client, MirrorMiddleware

    return Client(
        [MirrorMiddleware({k.rstrip("/") + "/": [u.rstrip("/") + "/" for u in v] for k, v in mirrors.items()})]
    )


async def raw_solve_install(
    prefix: Path, pkgs: Path, repodata: Path, mirrors: dict[str, list[str]]
) -> dict[str, float]:
    from rattler import Gateway, MatchSpec, VirtualPackage, install, solve

    client = raw_client(mirrors)
    started = time.perf_counter()
    records = await solve(
        sources=[c.DEFAULTS_MAIN, c.DEFAULTS_R],
        specs=list(c.FLASK_SPECS),
        gateway=Gateway(cache_dir=repodata, client=client),
        platforms=["linux-64", "noarch"],
        virtual_packages=VirtualPackage.detect(),
    )
    solved = time.perf_counter()
    await install(
        records,
        target_prefix=prefix,
        cache_dir=pkgs,
        client=client,
        show_progress=False,
        requested_specs=[MatchSpec(s)._match_spec for s in c.FLASK_SPECS],
    )
    done = time.perf_counter()
    return {
        "total": done - started,
        "solve": solved - started,
        "install": done - solved,
        "packages": float(len(records)),
    }


def raw_build(folder: Path, mirrors: dict[str, list[str]], warm: Path | None) -> dict[str, float]:
    pkgs, repodata = folder / "pkgs", folder / "repodata"
    if warm is not None:
        seed_caches(warm, pkgs, repodata)
    return asyncio.run(raw_solve_install(folder / "prefix", pkgs, repodata, mirrors))


# --- caches -----------------------------------------------------------------------------


def make_warm_caches(folder: Path, mirrors: dict[str, list[str]]) -> Path:
    """Package and repodata caches holding everything the flask build needs."""
    asyncio.run(raw_solve_install(folder / "prefix", folder / "pkgs", folder / "repodata", mirrors))
    shutil.rmtree(folder / "prefix")
    return folder


def seed_caches(warm: Path, pkgs: Path, repodata: Path) -> None:
    """Fresh copies of the warm caches (packages hardlinked: they are never written)."""
    shutil.copytree(warm / "pkgs", pkgs, symlinks=True, copy_function=os.link)
    shutil.copytree(warm / "repodata", repodata, symlinks=True)


# --- fresh processes --------------------------------------------------------------------

RAW_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    sys.path.insert(0, {bench!r})
    import bench_build
    mirrors = {mirrors!r}
    folder = Path({folder!r})
    asyncio.run(bench_build.raw_solve_install(folder / "prefix", folder / "pkgs", folder / "repodata", mirrors))
""")


def fresh_process(folder: Path, mirrors: dict[str, list[str]], rounds: int) -> dict[str, float]:
    """``condaops reconcile --once --wait`` and a raw script as new processes, cold caches.

    Medians of ``rounds`` alternated runs; also the condaops steps of those builds.
    """
    exe = Path(sys.executable).with_name("condaops")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "condaops.reconciler.cli"]
    ours: list[float] = []
    raws: list[float] = []
    steps: list[dict[str, float]] = []
    for i in range(rounds):
        for side in ("condaops", "raw") if i % 2 == 0 else ("raw", "condaops"):
            work = folder / f"{side}-{i}"
            work.mkdir(parents=True)
            settle_disk()
            if side == "raw":
                script = RAW_SCRIPT.format(bench=str(Path(__file__).parent), mirrors=mirrors, folder=str(work))
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", script], check=True)
                raws.append(time.perf_counter() - start)
            else:
                (work / "envs" / "team").mkdir(parents=True)
                (work / "envs" / "team" / "flask.yaml").write_text(
                    "dependencies:\n" + "".join(f"  - {s}\n" for s in c.FLASK_SPECS)
                )
                config = c.write_config(work, mirrors=mirrors)
                start = time.perf_counter()
                proc = subprocess.run(
                    [*cmd, "--config", str(config), "--log-level", "warning", "reconcile", "--once", "--wait"],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "CONDAOPS_CONFIG": ""},
                )
                ours.append(time.perf_counter() - start)
                if proc.returncode != 0:
                    sys.exit(f"condaops reconcile failed ({proc.returncode}):\n{proc.stderr}")
                steps.append(recorded_steps(c.load(config)))
            shutil.rmtree(work, ignore_errors=True)
    return {
        "condaops": c.median(ours),
        "raw": c.median(raws),
        **{f"step_{k}": c.median([x[k] for x in steps]) for k in STEPS},
    }


def recorded_steps(settings: Settings) -> dict[str, float]:
    """Step timings of the one build in a store, from the state DB."""
    from condaops.reconciler.state.db import make_engine
    from condaops.reconciler.state.queries import get_build, list_environments

    engine = make_engine(settings.database_url)
    try:
        env = list_environments(engine)[0]
        build = get_build(engine, env.current.build_id) if env.current else None
        assert build is not None, "the fresh-process build left no current build"
        return {name: float(build.timings.get(name, 0.0)) for name in STEPS}
    finally:
        engine.dispose()


# --- main -------------------------------------------------------------------------------


def settle_disk() -> None:
    """Flush what earlier builds wrote, so no build pays for the previous one's writeback."""
    os.sync()
    time.sleep(0.5)


def run_rounds(tmp: Path, mirrors: dict[str, list[str]], rounds: int, warm: Path | None) -> tuple[Rows, Rows]:
    ours, raws = [], []
    label = "warm" if warm else "cold"
    for i in range(rounds):
        order = ("condaops", "raw") if i % 2 == 0 else ("raw", "condaops")
        for side in order:
            folder = tmp / f"{label}-{i}-{side}"
            settle_disk()
            if side == "condaops":
                ours.append(condaops_build(folder, mirrors, warm))
            else:
                folder.mkdir()
                raws.append(raw_build(folder, mirrors, warm))
            shutil.rmtree(folder, ignore_errors=True)  # keep the temp folder small
        print(
            f"{label} round {i + 1}: condaops {c.fmt_s(ours[-1]['total'])}, raw {c.fmt_s(raws[-1]['total'])}",
            file=sys.stderr,
        )
    return ours, raws


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=4, help="rounds per cache state (even: each side first as often)")
    ap.add_argument("--no-fresh-process", action="store_true")
    args = ap.parse_args()
    c.require_realdata()
    c.print_header("bench_build")
    with c.workdir("bench-build") as tmp, c.serve_defaults(tmp) as mirrors:
        warm = make_warm_caches(tmp / "warm-caches", mirrors)
        condaops_build(tmp / "warmup-condaops", mirrors, None)  # imports, not timed
        fresh = fresh_process(tmp / "fresh", mirrors, 2) if not args.no_fresh_process else None
        cold = run_rounds(tmp, mirrors, args.rounds, None)
        hot = run_rounds(tmp, mirrors, args.rounds, warm)
    report(args.rounds, cold, hot, fresh)
    return 0


def report(rounds: int, cold: tuple[Rows, Rows], hot: tuple[Rows, Rows], fresh: dict[str, float] | None) -> None:
    def med(rows: list[dict[str, float]], key: str) -> float:
        return c.median([r[key] for r in rows])

    rows, summary = [], {}
    for label, (ours, raws) in (("cold caches", cold), ("warm caches", hot)):
        o, r = med(ours, "total"), med(raws, "total")
        rows.append(
            (
                label,
                c.fmt_s(o),
                c.fmt_s(r),
                f"{o / r:.2f}",
                c.fmt_s(min(x["total"] for x in ours)),
                c.fmt_s(min(x["total"] for x in raws)),
            )
        )
        summary[label.split()[0]] = {"condaops_s": round(o, 3), "raw_s": round(r, 3), "ratio": round(o / r, 3)}
    print()
    print(
        c.table(
            f"Flask build (18 packages), steady state: median of {rounds} rounds, order alternated",
            ("caches", "condaops", "raw rattler", "ratio", "condaops min", "raw min"),
            rows,
        )
    )
    step_rows = []
    for step in (*STEPS, "outside_steps"):
        cold_v, warm_v = med(cold[0], step), med(hot[0], step)
        if cold_v or warm_v:
            step_rows.append(
                (
                    step if step != "outside_steps" else "outside the steps (pass, scheduling, DB)",
                    c.fmt_s(cold_v),
                    c.fmt_s(warm_v),
                )
            )
    step_rows.append(("raw: solve", c.fmt_s(med(cold[1], "solve")), c.fmt_s(med(hot[1], "solve"))))
    step_rows.append(("raw: install", c.fmt_s(med(cold[1], "install")), c.fmt_s(med(hot[1], "install"))))
    step_rows.append(
        (
            "condaops: Runtime() (engine + migrations), not in the totals",
            c.fmt_s(med(cold[0], "runtime_init")),
            c.fmt_s(med(hot[0], "runtime_init")),
        )
    )
    print()
    print(c.table("condaops steps (builds.timings in the state DB), medians", ("step", "cold", "warm"), step_rows))
    if fresh:
        print()
        print(
            c.table(
                "First build in a fresh process: median of 2 (cold caches; interpreter start, imports, "
                "migrations and exit included)",
                ("condaops reconcile --once", "raw script", "ratio", "its lock step", "its install step"),
                [
                    (
                        c.fmt_s(fresh["condaops"]),
                        c.fmt_s(fresh["raw"]),
                        f"{fresh['condaops'] / fresh['raw']:.2f}",
                        c.fmt_s(fresh["step_lock"]),
                        c.fmt_s(fresh["step_install"]),
                    )
                ],
            )
        )
        summary["fresh_process"] = {
            "condaops_s": round(fresh["condaops"], 3),
            "raw_s": round(fresh["raw"], 3),
            "ratio": round(fresh["condaops"] / fresh["raw"], 3),
            "lock_step_s": round(fresh["step_lock"], 3),
        }
    summary["steps_cold_s"] = {s: round(med(cold[0], s), 3) for s in (*STEPS, "outside_steps")}
    summary["steps_warm_s"] = {s: round(med(hot[0], s), 3) for s in (*STEPS, "outside_steps")}
    c.print_summary("bench_build", {"rounds": rounds, **summary})


if __name__ == "__main__":
    sys.exit(main())
