"""Benchmark: memory of ``condaops serve`` while 10 environments build and publish at once.

A real ``condaops serve`` process (web server on, default publishing: conda-pack
tarball, SBOM, image on the built-in base pushed to the built-in registry) with a
directory source and ``build.concurrency: 10``. The real flask channel
(``../shared/realdata``) is served on 127.0.0.1 as ``defaults`` through
``channels.mirrors``.

1. **idle**: the service started on an empty source and settled (median of its RSS over
   a few seconds, read from ``/proc/<pid>/status``); then one environment (``python=2.7``)
   is built and published and the RSS read again (**idle after one build**: the build and
   publishing code and libraries are loaded once per process);
2. ten environment files are written at once (``python=2.7`` and one more package each:
   ten specs, ten prefixes), and the RSS is sampled every 20 ms until all ten are linked
   *and* published; **peak** is the kernel's high-water mark (``VmHWM``), which no
   sampling can miss;
3. **after**: the service left alone for ``--settle`` seconds, then its RSS (median of a
   few seconds).

The benchmark stops with an error unless every build succeeded, every publish ran
without a problem, and the builds really overlapped (the most builds running at the
same moment, from their recorded start and end times, is printed).

Run: ``.venv/bin/python benchmarks/bench_memory.py [--envs 10] [--concurrency 10] [--env KEY=VALUE]``
(``--env`` sets a variable for the service only, e.g. ``MALLOC_ARENA_MAX=2``, to compare).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import _common as c

EXTRAS = ("flask", "click", "jinja2", "werkzeug", "itsdangerous", "markupsafe", "wheel", "pip", "setuptools", "certifi")
MIB = 1024 * 1024


def status_kib(pid: int, key: str) -> int:
    """``VmRSS``/``VmHWM`` of ``pid`` in KiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def settled_rss(pid: int, seconds: float) -> float:
    """Median RSS (bytes) over ``seconds``."""
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append(status_kib(pid, "VmRSS") * 1024)
        time.sleep(0.1)
    return statistics.median(samples)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"bench_memory: condaops serve exited with {proc.returncode} before it was up")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit("bench_memory: condaops serve did not answer /healthz within 60 s")


def progress(settings: Any, names: list[str]) -> tuple[int, int, list[Any]]:
    """(linked, published) counts of the environments and their current builds."""
    from condaops.reconciler.state.db import make_engine
    from condaops.reconciler.state.queries import get_build, list_environments

    engine = make_engine(settings.database_url)
    try:
        envs = {str(e.ref): e for e in list_environments(engine)}
        builds = [
            get_build(engine, envs[f"team/{n}"].current.build_id)
            for n in names
            if f"team/{n}" in envs and envs[f"team/{n}"].current is not None
        ]
    finally:
        engine.dispose()
    builds = [b for b in builds if b is not None]
    return len(builds), sum(b.published_at is not None for b in builds), builds


def failures(settings: Any) -> list[str]:
    from condaops.reconciler.state.db import make_engine
    from condaops.reconciler.state.queries import list_builds

    engine = make_engine(settings.database_url)
    try:
        return [f"{b.ref}: {b.reason} {b.message}" for b in list_builds(engine).items if b.state == "failed"]
    finally:
        engine.dispose()


