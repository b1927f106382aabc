"""Benchmark: scale-out on PostgreSQL — 1, 2 and 4 worker processes, and the queue's own cost.

Real processes on a fresh database of the PostgreSQL on 127.0.0.1:5432 (created and
dropped by ``tests.support.postgres.fresh_database``), a local HTTP channel
(``tests.support.channels``) and one store in a temporary folder:

* one ``condaops serve --role reconciler`` (sources, passes, scheduling) and N
  ``condaops worker --slots S`` processes, each with its own package cache
  (``CONDAOPS_BUILD__CACHE_DIR``); ``publish.enabled: false`` (publishing is measured by
  ``bench_image.py`` / ``bench_registry.py``); ``build.concurrency`` = the total slots, so
  the limit is the workers' slots, never the shared concurrency.

1. **Throughput.** 200 small environments, each ``pkgNNN`` (its own tiny package, so
   every build downloads and installs something) plus ``common`` (shared by all), built
   with N = 1, 2 and 4 workers holding the same total of slots (default 4: 1×4, 2×2,
   4×1): the comparison is threads in one process against processes. Wall time from
   writing the 200 files until all 200 builds are ``completed`` and current in the state
   DB (polled every 0.2 s); builds/s and the ratio to one worker. Also the machine's CPU
   busy fraction over the run (``/proc/stat``), each process's CPU time, the database's
   committed transactions (``pg_stat_database``) and the most builds seen running at once.
2. **Queue overhead at 1,000 queued builds.**
   (a) ``BuildScheduler.submit`` of 1,000 new builds, in this process, against
   APScheduler's PostgreSQL data store (no workers), then the same 1,000 again (all
   pending: what every reconcile pass re-submits);
   (b) the real thing: the reconciler role queues 1,000 environments (the same package
   ``common`` in each, distinct names: a real solve + install + link each, no download
   after the first) with no worker running; then one worker with one slot drains the
   queue. From ``builds.started_at``/``finished_at``: the gap between one build's finish
   and the next one's start — the per-build queue overhead when the queue is deep — and
   the build itself.

Run: ``.venv/bin/python benchmarks/bench_scale.py [--quick] [--rounds 2] [--envs 200]
[--queued 1000] [--total-slots 4] [--workers 1,2,4] [--skip-throughput] [--skip-queue]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import _common as c
import yaml

ALIAS = "https://conda.anaconda.org/"  # canonical channel names, mirrored to the local server
POLL = 0.1


# --- the cluster: processes on one database and one store ---------------------------------


@dataclass
class Site:
    """condaops processes sharing one PostgreSQL database, one store and one source folder."""

    root: Path
    database: str
    channel: str
    concurrency: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from sqlalchemy import create_engine

        (self.root / "envs" / "team").mkdir(parents=True)
        config = {
            "store": str(self.root / "store"),
            "database": self.database,
            "sources": [{"directory": str(self.root / "envs")}],
            "channels": {"default": ["testchan"], "alias": ALIAS, "mirrors": {ALIAS + "testchan": [self.channel]}},
            "platforms": ["linux-64"],
            "build": {"concurrency": self.concurrency, "retries": 1, "backoff": "1s", "lease": "30s"},
            "publish": {"enabled": False},
        }
        self.config = self.root / "condaops.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.engine = create_engine(self.database)

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """``condaops <args>`` with its own package cache."""
        # condaops refuses unknown CONDAOPS_* variables (CONDAOPS_BENCH_KEEP, CONDAOPS_TEST_POSTGRES).
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONDAOPS_")}
        env["CONDAOPS_BUILD__CACHE_DIR"] = str(self.root / "caches" / name)
        with self.log(name).open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "condaops.reconciler.cli", "--config", str(self.config), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.root,
            )
        self.procs[name] = proc
        return proc

    def wait_started(self, name: str, marker: str, timeout: float = 120) -> None:
        """Until the process printed ``marker`` (its runtime is up), then a second for its scheduler."""
        wait_for(
            lambda: marker in self.log(name).read_text(errors="replace"),
            timeout,
            f"{name} started",
            lambda: self.procs[name].poll() is None,
        )
        time.sleep(1.0)

    def migrate(self) -> None:
        if self.start("migrate", "migrate").wait(timeout=120) != 0:
            sys.exit(f"condaops migrate failed:\n{self.log('migrate').read_text()}")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        self.engine.dispose()

    def write_envs(self, envs: dict[str, Sequence[str]]) -> None:
        for name, deps in envs.items():
            (self.root / "envs" / "team" / f"{name}.yaml").write_text(
                "channels: [testchan]\ndependencies:\n" + "".join(f"  - {d}\n" for d in deps)
            )

    def scalar(self, sql: str) -> object:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return conn.execute(text(sql)).scalar()

    def done(self) -> int:
        """Environments whose current build is a completed one."""
        return int(
            self.scalar(
                "SELECT count(*) FROM environments e JOIN builds b ON b.id = e.current_build_id "
                "WHERE b.state = 'completed'"
            )
            or 0
        )

    def failed(self) -> int:
        return int(self.scalar("SELECT count(*) FROM builds WHERE state = 'failed'") or 0)

    def builds(self) -> list[dict]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, state, worker, queued_at, started_at, finished_at FROM builds "
                    "ORDER BY started_at NULLS LAST, id"
                )
            )
            return [dict(r._mapping) for r in rows]

    def commits(self) -> int:
        return int(self.scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()") or 0)

    def cpu_seconds(self) -> dict[str, float]:
        """user + system CPU of each running process (``/proc/<pid>/stat``)."""
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for name, proc in self.procs.items():
            try:
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                out[name] = (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError):
                pass
        return out


def wait_for(
    predicate: Callable[[], object], timeout: float, what: str, alive: Callable[[], bool] = lambda: True
) -> float:
    """Poll ``predicate`` until true; returns the monotonic time it was seen true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        if not alive():
            sys.exit(f"a process exited while waiting: {what}")
        time.sleep(POLL)
    sys.exit(f"not within {timeout:.0f} s: {what}")


