"""Benchmark: the status site inside ``condaops serve`` while a build runs (issue 14, target 6).

What is measured is the process users run: ``condaops serve`` (default settings: SQLite,
publishing on, the page cache, the reconciler, the worker and the registry in the same
process) on a directory source of ``--envs`` environment files (default 10,000 in 20
namespaces), each recorded with ``--builds`` completed builds (30 indexed packages, the
usual artifacts). The state DB is filled once (the first pass of the real ``Reconciler``
records the environments, the recorder's ``claim``/``finish`` record each build, prefixes
and links are made on disk, the builds are marked published so the publish job has
nothing to catch up; setup, not timed) and can be kept with ``--store DIR``.

The real flask channel (``../shared/realdata``) is served on 127.0.0.1 as ``defaults``.
One more environment, ``bench/busy``, is rebuilt over and over during the measurement:
whenever its build (solve, install, link, publish: tarball and image) is done, its file
is changed and the service's watcher starts the next one. A sampler reads the state DB
every 0.2 s; the benchmark fails if no build was running during most of a phase.

``wrk`` (Debian package ``wrk``, C, so the client's CPU does not eat the server's share)
keeps 20 connections busy, each sending its next request when the previous one is
answered (``bench_web.lua``: each path of a list once). Phases, on a fresh ``serve``:

* **first / after start**: the first overview once ``/healthz`` answers (and the time
  from starting the process), budget 200 ms;
* **env page, first views** (while a build runs): ``--requests`` distinct environments,
  each once: every page rendered from the state DB, budget p95 < 50 ms;
* **env page, again**: the same pages a second time (the page cache);
* **overview /** and **/api/v1/environments** (first page).

Printed per phase: p50, p95, p99, requests per second, the server's CPU per request,
the share of the phase a build was running, the budget and the ratio p95 / budget.

Run: ``.venv/bin/python benchmarks/bench_web.py [--envs 10000] [--builds 2]
[--requests 2000] [--rounds 1] [--store DIR]`` (``--store``: fill DIR once, reuse it).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import _common as c

CONCURRENCY = 20
NAMESPACES = 20
PACKAGES_PER_BUILD = 30
BUDGET_P95 = 0.050  # issue 14, target 6: environment page first view p95, 20 clients, a build running
BUDGET_FIRST = 0.200  # first / after start at 10,000 environments
BUSY_SHARE = 0.5  # a phase "with a build running" must have one running at least this share of it
BUSY = ("bench", "busy")


class StepSkipped(SystemExit):
    """A step the benchmark claims to measure did not run as claimed."""


def require(condition: bool, what: str) -> None:
    if not condition:
        raise StepSkipped(f"bench_web: FAILED: {what}")


# --- the site: files, config, a filled state DB --------------------------------------------


def env_text(i: int, round_: int) -> str:
    return (
        f"channels: [conda-forge]\ndependencies:\n  - python=3.{(i + round_) % 4 + 9}\n"
        f"  - numpy >=1.{round_}\n  - openssl\n"
    )


def busy_text(n: int) -> str:
    return f'dependencies:\n  - python=2.7\n  - flask\nvariables:\n  BENCH_ROUND: "{time.time_ns()}-{n}"\n'


def write_config(folder: Path, mirrors: dict[str, list[str]], port: int) -> Path:
    return c.write_config(folder, mirrors=mirrors, extra=f"web:\n  listen: 127.0.0.1:{port}\n")


def fill(folder: Path, envs: int, builds: int) -> dict[str, float]:
    """Environment files and a state DB with ``builds`` completed builds each (see above)."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from condaops.reconciler.build.link import swap_link
    from condaops.reconciler.service import Reconciler
    from condaops.reconciler.state.db import make_engine, migrate
    from condaops.reconciler.state.packages import LockedPackage, record_build_packages
    from condaops.reconciler.state.recorder import Recorder

    settings = c.load(write_config(folder, {}, 8080))
    engine = make_engine(settings.database_url)
    migrate(engine)
    rec = Reconciler(settings, engine, clock=lambda: datetime.now(timezone.utc))
    recorder = Recorder(engine, rec.clock)
    timings = {"files": 0.0, "passes": 0.0, "builds": 0.0, "index": 0.0}
    try:
        for round_ in range(builds):
            started = time.perf_counter()
            for i in range(envs):
                path = folder / "envs" / f"ns{i % NAMESPACES:02d}" / f"env{i:05d}.yaml"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(env_text(i, round_))
            timings["files"] += time.perf_counter() - started
            started = time.perf_counter()
            result = rec.reconcile_once()
            require(len(result.queued) == envs, f"round {round_}: the pass queued {len(result.queued)} of {envs}")
            timings["passes"] += time.perf_counter() - started
            started = time.perf_counter()
            for q in result.queued:
                prefix = rec.layout.prefix(q.ref, q.spec_hash)
                prefix.mkdir(parents=True, exist_ok=True)
                swap_link(rec.layout.env_link(q.ref), prefix)
                recorder.claim(q.build_id, "bench")
                recorder.finish(q.build_id, _outcome(q.ref, q.build_id, rec.layout.relative(prefix)), "bench")
            timings["builds"] += time.perf_counter() - started
            started = time.perf_counter()
            with Session(engine) as s, s.begin():
                for q in result.queued:
                    record_build_packages(s, q.build_id, _packages(round_, q.build_id, LockedPackage))
            timings["index"] += time.perf_counter() - started
        with engine.begin() as conn:  # as if the publish job had run: nothing for it to catch up
            conn.execute(text("UPDATE builds SET published_at = finished_at WHERE published_at IS NULL"))
        settled = rec.reconcile_once()
        require(not settled.queued, f"the pass after filling queued {len(settled.queued)}")
    finally:
        rec.close()
        engine.dispose()
    return timings


