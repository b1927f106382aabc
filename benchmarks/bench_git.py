"""Benchmark: the Git source over a repository of 10,000 environment files.

The repository (100 namespaces, the same generated specs as ``bench_plan.py``) is made
with the git CLI and read with ``GitSource`` through three transports: a local path,
``git daemon`` (``git://``) and smart HTTP (``git http-backend`` behind the test server),
all on 127.0.0.1. Measured, each read being read → snapshot:

* **cold** — an empty mirror: clone, walk 10,000 files, parse them all (once);
* **poll, no new commit** — ``ls-remote`` finds the same SHA, the last snapshot is returned;
* **1 of 10,000 changed** — a commit changes one file: ``ls-remote``, fetch one commit,
  ``tree_changes``, parse one blob, a new snapshot of 10,000 environments.

Budget: under 100 ms for the last two. "wall" includes the server (same machine; the HTTP
server's handler threads run in this process); "CPU" is this process's CPU time.

Run: ``.venv/bin/python benchmarks/bench_git.py [--envs 10000] [--namespaces 100] [--repeats 15]``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import _common as c
from bench_plan import write_tree

from condaops.config.settings import SourceSettings
from condaops.reconciler.sources.git import GitSource
from tests.support.gitserver import GitRepo, serve_git_daemon, serve_git_http

BUDGET = 0.100
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=10_000)
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    seconds = _Seconds()
    logging.getLogger("condaops.sources.git").addHandler(seconds)
    logging.getLogger("condaops.sources.git").setLevel(logging.INFO)
    c.print_header("bench_git")
    results: dict[str, dict[str, float]] = {}
    with c.workdir("bench-git") as tmp:
        root = tmp / "served"
        repo = GitRepo(root / "envs")
        count = write_tree(repo.path, args.envs, args.namespaces)
        t_commit, _ = c.timed(lambda: repo.commit({}, "10,000 environments"))
        print(f"repository: {count} environment files, committed with the git CLI in {c.fmt_s(t_commit)}")
        for kind in TRANSPORTS:
            results[kind] = measure(kind, root, repo, tmp / "mirrors", args.repeats, count, seconds)
    print_results(results, count, args.repeats)
    ok = all(r["poll_wall"] < BUDGET and r["change_wall"] < BUDGET for r in results.values())
    figures = {f"{k}.{m}": round(v, 4) for k, r in results.items() for m, v in r.items()}
    c.print_summary("bench_git", {"envs": count, "budget_s": BUDGET, "within_budget": ok, **figures})
    return 0 if ok else 1


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
            f"GitSource.read() over {count} files, median of {repeats} (budget {fmt(BUDGET)})",
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
