"""Benchmark: a flask build as users run it, against a raw py-rattler script (issue 14, target 3).

The real ``defaults-2021-py27-flask`` channel (18 packages, Python 2.7 + flask) is
served over HTTP on 127.0.0.1 as ``pkgs/main`` (plus an empty ``pkgs/r``), reached
through ``channels.mirrors`` — the way an air-gapped site reaches ``defaults``.

1. **Fresh processes.** ``condaops reconcile --once --wait`` (a new process: interpreter
   start, imports, migrations, the pass, the build, the records, exit) against a raw
   script, also a new process: ``rattler.solve`` + ``rattler.install`` of the same specs
   with the same channels, virtual packages, server and mirror middleware. Cases:
   publishing off with **cold** caches (empty package and repodata caches) and with
   **warm** caches (a copy of filled caches; new store and prefix), then **default
   settings** (publishing on: ``--wait`` also waits for the tarball, image and pushes),
   cold and warm. Rounds alternate which side goes first; the disk is synced before
   each run.
2. **Under ``condaops serve``** (default settings, warm caches): an environment file is
   changed (a new spec each round) and the time until its link points at the new
   prefix is measured, against the watcher's debounce plus the raw script's own warm
   solve + install (measured inside the script, without its start, as ``serve`` has none),
   alternated in the same run. Each round starts once the previous build is published,
   so neither side shares the cores with the previous round's publishing.

Every condaops run is checked: exit status 0, the environment linked to a prefix of
its spec, and (publishing on) the build published without a problem; otherwise the
benchmark stops with an error. Printed: medians, ratios, and condaops' recorded steps.

Run: ``.venv/bin/python benchmarks/bench_build.py [--rounds 3] [--serve-rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _common as c

if TYPE_CHECKING:
    from rattler.networking import Client

    from condaops.config import Settings

STEPS = ("solve", "pip-lock", "lock", "install", "pip-install", "verify", "link")
EXTRAS = ("wheel", "pip", "setuptools", "certifi", "click")  # one more package per serve round
CASES = (("cold", False), ("warm", False), ("cold", True), ("warm", True))  # (caches, publishing)


# --- raw py-rattler ---------------------------------------------------------------------


def raw_client(mirrors: dict[str, list[str]]) -> Client:
    from rattler.networking import Client, MirrorMiddleware

    return Client(
        [MirrorMiddleware({k.rstrip("/") + "/": [u.rstrip("/") + "/" for u in v] for k, v in mirrors.items()})]
    )


async def raw_solve_install(
    prefix: Path, pkgs: Path, repodata: Path, mirrors: dict[str, list[str]], specs: tuple[str, ...] = c.FLASK_SPECS
) -> dict[str, float]:
    from rattler import Gateway, MatchSpec, VirtualPackage, install, solve

    client = raw_client(mirrors)
    started = time.perf_counter()
    records = await solve(
        sources=[c.DEFAULTS_MAIN, c.DEFAULTS_R],
        specs=list(specs),
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
        requested_specs=[MatchSpec(s)._match_spec for s in specs],
    )
    done = time.perf_counter()
    return {
        "total": done - started,
        "solve": solved - started,
        "install": done - solved,
        "packages": float(len(records)),
    }


# --- caches -----------------------------------------------------------------------------


def make_warm_caches(folder: Path, mirrors: dict[str, list[str]]) -> Path:
    """Package and repodata caches holding everything the flask builds (and the serve rounds) need."""
    specs = (*c.FLASK_SPECS, *EXTRAS)
    asyncio.run(raw_solve_install(folder / "prefix", folder / "pkgs", folder / "repodata", mirrors, specs))
    shutil.rmtree(folder / "prefix")
    return folder


def seed_caches(warm: Path | None, pkgs: Path, repodata: Path) -> None:
    """Fresh copies of the warm caches (packages hardlinked: they are never written)."""
    if warm is None:
        return
    shutil.copytree(warm / "pkgs", pkgs, symlinks=True, copy_function=os.link)
    shutil.copytree(warm / "repodata", repodata, symlinks=True)


# --- fresh processes --------------------------------------------------------------------

RAW_SCRIPT = textwrap.dedent("""
    import asyncio, json, sys
    from pathlib import Path
    sys.path.insert(0, {bench!r})
    import bench_build
    folder = Path({folder!r})
    done = asyncio.run(bench_build.raw_solve_install(
        folder / "prefix", folder / "pkgs", folder / "repodata", {mirrors!r}, {specs!r}))
    print(json.dumps(done))
