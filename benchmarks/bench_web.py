"""Benchmark: the status site and API under load, 1,000 environments × 10 builds.

The state DB is filled through the recorder (``Recorder.apply_plan``, ``claim``,
``finish``: what real builds record, without installing anything) plus the package index
(``record_build_packages``, 30 packages per build). Then a server process runs the web app
alone (uvicorn with uvloop and httptools, one process, as ``condaops serve`` runs it) on
127.0.0.1, and ``wrk`` (Debian package ``wrk``: a C load generator, so the client's own
CPU does not eat into the server's share of the 2 CPUs) keeps 20 connections busy, each
sending its next request as soon as the previous one is answered, through these phases:

* ``/`` — the overview (all namespaces, counts by state, sources, recent builds);
* environment pages, **mixed**: 2,000 random picks among the 1,000 environments on a
  fresh server (about 57 % are repeats): the phase earlier runs reported;
* environment pages, **steady**: 2,000 more random picks on the same server (most pages
  were seen: what a running site serves while nothing changes);
* ``/api/v1/environments`` — the first page (50) of the environment list;
* environment pages, **first views**: every environment once, in random order, on another
  fresh server: each page is rendered from the state DB (the cost after a change).

An environment page has the spec, 30 locked packages, artifacts and 10 builds of history.
Each phase runs against two setups, alternating on the same data: ``condaops serve`` as
shipped (on SQLite the small read handlers run on the event loop, rendered pages are kept
while the environment's stamp is unchanged: ``web.placement``, ``web.page_cache``) and the
reference, the same code with every read handler in the thread pool and no page cache (as
the site served pages before those two changes).

Reported per phase: p50, p95 and p99 latency (target p95 < 50 ms), requests per second,
the server's CPU time per request (user + system over the phase: less moved by other
processes than latencies, which with 20 closed-loop clients are about 20 / throughput),
wrk's CPU per request, and the server's resident memory (RSS) at the end and its peak.

Run: ``.venv/bin/python benchmarks/bench_web.py [--envs 1000] [--builds 10] [--requests 2000]
[--store DIR]`` (``--store``: fill DIR once and reuse it in later runs).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import _common as c

CONCURRENCY = 20
NAMESPACES = 20
PACKAGES_PER_BUILD = 30
TARGET_P95 = 0.050


# --- filling the state DB ---------------------------------------------------------------


class StepClock:
    """A clock that advances a little on every call (build times that look real)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=7)
        return self.now


def fill(store: Path, envs: int, builds: int) -> dict[str, float]:
    """Record ``envs`` environments with ``builds`` completed builds each; returns timings."""
    from sqlalchemy.orm import Session

    from condaops.config.settings import Settings
    from condaops.reconciler.model import DesiredEnv, EnvRef
    from condaops.reconciler.plan import BUILD, Action, Plan
    from condaops.reconciler.spec import Dependency, Spec
    from condaops.reconciler.state.db import make_engine, migrate
    from condaops.reconciler.state.packages import LockedPackage, record_build_packages
    from condaops.reconciler.state.recorder import Recorder

    settings = Settings(store=store)
    engine = make_engine(settings.database_url)
    migrate(engine)
    recorder = Recorder(engine, StepClock())
    refs = [EnvRef(f"ns{i % NAMESPACES:02d}", f"env{i:04d}") for i in range(envs)]
    timings = {"plan": 0.0, "builds": 0.0, "index": 0.0}
    for round_ in range(builds):
        started = time.perf_counter()
        actions = []
        for ref in refs:
            spec = Spec(
                channels=("conda-forge",),
                dependencies=(
                    Dependency(f"python=3.{round_ % 4 + 9}"),
                    Dependency(f"numpy >=1.{round_}"),
                    Dependency("openssl"),
                ),
            )
            desired = DesiredEnv(ref, spec, "bench", f"{ref.namespace}/{ref.name}.yaml", f"dir:{round_:064x}")
            actions.append(Action(BUILD, ref, "SpecChanged", spec_hash=spec.spec_hash, desired=desired))
        queued = recorder.apply_plan(Plan(actions=tuple(actions)))
        timings["plan"] += time.perf_counter() - started
        started = time.perf_counter()
        for q in queued:
            recorder.claim(q.build_id, "bench")
            recorder.finish(q.build_id, _outcome(q.ref, q.build_id, q.spec_hash))
        timings["builds"] += time.perf_counter() - started
        started = time.perf_counter()
        with Session(engine) as s, s.begin():
            for q in queued:
                record_build_packages(s, q.build_id, _packages(round_, q.build_id, LockedPackage))
        timings["index"] += time.perf_counter() - started
    engine.dispose()
    return timings