def wait_done(settings: Any, names: list[str], publishing: bool, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Until ``names`` are linked (and published, when publishing is on)."""
    end = time.monotonic() + timeout
    while True:
        linked, published, _ = progress(settings, names)
        if published == len(names) or (not publishing and linked == len(names)):
            return
        if proc.poll() is not None or time.monotonic() > end:
            sys.exit(f"bench_memory: the warm-up build did not finish ({linked} linked, {published} published)")
        if failed := failures(settings):
            sys.exit("bench_memory: a build failed: " + "; ".join(failed))
        time.sleep(0.2)


def overlap(builds: list[Any]) -> int:
    """The most builds running at the same moment, from their recorded start and end."""
    events = sorted(
        [(b.started_at, 1) for b in builds if b.started_at] + [(b.finished_at, -1) for b in builds if b.finished_at]
    )
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def run(tmp: Path, mirrors: dict[str, list[str]], args: argparse.Namespace) -> dict[str, Any]:
    folder = tmp / "service"
    (folder / "envs" / "team").mkdir(parents=True)
    port = free_port()
    config = c.write_config(
        folder,
        mirrors=mirrors,
        extra=f"build:\n  concurrency: {args.concurrency}\nweb:\n  listen: 127.0.0.1:{port}\n",
    )
    settings = c.load(config)
    env = {**os.environ, "CONDAOPS_CONFIG": ""}
    env.pop("MALLOC_ARENA_MAX", None)
    env.update(dict(item.split("=", 1) for item in args.env))
    publishing = env.get("CONDAOPS_PUBLISH__ENABLED", "true").lower() not in ("false", "0", "no")
    exe = Path(sys.executable).with_name("condaops")
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(exe), "--config", str(config), "--log-level", "warning", "serve"],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        time.sleep(args.settle)
        idle = settled_rss(proc.pid, 3)
        (folder / "envs" / "team" / "warmup.yaml").write_text("dependencies:\n  - python=2.7\n")
        wait_done(settings, ["warmup"], publishing, proc, args.timeout)
        time.sleep(args.settle)
        warm_idle = settled_rss(proc.pid, 3)
        names = list(EXTRAS[: args.envs])
        for name in names:
            (folder / "envs" / "team" / f"{name}.yaml").write_text(f"dependencies:\n  - python=2.7\n  - {name}\n")
        started = time.monotonic()
        samples: list[tuple[float, int]] = []
        deadline = started + args.timeout
        last_check = 0.0
        while True:
            now = time.monotonic()
            samples.append((now - started, status_kib(proc.pid, "VmRSS") * 1024))
            if proc.poll() is not None:
                sys.exit(f"bench_memory: condaops serve exited with {proc.returncode}; see {tmp / 'serve.log'}")
            if now - last_check > 1.0:
                last_check = now
                linked, published, builds = progress(settings, names)
                if published == len(names) or (not publishing and linked == len(names)):
                    break
                if failed := failures(settings):
                    sys.exit("bench_memory: a build failed: " + "; ".join(failed))
            if now > deadline:
                sys.exit(f"bench_memory: {linked} linked, {published} published of {len(names)} after {args.timeout} s")
            time.sleep(0.02)
        busy = time.monotonic() - started
        peak = status_kib(proc.pid, "VmHWM") * 1024
        problems = [f"{b.ref}: {b.publish_error}" for b in builds if b.publish_error]
        if problems:
            sys.exit("bench_memory: publishing had problems: " + "; ".join(problems))
        time.sleep(args.settle)
        after = settled_rss(proc.pid, 3)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return {
        "idle_bytes": idle,
        "warm_idle_bytes": warm_idle,
        "peak_bytes": peak,
        "peak_sampled_bytes": max(s for _, s in samples),
        "after_bytes": after,
        "after_over_idle": after / idle,
        "after_over_warm_idle": after / warm_idle,
        "busy_s": busy,
        "most_parallel_builds": overlap(builds),
        "builds": len(builds),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--envs", type=int, default=10, choices=range(1, len(EXTRAS) + 1), metavar="1..10")
    parser.add_argument("--concurrency", type=int, default=10, help="build.concurrency (default 10)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="for the service only")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds left alone before idle/after (default 5)")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    c.require_realdata()
    c.print_header("bench_memory")
    with c.workdir("memory") as tmp, c.serve_defaults(tmp) as mirrors:
        figures = run(tmp, mirrors, args)
    mib = {k: v / MIB for k, v in figures.items() if k.endswith("_bytes")}
    print(
        c.table(
            f"condaops serve, {figures['builds']} environments built and published with build.concurrency "
            f"{args.concurrency} (at most {figures['most_parallel_builds']} builds at once), "
            f"{' '.join(args.env) or 'default environment'}",
            ["figure", "value"],
            [
                ("RSS idle (started, nothing built yet)", f"{mib['idle_bytes']:.0f} MiB"),
                ("RSS idle after one build + publish (code loaded)", f"{mib['warm_idle_bytes']:.0f} MiB"),
                ("peak RSS (VmHWM)", f"{mib['peak_bytes']:.0f} MiB (target < 250 MiB)"),
                ("RSS after, settled", f"{mib['after_bytes']:.0f} MiB"),
                ("after / idle", f"{figures['after_over_idle']:.2f} (target <= 1.10)"),
                ("after / idle after one build", f"{figures['after_over_warm_idle']:.2f}"),
                ("all built and published in", c.fmt_s(figures["busy_s"])),
            ],
        )
    )
    c.print_summary(
        "bench_memory",
        {
            **{k.replace("_bytes", "_mib"): round(v, 1) for k, v in mib.items()},
            **{k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items() if not k.endswith("_bytes")},
            "env": args.env,
            "concurrency": args.concurrency,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