def _outcome(ref, build_id: int, prefix: str):  # type: ignore[no-untyped-def]  # a benchmark helper taking condaops objects
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
    return BuildOutcome(True, "BuildSucceeded", prefix=prefix, artifacts=artifacts, timings=timings, linked=True)


def _packages(round_: int, build_id: int, cls):  # type: ignore[no-untyped-def]  # a benchmark helper taking condaops objects
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


# --- condaops serve ------------------------------------------------------------------------


def free_port() -> int:
    import socket

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


class Serve:
    """``condaops serve`` on the site folder and a free loopback port, stopped on exit."""

    def __init__(self, folder: Path, mirrors: dict[str, list[str]], log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = write_config(folder, mirrors, self.port)
        exe = Path(sys.executable).with_name("condaops")
        self.log = log.open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONDAOPS_")}  # the file alone
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [str(exe), "--config", str(config), "--log-level", "warning", "serve"],
            cwd=folder,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def __enter__(self) -> Serve:
        wait_ready(self.base, self.proc)
        self.ready = time.perf_counter() - self.started
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class BusyBuilds:
    """Keeps a build of ``bench/busy`` in progress: when the last one is built and published,
    its file is changed (a new spec: the service's watcher queues the next build). Samples
    every 0.2 s whether a build is running or being published (solve, install, link, then
    tarball and image); ``share(since)`` is the share of samples since then with one."""

    def __init__(self, folder: Path) -> None:
        self.file = folder / "envs" / BUSY[0] / f"{BUSY[1]}.yaml"
        self.db = folder / "store" / "condaops.db"
        self.samples: list[tuple[float, bool]] = []
        self.finished = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._round = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BusyBuilds:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _states(self) -> list[tuple[str, str | None, bool]]:
        """(state, reason, publishing) of the busy environment's builds since the last change."""
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            return list(
                conn.execute(
                    "SELECT b.state, b.reason, b.state = 'completed' AND b.published_at IS NULL "
                    "FROM builds b JOIN environments e ON b.environment_id = e.id "
                    "JOIN namespaces n ON e.namespace_id = n.id WHERE n.name = ? AND e.name = ? "
                    "AND b.id > ? ORDER BY b.id",
                    (*BUSY, self._seen),
                )
            )
        finally:
            conn.close()

    def _run(self) -> None:
        self._seen = self._max_id()
        pending = False
        while not self._stop.wait(0.2):
            rows = self._states()
            running = any(s == "building" or publishing for s, _, publishing in rows)
            self.samples.append((time.monotonic(), running))
            if any(s in ("queued", "building") for s, _, _ in rows):
                pending = False
                continue
            if any(publishing for *_, publishing in rows):
                continue  # built, being published: the next change when it is done
            done = [(s, r) for s, r, _ in rows if s in ("completed", "failed")]
            self.finished += sum(s == "completed" for s, _ in done)
            self.failed += [f"{s}: {r}" for s, r in done if s == "failed"]
            if done or not pending:
                self._seen = self._max_id()
                self._round += 1
                self.file.write_text(busy_text(self._round))
                pending = True

    def _max_id(self) -> int:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT coalesce(max(id), 0) FROM builds").fetchone()[0])
        finally:
            conn.close()

    def wait_running(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.samples and self.samples[-1][1]:
                return
            require(not self.failed, f"the busy build failed: {self.failed}")
            time.sleep(0.1)
        require(False, f"no build of {'/'.join(BUSY)} started within {timeout:.0f} s")

    def share(self, since: float) -> float:
        seen = [running for at, running in self.samples if at >= since]
        return sum(seen) / len(seen) if seen else 0.0


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


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 300.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bench_web: condaops serve exited with {proc.returncode}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    sys.exit("bench_web: condaops serve did not answer /healthz")


def measure(server: Serve, busy: BusyBuilds, paths: list[str], work: Path) -> dict[str, float]:
    """One phase: wrk's latencies and throughput, the server's CPU per request, and the
    share of the phase a build was running."""
    cpu = cpu_seconds(server.proc.pid)
    since = time.monotonic()
    result = wrk_load(server.base, paths, work)
    n = result["requests"]
    return {
        "p50_ms": result["p50_us"] / 1000,
        "p95_ms": result["p95_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "rps": n / result["seconds"],
        "server_cpu_ms": (cpu_seconds(server.proc.pid) - cpu) / n * 1000,
        "building_share": busy.share(since),
        "requests": n,
    }


def first_overview(server: Serve) -> dict[str, float]:
    """The first ``/`` once ``/healthz`` answers: what an operator waits for after a restart."""
    import httpx

    started = time.perf_counter()
    response = httpx.get(server.base + "/", timeout=120)
    seconds = time.perf_counter() - started
    require(response.status_code == 200, f"/ answered {response.status_code}")
    require('data-env="' in response.text, "the first / listed no environment")
    return {"seconds": seconds, "from_start": time.perf_counter() - server.started, "ready": server.ready}


def run_round(folder: Path, mirrors: dict[str, list[str]], work: Path, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(5)
    names = [f"/environments/ns{i % NAMESPACES:02d}/env{i:05d}" for i in range(args.envs)]
    picked = rng.sample(names, min(args.requests, len(names)))
    phases: dict[str, Any] = {}
    with Serve(folder, mirrors, work / "serve.log") as server, BusyBuilds(folder) as busy:
        phases["first / after start"] = first_overview(server)
        busy.wait_running()
        phases["env page, first views"] = measure(server, busy, picked, work)
        phases["env page, again"] = measure(server, busy, picked, work)
        phases["overview /"] = measure(server, busy, ["/"] * args.requests, work)
        phases["/api/v1/environments"] = measure(server, busy, ["/api/v1/environments"] * args.requests, work)
        memory = rss(server.proc.pid)
        require(not busy.failed, f"a build of {'/'.join(BUSY)} failed: {busy.failed}")
        phases["busy builds"] = {"completed": busy.finished, "started": busy._round}
    phases["memory"] = {"rss_bytes": memory["VmRSS"], "peak_rss_bytes": memory["VmHWM"]}
    return phases


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--envs", type=int, default=10000)
    p.add_argument("--builds", type=int, default=2, help="completed builds per environment")
    p.add_argument("--requests", type=int, default=2000, help="requests per phase (distinct pages for first views)")
    p.add_argument("--store", type=Path, help="the site folder: filled once and reused (default: a new one)")
    p.add_argument("--rounds", type=int, default=1, help="fresh serve processes, one after the other")
    args = p.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench_web needs wrk, the HTTP load generator: apt-get install wrk")
    c.require_realdata()
    c.print_header("bench_web")
    with c.workdir("web") as work, c.serve_defaults(work) as mirrors:
        folder = args.store or work / "site"
        folder.mkdir(parents=True, exist_ok=True)
        if (folder / "store" / "condaops.db").exists():
            print(f"reusing the site in {folder}", flush=True)
        else:
            fill_s, fill_t = c.timed(lambda: fill(folder, args.envs, args.builds))
            print(
                f"filled {args.envs} environments x {args.builds} builds in {c.fmt_s(fill_s)} "
                f"({', '.join(f'{k} {c.fmt_s(v)}' for k, v in fill_t.items())})",
                flush=True,
            )
        figures: dict[str, object] = {}
        for round_ in range(args.rounds):
            load_before = os.getloadavg()[0]
            phases = run_round(folder, mirrors, work, args)
            report(phases, load_before, args.envs)
            share = phases["env page, first views"]["building_share"]  # the phase target 6 is about
            require(share >= BUSY_SHARE, f"env page, first views: a build ran during {share:.0%} of it only")
            figures[f"condaops serve #{round_ + 1}"] = phases
    c.print_summary("bench_web", figures)


def report(phases: dict[str, Any], load_before: float, envs: int) -> None:
    first = phases["first / after start"]
    rows = [
        (
            "first / after start",
            f"{first['seconds'] * 1000:.0f} ms",
            "",
            "",
            "",
            "",
            "",
            f"{BUDGET_FIRST * 1000:.0f} ms",
            f"{first['seconds'] / BUDGET_FIRST:.2f}",
        )
    ]
    for label, f in phases.items():
        if "p95_ms" not in f:
            continue
        rows.append(
            (
                label,
                f"{f['p50_ms']:.1f} ms",
                f"{f['p95_ms']:.1f} ms",
                f"{f['p99_ms']:.1f} ms",
                f"{f['rps']:.0f}",
                f"{f['server_cpu_ms']:.2f} ms",
                f"{f['building_share']:.0%}",
                f"p95 {BUDGET_P95 * 1000:.0f} ms",
                f"{f['p95_ms'] / (BUDGET_P95 * 1000):.2f}",
            )
        )
    title = (
        f"condaops serve, {envs} environments, {CONCURRENCY} connections (wrk), "
        f"load {load_before:.2f} at start, {os.getloadavg()[0]:.2f} at the end"
    )
    header = ["phase", "p50", "p95", "p99", "req/s", "server CPU/req", "build running", "budget", "ratio"]
    print(c.table(title, header, rows))
    memory = phases["memory"]
    print(
        f"serve: /healthz after {first['ready']:.2f} s, first / answered {first['from_start']:.2f} s after the "
        f"start; busy builds completed {phases['busy builds']['completed']}; RSS "
        f"{c.fmt_bytes(int(memory['rss_bytes']))}, peak {c.fmt_bytes(int(memory['peak_rss_bytes']))}",
        flush=True,
    )


if __name__ == "__main__":
    main()