""")


def raw_process(
    work: Path, mirrors: dict[str, list[str]], warm: Path | None, specs: tuple[str, ...]
) -> dict[str, float]:
    """The raw script as a new process; its wall time and its own (in-script) timings.
    A run killed by a signal (py-rattler crashed with SIGSEGV once under heavy load) is
    reported and run again once, from the same start."""
    script = RAW_SCRIPT.format(bench=str(Path(__file__).parent), mirrors=mirrors, folder=str(work), specs=specs)
    for attempt in (1, 2):
        for name in ("prefix", "pkgs", "repodata"):
            shutil.rmtree(work / name, ignore_errors=True)
        seed_caches(warm, work / "pkgs", work / "repodata")
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode >= 0 or attempt == 2:
            break
        print(f"bench_build: the raw script died of signal {-proc.returncode}; running it again", file=sys.stderr)
    if proc.returncode != 0 or not (work / "prefix" / "conda-meta").is_dir():
        sys.exit(f"bench_build: the raw script failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return {"wall": wall, **json.loads(proc.stdout.strip().splitlines()[-1])}


def condaops_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("condaops")
    if not exe.is_file():
        sys.exit(f"bench_build: the condaops CLI is not at {exe} (pip install -e '.[test]')")
    return [str(exe)]


def write_store(work: Path, mirrors: dict[str, list[str]], warm: Path | None, publish: bool, extra: str = "") -> Path:
    """A folder with ``condaops.yaml`` (default settings but for publishing) and warm caches if asked."""
    (work / "envs" / "team").mkdir(parents=True)
    config = c.write_config(work, mirrors=mirrors, extra=("" if publish else "publish:\n  enabled: false\n") + extra)
    seed_caches(warm, work / "store" / ".cache" / "pkgs", work / "store" / ".cache" / "repodata")
    return config


def condaops_process(work: Path, mirrors: dict[str, list[str]], warm: Path | None, publish: bool) -> dict[str, float]:
    """``condaops reconcile --once --wait`` as a new process; its wall time and recorded steps."""
    config = write_store(work, mirrors, warm, publish)
    (work / "envs" / "team" / "flask.yaml").write_text("dependencies:\n" + "".join(f"  - {s}\n" for s in c.FLASK_SPECS))
    start = time.perf_counter()
    proc = subprocess.run(
        [*condaops_cmd(), "--config", str(config), "--log-level", "warning", "reconcile", "--once", "--wait"],
        capture_output=True,
        text=True,
        env={**os.environ, "CONDAOPS_CONFIG": ""},
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench_build: condaops reconcile failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    build = current_build(c.load(config))
    if publish and (build.published_at is None or build.publish_error):
        sys.exit(f"bench_build: publishing did not run or failed: {build.publish_error or 'not published'}")
    if not publish and build.published_at is not None:
        sys.exit("bench_build: the build was published with publishing off")
    return {"wall": wall, **{name: float(build.timings.get(name, 0.0)) for name in STEPS}}


def current_build(settings: Settings) -> Any:
    """The linked build of ``team/flask``, checked: the link points at its prefix."""
    from condaops.reconciler.model import EnvRef
    from condaops.reconciler.state.db import make_engine
    from condaops.reconciler.state.queries import get_build, get_environment
    from condaops.reconciler.store import StoreLayout

    engine = make_engine(settings.database_url)
    try:
        env = get_environment(engine, EnvRef("team", "flask"))
        build = get_build(engine, env.current.build_id) if env and env.current else None
    finally:
        engine.dispose()
    layout = StoreLayout.of(settings)
    if build is None or not build.prefix:
        sys.exit("bench_build: the build left no current build")
    if os.path.realpath(layout.env_link(EnvRef("team", "flask"))) != os.path.realpath(layout.absolute(build.prefix)):
        sys.exit("bench_build: the environment link does not point at the build's prefix")
    return build


def fresh_processes(tmp: Path, mirrors: dict[str, list[str]], warm: Path, rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for caches, publish in CASES:
        ours, raws = [], []
        for i in range(rounds):
            for side in ("condaops", "raw") if i % 2 == 0 else ("raw", "condaops"):
                work = tmp / f"fresh-{caches}-{publish}-{i}-{side}"
                work.mkdir(parents=True)
                settle_disk()
                seed = warm if caches == "warm" else None
                if side == "raw":
                    raws.append(raw_process(work, mirrors, seed, c.FLASK_SPECS))
                else:
                    ours.append(condaops_process(work, mirrors, seed, publish))
                shutil.rmtree(work, ignore_errors=True)
        label = f"{caches}, publishing {'on (default)' if publish else 'off'}"
        o, r = c.median([x["wall"] for x in ours]), c.median([x["wall"] for x in raws])
        out[label] = {
            "condaops_s": o,
            "raw_s": r,
            "ratio": o / r,
            "steps": {s: c.median([x[s] for x in ours]) for s in STEPS},
        }
        print(f"{label}: condaops {c.fmt_s(o)}, raw {c.fmt_s(r)}, ratio {o / r:.2f}", file=sys.stderr, flush=True)
    return out


# --- under serve ------------------------------------------------------------------------


def under_serve(tmp: Path, mirrors: dict[str, list[str]], warm: Path, rounds: int) -> dict[str, Any]:
    """File change → link switched under ``condaops serve``, against debounce + raw warm build."""
    import urllib.request

    from condaops.reconciler.model import EnvRef
    from condaops.reconciler.sources.watch import DirectoryWatcher
    from condaops.reconciler.store import StoreLayout

    debounce = float(inspect.signature(DirectoryWatcher).parameters["quiet"].default)
    work = tmp / "serve"
    port = free_port()
    config = write_store(work, mirrors, warm, True, extra=f"web:\n  listen: 127.0.0.1:{port}\n")
    link = StoreLayout.of(c.load(config)).env_link(EnvRef("team", "flask"))
    env_file = work / "envs" / "team" / "flask.yaml"
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(
        [*condaops_cmd(), "--config", str(config), "--log-level", "warning", "serve"],
        cwd=work,
        env={**os.environ, "CONDAOPS_CONFIG": ""},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    ours, raws = [], []
    try:
        end = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > end:
                    sys.exit(f"bench_build: condaops serve did not start; see {tmp / 'serve.log'}")
                time.sleep(0.2)
        time.sleep(2)  # the first pass (an empty source) is over
        for i in range(rounds + 1):  # round 0 loads the build code (imports): not timed
            specs = (*c.FLASK_SPECS, EXTRAS[i % len(EXTRAS)])
            for side in ("condaops", "raw") if i % 2 == 0 else ("raw", "condaops"):
                settle_disk()
                if side == "raw":
                    folder = tmp / f"serve-raw-{i}"
                    folder.mkdir()
                    if i:
                        raws.append(raw_process(folder, mirrors, warm, specs)["total"])
                    shutil.rmtree(folder, ignore_errors=True)
                    continue
                before = os.path.realpath(link) if link.is_symlink() else None
                started = time.perf_counter()
                env_file.write_text("dependencies:\n" + "".join(f"  - {s}\n" for s in specs))
                while (os.path.realpath(link) if link.is_symlink() else None) == before:
                    if proc.poll() is not None or time.perf_counter() - started > 300:
                        sys.exit(f"bench_build: the link did not switch under serve; see {tmp / 'serve.log'}")
                    time.sleep(0.005)
                if i:
                    ours.append(time.perf_counter() - started)
                print(f"serve round {i}: link switched after {c.fmt_s(time.perf_counter() - started)}", file=sys.stderr)
                # Each round starts from a settled service: the build's publishing (default
                # settings, 1.5–2.5 s for flask) would otherwise share the cores with the next
                # round's raw script or build, whichever comes next.
                wait_published(config, proc, tmp / "serve.log")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    o, r = c.median(ours), c.median(raws)
    return {
        "condaops_s": o,
        "raw_warm_s": r,
        "debounce_s": debounce,
        "ratio": (o - debounce) / r,
        "target_s": debounce + 1.2 * r,
    }


def wait_published(config: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until the current build of ``team/flask`` is published (checked: without a problem)."""
    from condaops.reconciler.model import EnvRef
    from condaops.reconciler.state.db import make_engine
    from condaops.reconciler.state.queries import get_build, get_environment

    engine = make_engine(c.load(config).database_url)
    end = time.monotonic() + 120
    try:
        while True:
            env = get_environment(engine, EnvRef("team", "flask"))
            build = get_build(engine, env.current.build_id) if env and env.current else None
            if build is not None and build.published_at is not None:
                if build.publish_error:
                    sys.exit(f"bench_build: publishing under serve failed: {build.publish_error}")
                return
            if proc.poll() is not None or time.monotonic() > end:
                sys.exit(f"bench_build: the build under serve was not published; see {log}")
            time.sleep(0.1)
    finally:
        engine.dispose()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- main -------------------------------------------------------------------------------