def _outcome(ref, build_id: int, spec_hash: str):  # type: ignore[no-untyped-def]  # a benchmark helper taking test-support objects
    from condaops.reconciler.model import ArtifactRecord, BuildOutcome

    base = f"artifacts/{ref.namespace}/{ref.name}/{build_id}"
    files = (
        ("conda-lock", "conda-lock.yml"),
        ("pixi-lock", "pixi.lock"),
        ("environment", "environment.yaml"),
        ("explicit-linux-64", "conda-linux-64.lock"),
        ("log", "build.log"),
    )
    artifacts = tuple(
        ArtifactRecord(kind, f"{base}/{name}", 1000 + build_id, f"{build_id:064x}") for kind, name in files
    )
    timings = (("solve", 1.5), ("lock", 0.4), ("install", 6.0), ("link", 0.01))
    return BuildOutcome(
        True,
        "BuildSucceeded",
        prefix=f"{ref.namespace}/{spec_hash}-{ref.name}",
        artifacts=artifacts,
        timings=timings,
        linked=True,
    )


def _packages(round_: int, build_id: int, cls):  # type: ignore[no-untyped-def]  # a benchmark helper taking test-support objects
    names = [f"lib{i:02d}" for i in range(PACKAGES_PER_BUILD - 3)] + ["python", "numpy", "openssl"]
    return [
        cls(
            platform="linux-64",
            name=n,
            version=f"{1 + i % 3}.{round_}.{i}",
            build=f"h{build_id:x}_0",
            build_number=0,
            channel="https://conda.anaconda.org/conda-forge",
            subdir="linux-64",
            size=100_000 + i,
            url=f"https://conda.anaconda.org/conda-forge/linux-64/{n}-{i}.conda",
            sha256=f"{i:064x}",
        )
        for i, n in enumerate(names)
    ]


# --- the server process -------------------------------------------------------------------

SHIPPED = "condaops serve"
REFERENCE = "threads, no page cache"
SETUPS = (SHIPPED, REFERENCE)


def serve(store: Path, port: int, setup: str) -> None:
    """The server side: the web app alone, as ``condaops serve`` runs it (uvicorn, uvloop,
    httptools); the reference setup puts every read handler in the thread pool and keeps
    no rendered pages, as the site did before."""
    import uvicorn

    from condaops.config.settings import Settings, WebSettings
    from condaops.reconciler.state.db import make_engine
    from condaops.web import app as web_app

    settings = Settings(store=store)
    if setup == REFERENCE:
        settings = Settings(store=store, web=WebSettings(page_cache=0))
        web_app.reads_on_loop = lambda engine: False  # type: ignore[assignment]  # the reference setup swaps the placement rule
    app = web_app.create_app(settings, make_engine(settings.database_url))
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, loop="uvloop", http="httptools"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


class Server:
    """One server process on a free loopback port, stopped on exit."""

    def __init__(self, store: Path, setup: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, __file__, "--serve", str(store), "--port", str(self.port), "--setup", setup]
        self.proc = subprocess.Popen(command)

    def __enter__(self) -> Server:
        wait_ready(self.base, self.proc)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


# --- the clients --------------------------------------------------------------------------

LUA = Path(__file__).with_name("bench_web.lua")
WRK_THREADS = 2


def wrk_load(base: str, paths: list[str], work: Path) -> dict[str, float]:
    """Request ``paths`` (each once) over CONCURRENCY connections with wrk; its figures.
    When a connection finds its thread's share used up while answers are still coming, it
    repeats the thread's first path: at most CONCURRENCY / WRK_THREADS - 1 requests per
    thread are such repeats instead of listed paths."""
    listing = work / "paths.txt"
    listing.write_text("\n".join(paths) + "\n")
    markers = [listing.with_name(f"{listing.name}.done{k}") for k in range(1, WRK_THREADS + 1)]
    for marker in markers:
        marker.unlink(missing_ok=True)
    command = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{CONCURRENCY}",
        "-d600s",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
        base,
        "--",
        str(listing),
        str(WRK_THREADS),
    ]
    wrk = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    while wrk.poll() is None and not all(m.exists() for m in markers):
        time.sleep(0.005)
    wrk.send_signal(signal.SIGINT)  # every thread is done: end wrk's wait, it prints its figures
    out, _ = wrk.communicate(timeout=60)
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"wrk printed no result:\n{out}")
    figures = {k: float(v) for k, v in (item.split("=") for item in line.split()[1:])}
    if figures["errors"]:
        sys.exit(f"{int(figures['errors'])} requests failed:\n{out}")
    return figures


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    sys.exit("server did not start")