def postgres_cpu() -> float:
    """user + system CPU of every ``postgres`` process on the machine (other databases too)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, rest = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        if head.endswith("(postgres"):
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])
    return total / tick


class MachineCPU:
    """Busy fraction of all CPUs between ``start()`` and ``stop()`` (``/proc/stat``)."""

    @staticmethod
    def _read() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values) - idle, sum(values)

    def start(self) -> None:
        self._busy, self._total = self._read()

    def stop(self) -> float:
        busy, total = self._read()
        return (busy - self._busy) / max(total - self._total, 1)


@contextmanager
def site(tmp: Path, name: str, channel: str, concurrency: int) -> Iterator[Site]:
    from tests.support.postgres import fresh_database

    with fresh_database() as database:
        s = Site(tmp / name, database, channel, concurrency)
        try:
            yield s
        except BaseException:
            for proc_name in s.procs:
                print(f"--- {proc_name}\n{s.log(proc_name).read_text(errors='replace')[-2000:]}", file=sys.stderr)
            raise
        finally:
            s.stop_all()


@contextmanager
def served_channel(tmp: Path, n_packages: int) -> Iterator[str]:
    """``common`` and ``pkg000``…: tiny packages, each with a script and a data file."""
    from tests.support.channels import PackageSpec, make_channel, serve_directory

    packages = [
        PackageSpec(
            "common", "1.0", files={"share/common/data.txt": "prefix=PREFIX_PLACEHOLDER\n"}, executables=("common",)
        )
    ]
    packages += [
        PackageSpec(pkg(i), "1.0", files={f"share/{pkg(i)}/data.txt": f"{i}\n"}, executables=(pkg(i),))
        for i in range(n_packages)
    ]
    make_channel(tmp / "channel", packages)
    with serve_directory(tmp / "channel") as url:
        yield str(url)


def require_postgres() -> None:
    """Stop with the reason when PostgreSQL is not reachable (the test helper skips or fails)."""
    import pytest

    from tests.support.postgres import require_postgres as check

    try:
        check()
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        sys.exit(f"bench_scale needs PostgreSQL: {exc}")


def pkg(i: int) -> str:
    return f"pkg{i:03d}"


# --- 1. throughput with 1, 2, 4 workers ------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    workers: int
    slots: int
    round: int
    wall: float  # files written → all current and completed
    to_first_start: float  # files written → first build started
    build_median: float  # one build, started → finished
    peak_running: int
    cpu_busy: float  # machine, 0..1
    cpu: dict[str, float]  # seconds per process over the run
    cpu_postgres: float  # every postgres process on the machine, over the run
    commits: int
    load: tuple[float, float]
    failed: int
    runs: int  # "build_started build=" lines in the workers' logs: each build must run once

    @property
    def rate(self) -> float:
        return 0 if not self.wall else self.n / self.wall

    n: int = 0


def run_throughput(tmp: Path, channel: str, workers: int, slots: int, n_envs: int, rnd: int) -> Throughput:
    from tests.support.intervals import max_overlap

    with site(tmp, f"scale-{workers}x{slots}-{rnd}", channel, concurrency=workers * slots) as s:
        s.migrate()
        s.start("reconciler", "serve", "--role", "reconciler")
        for i in range(workers):
            s.start(f"worker{i}", "worker", "--slots", str(slots))
        s.wait_started("reconciler", "condaops: reconciler role")
        for i in range(workers):
            s.wait_started(f"worker{i}", "condaops: worker ")
        load0 = os.getloadavg()[0]
        cpu0, pg0, commits0, machine = s.cpu_seconds(), postgres_cpu(), s.commits(), MachineCPU()
        machine.start()
        t0 = time.monotonic()
        written_at = datetime.now().astimezone()
        s.write_envs({f"e{i:03d}": (pkg(i), "common") for i in range(n_envs)})
        t1 = wait_for(
            lambda: s.done() >= n_envs or s.failed(),
            600,
            f"{n_envs} environments built",
            lambda: all(p.poll() is None for n, p in s.procs.items() if n != "migrate"),
        )
        busy = machine.stop()
        cpu1, pg1, commits1 = s.cpu_seconds(), postgres_cpu(), s.commits()
        builds = [b for b in s.builds() if b["state"] == "completed"]
        starts = [b["started_at"] for b in builds]
        logs = [s.log(f"worker{i}").read_text(errors="replace") for i in range(workers)]
        runs = sum(text.count("build_started build=") for text in logs)
        # The end is the last finish recorded in the DB (the poll only notices it, up to POLL later).
        wall = (max(b["finished_at"] for b in builds) - written_at).total_seconds() if builds else t1 - t0
        return Throughput(
            workers=workers,
            slots=slots,
            round=rnd,
            wall=wall,
            to_first_start=(min(starts) - written_at).total_seconds() if starts else float("nan"),
            build_median=c.median([(b["finished_at"] - b["started_at"]).total_seconds() for b in builds]),
            peak_running=max_overlap([(b["started_at"], b["finished_at"]) for b in builds]),
            cpu_busy=busy,
            cpu={k: cpu1.get(k, 0) - cpu0.get(k, 0) for k in cpu1 if k != "migrate"},
            cpu_postgres=pg1 - pg0,
            commits=commits1 - commits0,
            load=(load0, os.getloadavg()[0]),
            failed=s.failed(),
            n=len(builds),
            runs=runs,
        )


def report_throughput(title: str, results: list[Throughput]) -> list[dict]:
    """One table; the ratio is the median wall time with one worker over this run's."""
    base = c.median([r.wall for r in results if r.workers == 1])
    rows, figures = [], []
    for r in sorted(results, key=lambda r: (r.workers, r.round)):
        worker_cpu = sum(v for k, v in r.cpu.items() if k.startswith("worker"))
        rows.append(
            [
                f"{r.workers} × {r.slots}, round {r.round}",
                f"{r.n}",
                c.fmt_s(r.wall),
                f"{r.rate:.1f}",
                f"{base / r.wall:.2f}" if r.wall else "-",
                c.fmt_s(r.to_first_start),
                c.fmt_s(r.build_median),
                r.peak_running,
                f"{r.cpu_busy * 100:.0f} %",
                f"{r.cpu.get('reconciler', 0):.1f} s",
                f"{worker_cpu:.1f} s",
                f"{r.cpu_postgres:.1f} s",
                r.commits,
                f"{r.load[0]:.2f} → {r.load[1]:.2f}",
            ]
        )
        figures.append(
            {
                "workers": r.workers,
                "slots": r.slots,
                "round": r.round,
                "built": r.n,
                "failed": r.failed,
                "wall_s": round(r.wall, 2),
                "builds_per_s": round(r.rate, 2),
                "speedup": round(base / r.wall, 2) if r.wall else None,
                "first_start_s": round(r.to_first_start, 2),
                "build_median_s": round(r.build_median, 3),
                "peak_running": r.peak_running,
                "cpu_busy": round(r.cpu_busy, 3),
                "cpu_reconciler_s": round(r.cpu.get("reconciler", 0), 1),
                "cpu_workers_s": round(worker_cpu, 1),
                "cpu_postgres_s": round(r.cpu_postgres, 1),
                "pg_commits": r.commits,
                "runs": r.runs,
                "load": [round(x, 2) for x in r.load],
            }
        )
    print(
        c.table(
            f"\n{title}",
            [
                "workers × slots",
                "built",
                "wall",
                "builds/s",
                "ratio",
                "first start",
                "one build",
                "peak",
                "machine CPU",
                "reconciler CPU",
                "workers CPU",
                "postgres CPU",
                "PG commits",
                "load 1 min",
            ],
            rows,
        )
    )
    return figures


