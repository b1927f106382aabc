"""Benchmark: the reconcile pass after a Git poll, over a repository of 10,000 environments.

The repository (100 namespaces, the same generated specs as ``bench_plan.py``) is made
with the git CLI and served on 127.0.0.1 (a local path, ``git daemon`` (``git://``) and
smart HTTP (``git http-backend``)).

**The pass** (the headline, per transport): ``Reconciler.reconcile_once`` — what ``serve``
runs after every poll — with the real ``GitSource`` (``ls-remote``, fetch, tree diff) and
the state DB holding 10,000 environments with completed, linked builds (filled as in
``bench_plan``):

* **no new commit** — the poll finds the same SHA: nothing decided (checked);
* **one file changed** — a commit changes one environment file: the pass fetches it,
  diffs the trees, parses one blob and queues exactly that environment (checked); then
  the pass after it (its queued build recorded: one environment decided again);
* **full check** — ``reconcile.full_check`` passed: every environment planned, every
  prefix and link checked (checked).

**The read alone** (``GitSource.read()``, cold / poll / one change, with its fetch and
tree+snapshot parts from the source's log) is kept beside it for the breakdown.

Budgets (issue 14): no-op pass 100 ms, one-change pass 150 ms, full check 1 s; each figure
is printed with its ratio to the budget. "wall" includes the server (same machine).

Run: ``.venv/bin/python benchmarks/bench_git.py [--envs 10000] [--namespaces 100]
[--repeats 7] [--transports local,git-daemon,http]``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import _common as c
from bench_plan import MovableClock, mark_built, require, write_tree

from condaops.config.settings import SourceSettings
from condaops.reconciler.sources.git import GitSource
from tests.support.gitserver import GitRepo, serve_git_daemon, serve_git_http

BUDGET = 0.100  # the read alone (poll, one change)
PASS_BUDGET = {"noop": 0.100, "change": 0.150, "full": 1.0}  # issue 14, target 1
TRANSPORTS = ("local", "git-daemon", "http")


class _Seconds(logging.Handler):
    """Collects the ``seconds=`` of git_fetched / git_read log records."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.last: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        found = re.search(r"seconds=([\d.]+)", text)
        if found:
            self.last[text.split()[0]] = float(found.group(1))


def timed_read(source: GitSource) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    snapshot = source.read()
    return time.perf_counter() - wall, time.process_time() - cpu, snapshot


@contextlib.contextmanager
def served(kind: str, root: Path) -> Iterator[str]:
    if kind == "local":
        yield str(root)
    elif kind == "git-daemon":
        with serve_git_daemon(root) as url:
            yield url
    else:
        with serve_git_http(root) as url:
            yield str(url)


def measure(
    kind: str, root: Path, repo: GitRepo, mirrors: Path, repeats: int, envs: int, seconds: _Seconds
) -> dict[str, float]:
    with served(kind, root) as base:
        settings = SourceSettings(name=f"bench-{kind}", git=f"{base}/envs")
        with GitSource(settings, cache_dir=mirrors) as source:
            cold, _, snap = timed_read(source)
            assert len(snap.envs) == envs and snap.error is None, snap.error  # type: ignore[attr-defined]
            polls = [timed_read(source)[:2] for _ in range(repeats)]
            changes, fetches, reads = [], [], []
            for i in range(repeats):
                target = f"team-{i % 100:03d}/env-000.yaml"
                content = f"dependencies:\n  - numpy >=1.{i}  # {kind}\n"  # new for every read
                repo.commit({target: content}, f"bench {kind} {i}")
                parsed = source.parsed_blobs
                wall, cpu, snap = timed_read(source)
                assert snap.revision == repo.head() and source.parsed_blobs == parsed + 1  # type: ignore[attr-defined]
                changes.append((wall, cpu))
                fetches.append(seconds.last.get("git_fetched", float("nan")))
                reads.append(seconds.last.get("git_read", float("nan")))
    return {
        "cold": cold,
        "poll_wall": c.median([w for w, _ in polls]),
        "poll_cpu": c.median([u for _, u in polls]),
        "change_wall": c.median([w for w, _ in changes]),
        "change_cpu": c.median([u for _, u in changes]),
        "change_fetch": c.median(fetches),
        "change_tree_and_snapshot": c.median(reads),
    }