def measure(server: Server, paths: list[str], work: Path) -> dict[str, float]:
    """One phase: wrk's latencies, throughput, and the CPU both sides spent per request."""
    cpu = cpu_seconds(server.proc.pid)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = wrk_load(server.base, paths, work)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    n = result["requests"]
    client = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / n * 1000
    return {
        "p50_ms": result["p50_us"] / 1000,
        "p95_ms": result["p95_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "rps": n / result["seconds"],
        "server_cpu_ms": (cpu_seconds(server.proc.pid) - cpu) / n * 1000,
        "client_cpu_ms": client,
        "requests": n,
    }


def first_overview(base: str) -> dict[str, float]:
    """The first ``/`` once the server answers its health check: what an operator waits
    for after a restart (the environment list is read from the state DB then)."""
    import httpx

    started = time.perf_counter()
    response = httpx.get(base + "/", timeout=60)
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        sys.exit(f"/ answered {response.status_code}")
    return {"seconds": seconds}


def run_setup(store: Path, work: Path, setup: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    rng = random.Random(5)
    names = [f"/environments/ns{i % NAMESPACES:02d}/env{i:04d}" for i in range(args.envs)]
    phases: dict[str, dict[str, float]] = {}
    with Server(store, setup) as server:
        phases["first / after start"] = first_overview(server.base)
        wrk_load(server.base, ["/", "/api/v1/environments"] * 50, work)  # warm-up: no environment page
        phases["overview /"] = measure(server, ["/"] * args.requests, work)
        phases["env page, mixed"] = measure(server, [rng.choice(names) for _ in range(args.requests)], work)
        phases["env page, steady"] = measure(server, [rng.choice(names) for _ in range(args.requests)], work)
        phases["/api/v1/environments"] = measure(server, ["/api/v1/environments"] * args.requests, work)
        memory = rss(server.proc.pid)
    with Server(store, setup) as server:
        wrk_load(server.base, ["/", "/api/v1/environments"] * 50, work)
        phases["env page, first views"] = measure(server, rng.sample(names, len(names)), work)
    phases["memory"] = {"rss_bytes": memory["VmRSS"], "peak_rss_bytes": memory["VmHWM"]}
    return phases


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--envs", type=int, default=1000)
    p.add_argument("--builds", type=int, default=10)
    p.add_argument("--requests", type=int, default=2000, help="requests per phase")
    p.add_argument("--store", type=Path, help="fill this folder once and reuse it (default: a new one per run)")
    p.add_argument("--rounds", type=int, default=1, help="runs of both setups, alternating")
    p.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the server process: store folder
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--setup", default=SHIPPED, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.setup)
        return
    if shutil.which("wrk") is None:
        sys.exit("bench_web needs wrk, the HTTP load generator: apt-get install wrk")
    c.print_header("bench_web")
    with c.workdir("web") as work:
        store = args.store or work / "store"
        if (store / "condaops.db").exists():
            from condaops.reconciler.state.db import make_engine, migrate

            migrate(make_engine(f"sqlite:///{(store / 'condaops.db').resolve()}"))
            print(f"reusing the state DB in {store}", flush=True)
        else:
            fill_s, fill_t = c.timed(lambda: fill(store, args.envs, args.builds))
            print(
                f"filled {args.envs} environments x {args.builds} builds in {c.fmt_s(fill_s)} "
                f"({', '.join(f'{k} {c.fmt_s(v)}' for k, v in fill_t.items())})",
                flush=True,
            )
        figures: dict[str, object] = {}
        for round_ in range(args.rounds):
            for setup in SETUPS:
                load_before = os.getloadavg()[0]
                phases = run_setup(store, work, setup, args)
                report(setup, phases, load_before)
                figures[f"{setup} #{round_ + 1}"] = phases
    c.print_summary("bench_web", figures)


def report(setup: str, phases: dict[str, dict[str, float]], load_before: float) -> None:
    rows = []
    for label, f in phases.items():
        if label == "memory":
            continue
        if label == "first / after start":
            rows.append((label, f"{f['seconds'] * 1000:.0f} ms", "", "", "", "", "", "target < 200 ms"))
            continue
        rows.append(
            (
                label,
                f"{f['p50_ms']:.1f} ms",
                f"{f['p95_ms']:.1f} ms",
                f"{f['p99_ms']:.1f} ms",
                f"{f['rps']:.0f}",
                f"{f['server_cpu_ms']:.2f} ms",
                f"{f['client_cpu_ms']:.2f} ms",
                "yes" if f["p95_ms"] < TARGET_P95 * 1000 else "NO",
            )
        )
    title = (
        f"{setup}: {CONCURRENCY} connections (wrk), load {load_before:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at the end"
    )
    print(c.table(title, ["phase", "p50", "p95", "p99", "req/s", "server CPU/req", "wrk CPU/req", "p95 < 50 ms"], rows))
    memory = phases["memory"]
    print(
        f"server memory after the first server's phases: RSS {c.fmt_bytes(int(memory['rss_bytes']))}, "
        f"peak {c.fmt_bytes(int(memory['peak_rss_bytes']))}",
        flush=True,
    )


if __name__ == "__main__":
    main()