# --- 2. queue overhead ----------------------------------------------------------------------------


def submit_cost(n: int) -> tuple[float, float]:
    """Seconds for ``BuildScheduler.submit`` of ``n`` new builds, then of the same ``n`` again."""
    import anyio
    from sqlalchemy import create_engine

    from condaops.reconciler.model import EnvRef
    from condaops.reconciler.runtime import prepare_database
    from condaops.reconciler.schedule import BuildScheduler
    from condaops.reconciler.state.recorder import QueuedBuild
    from tests.support.postgres import fresh_database

    builds = [QueuedBuild(i + 1, EnvRef("team", f"q{i:04d}"), f"{i:064x}") for i in range(n)]

    async def measure() -> tuple[float, float]:
        async with BuildScheduler(None, concurrency=1, database_url=database, role="scheduler") as sched:
            start = time.perf_counter()
            await sched.submit(builds)
            first = time.perf_counter() - start
            start = time.perf_counter()
            await sched.submit(builds)
            return first, time.perf_counter() - start

    with fresh_database() as database:
        engine = create_engine(database)
        prepare_database(engine)
        engine.dispose()
        return anyio.run(measure)


@dataclass(frozen=True)
class Queue:
    n: int
    reconciler_during_drain: bool
    to_queued: float  # files written → n builds queued in the state DB
    to_scheduled: float  # files written → n one-off schedules in APScheduler's store
    gaps: list[float]  # next start - previous finish, one worker, one slot
    durations: list[float]  # finished - started
    drain: float  # first build started → last one finished
    cpu: dict[str, float]  # seconds per process over the drain
    cpu_postgres: float
    load: tuple[float, float]
    failed: int


