"""Benchmark: the status site and API under load, 1,000 environments × 10 builds.

The state DB is filled through the recorder (``Recorder.apply_plan``, ``claim``,
``finish``: what real builds record, without installing anything) plus the package index
(``record_build_packages``, 30 packages per build). Then a server process runs the web app
alone (uvicorn, one process, as ``condaops serve`` runs it) on 127.0.0.1, and 20
concurrent clients request, for each endpoint in turn:

* ``/`` — the overview (all namespaces, counts by state, sources, recent builds);
* ``/environments/<ns>/<name>`` — an environment page (random environment each time:
  spec, 30 locked packages, artifacts, 10 builds of history);
* ``/api/v1/environments`` — the first page (50) of the environment list.

Reported: p50 and p95 latency per endpoint (target p95 < 50 ms), requests per second,
the server's CPU time per request (user + system over the endpoint's load: less moved by
other processes on the machine than the latencies, which with 20 closed-loop clients are
about 20 / throughput), and the server's resident memory (RSS) after the load and its
peak (VmHWM).

Run: ``.venv/bin/python benchmarks/bench_web.py [--envs 1000] [--builds 10] [--requests 2000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
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
            spec = Spec(channels=("conda-forge",), dependencies=(Dependency(f"python=3.{round_ % 4 + 9}"),
                        Dependency(f"numpy >=1.{round_}"), Dependency("openssl")))  # fmt: skip
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


def _outcome(ref, build_id: int, spec_hash: str):  # type: ignore[no-untyped-def]
    from condaops.reconciler.model import ArtifactRecord, BuildOutcome

    base = f"artifacts/{ref.namespace}/{ref.name}/{build_id}"
    files = (("conda-lock", "conda-lock.yml"), ("pixi-lock", "pixi.lock"), ("environment", "environment.yaml"),
             ("explicit-linux-64", "conda-linux-64.lock"), ("log", "build.log"))  # fmt: skip
    artifacts = tuple(ArtifactRecord(kind, f"{base}/{name}", 1000 + build_id, f"{build_id:064x}")
                      for kind, name in files)  # fmt: skip
    timings = (("solve", 1.5), ("lock", 0.4), ("install", 6.0), ("link", 0.01))
    return BuildOutcome(True, "BuildSucceeded", prefix=f"{ref.namespace}/{spec_hash}-{ref.name}", artifacts=artifacts,
                        timings=timings, linked=True)  # fmt: skip


def _packages(round_: int, build_id: int, cls):  # type: ignore[no-untyped-def]
    names = [f"lib{i:02d}" for i in range(PACKAGES_PER_BUILD - 3)] + ["python", "numpy", "openssl"]
    return [cls(platform="linux-64", name=n, version=f"{1 + i % 3}.{round_}.{i}", build=f"h{build_id:x}_0",
                build_number=0, channel="https://conda.anaconda.org/conda-forge", subdir="linux-64",
                size=100_000 + i, url=f"https://conda.anaconda.org/conda-forge/linux-64/{n}-{i}.conda",
                sha256=f"{i:064x}") for i, n in enumerate(names)]  # fmt: skip


# --- the server process -------------------------------------------------------------------


def serve(store: Path, port: int, stack: str = "uvloop+httptools") -> None:
    """The server side: the web app alone, as ``condaops serve`` runs it (uvicorn)."""
    import uvicorn

    from condaops.config.settings import Settings
    from condaops.reconciler.state.db import make_engine
    from condaops.web.app import create_app

    settings = Settings(store=store)
    app = create_app(settings, make_engine(settings.database_url))
    # As condaops serve runs it (uvloop, httptools), unless --stack asks for another.
    loop, http = stack.split("+")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, loop=loop, http=http)


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


# --- the clients --------------------------------------------------------------------------


async def load(base: str, paths: list[str]) -> tuple[list[float], float]:
    """Request ``paths`` with CONCURRENCY clients; (latencies, wall seconds)."""
    import httpx

    queue: asyncio.Queue[str] = asyncio.Queue()
    for path in paths:
        queue.put_nowait(path)
    latencies: list[float] = []

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            while not queue.empty():
                path = queue.get_nowait()
                started = time.perf_counter()
                response = await http.get(path)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return latencies, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(round(q * (len(ordered) - 1))), len(ordered) - 1)]


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--envs", type=int, default=1000)
    p.add_argument("--builds", type=int, default=10)
    p.add_argument("--requests", type=int, default=2000, help="requests per endpoint")
    p.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the server process: store folder
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--stack", default="uvloop+httptools", help=argparse.SUPPRESS)  # the server process's
    p.add_argument("--stacks", default="uvloop+httptools,asyncio+h11",
                   help="server event loop + HTTP parser to compare, in turn on the same data (the first is "
                        "how condaops serve runs)")
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.stack)
        return
    c.print_header("bench_web")
    with c.workdir("web") as work:
        store = work / "store"
        fill_s, fill_t = c.timed(lambda: fill(store, args.envs, args.builds))
        print(f"filled {args.envs} environments x {args.builds} builds in {c.fmt_s(fill_s)} "
              f"({', '.join(f'{k} {c.fmt_s(v)}' for k, v in fill_t.items())})", flush=True)  # fmt: skip
        figures = {}
        for stack in args.stacks.split(","):
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            command = [sys.executable, __file__, "--serve", str(store), "--port", str(port), "--stack", stack]
            proc = subprocess.Popen(command)
            try:
                wait_ready(base, proc)
                figures[stack] = run_load(base, proc.pid, args, stack)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    c.print_summary("bench_web", figures)


def run_load(base: str, pid: int, args: argparse.Namespace, stack: str) -> dict[str, object]:
    rng = random.Random(5)
    names = [(f"ns{i % NAMESPACES:02d}", f"env{i:04d}") for i in range(args.envs)]
    endpoints = {
        "overview /": ["/"] * args.requests,
        "environment page": [f"/environments/{ns}/{n}" for ns, n in (rng.choice(names) for _ in range(args.requests))],
        "/api/v1/environments": ["/api/v1/environments"] * args.requests,
    }
    asyncio.run(load(base, ["/", "/api/v1/environments", "/environments/ns00/env0000"] * 20))  # warm-up
    rows, figures = [], {}
    for label, paths in endpoints.items():
        cpu, own = cpu_seconds(pid), time.process_time()
        latencies, wall = asyncio.run(load(base, paths))
        cpu_ms = (cpu_seconds(pid) - cpu) / len(paths) * 1000
        client_ms = (time.process_time() - own) / len(paths) * 1000  # the load generator shares the 2 CPUs
        p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
        met = "yes" if p95 < TARGET_P95 else "NO"
        rows.append((label, c.fmt_s(p50), c.fmt_s(p95), f"{len(paths) / wall:.0f}", f"{cpu_ms:.2f} ms",
                     f"{client_ms:.2f} ms", met))  # fmt: skip
        figures[label] = {"p50_ms": round(p50 * 1000, 1), "p95_ms": round(p95 * 1000, 1),
                          "rps": round(len(paths) / wall), "server_cpu_ms": round(cpu_ms, 3),
                          "client_cpu_ms": round(client_ms, 3)}  # fmt: skip
    memory = rss(pid)
    print(c.table(f"server {stack}: {CONCURRENCY} concurrent clients, {args.requests} requests per endpoint",
                  ["endpoint", "p50", "p95", "req/s", "server CPU/req", "client CPU/req", "p95 < 50 ms"],
                  rows))  # fmt: skip
    print(f"server memory: RSS {c.fmt_bytes(memory['VmRSS'])}, peak {c.fmt_bytes(memory['VmHWM'])}")
    figures["rss_bytes"], figures["peak_rss_bytes"] = memory["VmRSS"], memory["VmHWM"]
    return figures


if __name__ == "__main__":
    main()