def settle_disk() -> None:
    """Flush what earlier builds wrote, so no build pays for the previous one's writeback."""
    os.sync()
    time.sleep(0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="fresh-process rounds per case (default 3; 0: serve only)")
    ap.add_argument("--serve-rounds", type=int, default=3, help="file changes under serve (default 3)")
    args = ap.parse_args()
    c.require_realdata()
    c.print_header("bench_build")
    with c.workdir("bench-build") as tmp, c.serve_defaults(tmp) as mirrors:
        warm = make_warm_caches(tmp / "warm-caches", mirrors)
        fresh = fresh_processes(tmp, mirrors, warm, args.rounds) if args.rounds else {}
        serve = under_serve(tmp, mirrors, warm, args.serve_rounds)
    report(args, fresh, serve)
    return 0


def report(args: argparse.Namespace, fresh: dict[str, Any], serve: dict[str, Any]) -> None:
    print()
    print(
        c.table(
            f"(1) flask build, fresh processes: median of {args.rounds}, order alternated",
            ("case", "condaops reconcile --once --wait", "raw script", "ratio", "target"),
            [
                (
                    label,
                    c.fmt_s(v["condaops_s"]),
                    c.fmt_s(v["raw_s"]),
                    f"{v['ratio']:.2f}",
                    "<= 1.2" if "off" in label else "",
                )
                for label, v in fresh.items()
            ],
        )
    )
    print()
    print(
        c.table(
            "condaops steps (builds.timings in the state DB), medians",
            ("step", *fresh),
            [
                (s, *(c.fmt_s(v["steps"][s]) for v in fresh.values()))
                for s in STEPS
                if any(v["steps"][s] for v in fresh.values())
            ],
        )
    )
    print()
    print(
        c.table(
            "(2) condaops serve, default settings, warm caches: file change -> link switched, "
            f"median of {args.serve_rounds}",
            ("figure", "value"),
            [
                ("condaops serve: change -> link switched", c.fmt_s(serve["condaops_s"])),
                ("watcher debounce (quiet period)", c.fmt_s(serve["debounce_s"])),
                ("raw script, warm solve + install (inside the script)", c.fmt_s(serve["raw_warm_s"])),
                ("target: debounce + 1.2 x raw", c.fmt_s(serve["target_s"])),
                ("ratio (serve - debounce) / raw", f"{serve['ratio']:.2f} (target <= 1.2)"),
            ],
        )
    )
    c.print_summary(
        "bench_build",
        {
            "rounds": args.rounds,
            "fresh": {k: {kk: round(vv, 3) for kk, vv in v.items() if kk != "steps"} for k, v in fresh.items()},
            "serve": {k: round(v, 3) for k, v in serve.items()},
        },
    )


if __name__ == "__main__":
    sys.exit(main())