def run_queue(tmp: Path, channel: str, n: int, *, reconciler_during_drain: bool) -> Queue:
    """Queue ``n`` builds with no worker, then drain them with one worker of one slot; with
    ``reconciler_during_drain`` False the reconciler role is stopped first (workers link and
    record builds themselves), which isolates what its passes cost the worker."""
    with site(tmp, f"queue-{'r' if reconciler_during_drain else 'nr'}", channel, concurrency=1) as s:
        s.migrate()
        s.start("reconciler", "serve", "--role", "reconciler")
        s.wait_started("reconciler", "condaops: reconciler role")
        load0 = os.getloadavg()[0]
        t0 = time.monotonic()
        s.write_envs({f"q{i:04d}": ("common",) for i in range(n)})

        def alive() -> bool:
            return all(p.poll() is None for k, p in s.procs.items() if k not in ("migrate", "reconciler-stopped"))

        t_queued = wait_for(
            lambda: s.scalar("SELECT count(*) FROM builds WHERE state = 'queued'") == n,
            300,
            f"{n} builds queued",
            alive,
        )
        t_sched = wait_for(
            lambda: s.scalar("SELECT count(*) FROM apscheduler.schedules") == n, 300, f"{n} schedules", alive
        )
        time.sleep(2.0)  # let the reconciler settle: the worker starts against a quiet queue
        if not reconciler_during_drain:
            proc = s.procs.pop("reconciler")
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            s.procs["reconciler-stopped"] = proc
        cpu0, pg0 = s.cpu_seconds(), postgres_cpu()
        t1 = time.monotonic()
        s.start("worker", "worker", "--slots", "1")
        t2 = wait_for(lambda: s.done() >= n or s.failed(), 900, f"{n} queued builds drained", alive)
        cpu1, pg1 = s.cpu_seconds(), postgres_cpu()
        builds = [b for b in s.builds() if b["started_at"] is not None and b["finished_at"] is not None]
        gaps = [(b["started_at"] - a["finished_at"]).total_seconds() for a, b in zip(builds, builds[1:], strict=False)]
        return Queue(
            n=n,
            reconciler_during_drain=reconciler_during_drain,
            to_queued=t_queued - t0,
            to_scheduled=t_sched - t0,
            gaps=gaps,
            durations=[(b["finished_at"] - b["started_at"]).total_seconds() for b in builds],
            drain=(builds[-1]["finished_at"] - builds[0]["started_at"]).total_seconds() if builds else t2 - t1,
            cpu={k: cpu1[k] - cpu0.get(k, 0) for k in cpu1 if k != "migrate"},
            cpu_postgres=pg1 - pg0,
            load=(load0, os.getloadavg()[0]),
            failed=s.failed(),
        )


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report_queue(submit: tuple[float, float], drains: list[Queue]) -> dict:
    first, again = submit
    n = drains[0].n
    print(
        c.table(
            f"\nQueue (a): BuildScheduler.submit of {n} builds, APScheduler's PostgreSQL data store, in this process",
            ["submit", "total", "per build"],
            [
                [f"{n} new builds", c.fmt_s(first), c.fmt_s(first / n)],
                [f"the same {n} again (all pending)", c.fmt_s(again), c.fmt_s(again / n)],
            ],
        )
    )
    rows, figures = [], {"queued": n, "submit_new_s": round(first, 3), "submit_again_s": round(again, 3)}
    for q in drains:
        label = "reconciler running" if q.reconciler_during_drain else "reconciler stopped"
        rows += [
            [f"[{label}] files written → builds queued (state DB)", "", "", "", c.fmt_s(q.to_queued)],
            [f"[{label}] files written → schedules in APScheduler", "", "", "", c.fmt_s(q.to_scheduled)],
            [
                f"[{label}] gap: a build's finish → the next one's start",
                c.fmt_s(c.median(q.gaps)),
                c.fmt_s(pct(q.gaps, 0.95)),
                c.fmt_s(max(q.gaps, default=float("nan"))),
                "",
            ],
            [
                f"[{label}] one build (started → finished)",
                c.fmt_s(c.median(q.durations)),
                c.fmt_s(pct(q.durations, 0.95)),
                c.fmt_s(max(q.durations, default=float("nan"))),
                "",
            ],
            [f"[{label}] drain (first start → last finish)", "", "", "", f"{c.fmt_s(q.drain)} ({q.n / q.drain:.1f}/s)"],
            [
                f"[{label}] CPU in the drain: reconciler / worker / postgres",
                "",
                "",
                "",
                f"{q.cpu.get('reconciler', 0):.1f} / {q.cpu.get('worker', 0):.1f} / {q.cpu_postgres:.1f} s",
            ],
            [f"[{label}] load 1 min, start → end", "", "", "", f"{q.load[0]:.2f} → {q.load[1]:.2f}"],
        ]
        key = "running" if q.reconciler_during_drain else "stopped"
        figures[f"reconciler_{key}"] = {
            "to_queued_s": round(q.to_queued, 2),
            "to_scheduled_s": round(q.to_scheduled, 2),
            "gap_median_s": round(c.median(q.gaps), 4),
            "gap_p95_s": round(pct(q.gaps, 0.95), 4),
            "build_median_s": round(c.median(q.durations), 4),
            "build_p95_s": round(pct(q.durations, 0.95), 4),
            "drain_s": round(q.drain, 1),
            "cpu_reconciler_s": round(q.cpu.get("reconciler", 0), 1),
            "cpu_worker_s": round(q.cpu.get("worker", 0), 1),
            "cpu_postgres_s": round(q.cpu_postgres, 1),
            "failed": q.failed,
            "load": [round(x, 2) for x in q.load],
        }
    print(
        c.table(
            f"\nQueue (b): {n} environments queued by the reconciler role, then drained by one worker with one slot",
            ["what", "median", "p95", "max", "total"],
            rows,
        )
    )
    return figures


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="40 environments, 1 round, 200 queued")
    ap.add_argument("--envs", type=int, default=200)
    ap.add_argument("--queued", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", default="1,2,4", help="worker counts to compare (comma-separated)")
    ap.add_argument("--total-slots", type=int, default=4, help="slots shared out among the workers")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-queue", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.envs, args.queued, args.rounds = 40, 200, 1
    counts = [int(w) for w in args.workers.split(",")]
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("psycopg").setLevel(logging.ERROR)  # "query cancellation interrupted" when a scheduler stops
    require_postgres()
    c.print_header("bench_scale")
    summary: dict[str, object] = {"envs": args.envs, "total_slots": args.total_slots}
    with c.workdir("scale") as tmp, served_channel(tmp, args.envs) as channel:
        if not args.skip_throughput:
            # (workers, slots each): the same total of slots, then one slot per worker; 4 × 1 is in both.
            configs = sorted({(w, max(args.total_slots // w, 1)) for w in counts} | {(w, 1) for w in counts})
            runs: dict[tuple[int, int], list[Throughput]] = {cfg: [] for cfg in configs}
            for rnd in range(1, args.rounds + 1):
                for workers, slots in configs if rnd % 2 else reversed(configs):  # alternate the order
                    r = run_throughput(tmp, channel, workers, slots, args.envs, rnd)
                    print(
                        f"  {workers} worker(s) × {slots} slot(s), round {rnd}: {r.n} built in {c.fmt_s(r.wall)} "
                        f"(load {r.load[0]:.2f} → {r.load[1]:.2f})",
                        flush=True,
                    )
                    if r.runs != r.n or r.failed:
                        print(f"  WARNING: {r.n} builds completed, {r.runs} build runs logged, {r.failed} failed")
                    runs[(workers, slots)].append(r)
            equal = [r for w in counts for r in runs[(w, max(args.total_slots // w, 1))]]
            single = [r for w in counts for r in runs[(w, 1)]]
            summary["equal_slots"] = report_throughput(
                f"Throughput, {args.total_slots} slots in all (build.concurrency {args.total_slots}): "
                f"{args.envs} environments, files written → all completed and current",
                equal,
            )
            summary["one_slot_each"] = report_throughput(
                f"Throughput, one slot per worker (build.concurrency = workers): {args.envs} environments", single
            )
        if not args.skip_queue:
            submit = submit_cost(args.queued)
            with_reconciler = run_queue(tmp, channel, args.queued, reconciler_during_drain=True)
            without = run_queue(tmp, channel, args.queued, reconciler_during_drain=False)
            summary["queue"] = report_queue(submit, [with_reconciler, without])
    c.print_summary("bench_scale", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