def measure_pass(kind: str, root: Path, repo: GitRepo, tmp: Path, repeats: int, envs: int) -> dict[str, float]:
    """The serve pass over a Git source on this transport (see the module docstring)."""
    from condaops.reconciler.plan import NOOP, UP_TO_DATE
    from condaops.reconciler.service import Reconciler
    from condaops.reconciler.state.db import make_engine, migrate

    site = tmp / f"site-{kind}"
    site.mkdir()
    with served(kind, root) as base:
        config = site / "condaops.yaml"
        config.write_text(
            f"store: store\nsources:\n  - git: {base}/envs\nchannels:\n  default: [defaults]\nplatforms: [linux-64]\n"
        )
        settings = c.load(config)
        engine = make_engine(settings.database_url)
        migrate(engine)
        clock = MovableClock()
        rec = Reconciler(settings, engine, clock=clock)
        try:
            first = rec.reconcile_once()
            require(first.full and len(first.queued) == envs, f"{kind}: first pass queued {len(first.queued)}")
            mark_built(rec, first)
            settled = rec.reconcile_once()
            ups = sum(1 for a in settled.plan.actions if a.kind == NOOP and a.reason == UP_TO_DATE)
            require(ups == envs, f"{kind}: {ups} of {envs} UpToDate after filling")
            noop = []
            for _ in range(repeats):
                t, r = c.timed(rec.reconcile_once)
                quiet = r.planned == 0 and not r.queued and not r.full
                require(quiet, f"{kind}: a pass with no commit decided nothing")
                noop.append(t)
            change, after = [], []
            for i in range(repeats):
                target = f"team-{i % 100:03d}/env-001.yaml"
                version = f"{TRANSPORTS.index(kind) + 1}.{i}"  # a spec no earlier transport's run committed
                repo.commit({target: f"dependencies:\n  - scipy >={version}\n"}, f"pass {kind} {i}")
                t, r = c.timed(rec.reconcile_once)
                require(
                    len(r.queued) == 1 and r.planned == 1 and r.snapshots[0].revision == repo.head(),
                    f"{kind}: the pass after one commit queued {len(r.queued)}, decided {r.planned}",
                )
                change.append(t)
                t, r = c.timed(rec.reconcile_once)
                require(r.planned == 1 and not r.queued, f"{kind}: the pass after it decided the queued build")
                after.append(t)
            full = []
            for _ in range(3):
                clock.pass_full_check(settings)
                t, r = c.timed(rec.reconcile_once)
                require(r.full and r.planned >= envs, f"{kind}: the full check decided {r.planned}")
                full.append(t)
        finally:
            rec.close()
            engine.dispose()
    return {
        "pass_noop": c.median(noop),
        "pass_change": c.median(change),
        "pass_after_change": c.median(after),
        "pass_full": c.median(full),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=10_000)
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--transports", default=",".join(TRANSPORTS))
    args = parser.parse_args()
    transports = [t for t in args.transports.split(",") if t]
    seconds = _Seconds()
    logging.getLogger("condaops.sources.git").addHandler(seconds)
    logging.getLogger("condaops.sources.git").setLevel(logging.INFO)
    c.print_header("bench_git")
    results: dict[str, dict[str, float]] = {}
    passes: dict[str, dict[str, float]] = {}
    with c.workdir("bench-git") as tmp:
        root = tmp / "served"
        repo = GitRepo(root / "envs")
        count = write_tree(repo.path, args.envs, args.namespaces)
        t_commit, _ = c.timed(lambda: repo.commit({}, "10,000 environments"))
        print(f"repository: {count} environment files, committed with the git CLI in {c.fmt_s(t_commit)}")
        for kind in transports:
            passes[kind] = measure_pass(kind, root, repo, tmp, args.repeats, count)
            print(f"  {kind}: pass measured (load {os.getloadavg()[0]:.2f})", flush=True)
        for kind in transports:
            results[kind] = measure(kind, root, repo, tmp / "mirrors", args.repeats, count, seconds)
    print_passes(passes, count, args.repeats)
    print_results(results, count, args.repeats)
    ok = all(
        p["pass_noop"] < PASS_BUDGET["noop"]
        and p["pass_change"] < PASS_BUDGET["change"]
        and p["pass_full"] < PASS_BUDGET["full"]
        for p in passes.values()
    )
    figures = {f"{k}.{m}": round(v, 4) for k, r in passes.items() for m, v in r.items()}
    figures |= {f"{k}.read_{m}": round(v, 4) for k, r in results.items() for m, v in r.items()}
    c.print_summary("bench_git", {"envs": count, "within_budget": ok, **figures})
    return 0


def print_passes(passes: dict[str, dict[str, float]], count: int, repeats: int) -> None:
    rows = []
    for kind, p in passes.items():
        for name, key, budget in (
            ("no new commit", "pass_noop", "noop"),
            ("one file changed", "pass_change", "change"),
            ("  the pass after it", "pass_after_change", "change"),
            ("full check", "pass_full", "full"),
        ):
            b = PASS_BUDGET[budget]
            rows.append((f"{kind}: {name}", c.fmt_s(p[key]), c.fmt_s(b), f"{p[key] / b:.2f}"))
    print()
    print(
        c.table(
            f"Reconciler.reconcile_once after a poll, {count} recorded environments (median of {repeats})",
            ("pass", "median", "budget", "ratio"),
            rows,
        )
    )


def print_results(results: dict[str, dict[str, float]], count: int, repeats: int) -> None:
    fmt: Callable[[float], str] = c.fmt_s
    rows = [
        (
            kind,
            fmt(r["cold"]),
            fmt(r["poll_wall"]),
            fmt(r["poll_cpu"]),
            fmt(r["change_wall"]),
            fmt(r["change_cpu"]),
            fmt(r["change_fetch"]),
            fmt(r["change_tree_and_snapshot"]),
        )
        for kind, r in results.items()
    ]
    print()
    print(
        c.table(
            f"Of it, the read alone: GitSource.read() over {count} files, median of {repeats} (budget {fmt(BUDGET)})",
            (
                "transport",
                "cold",
                "poll wall",
                "poll CPU",
                "1-change wall",
                "1-change CPU",
                "of it: fetch",
                "of it: tree+snapshot",
            ),
            rows,
        )
    )
    print()


if __name__ == "__main__":
    sys.exit(main())
