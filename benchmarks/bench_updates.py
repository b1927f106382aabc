"""Benchmark: a new package version in the channel → the update pull request on the forge.

``condaops serve`` runs as users run it (a subprocess) with one Git source served by
``git daemon`` on 127.0.0.1 with pushes enabled, a locked environment (``condaops lock``,
committed), ``updates`` every ``--every`` seconds with no cooldown, packages from a small
channel on loopback, and a GitHub stand-in on loopback (``tests.support.forge``: it checks
every request against GitHub's API). Each round publishes a newer ``tool`` into the channel
(written and indexed) and times until the one update pull request's title names it: the
wait for the next scheduled run plus the run itself (solve, commit, push, pull request).
The service's log lines give the run's own seconds (``updates_checked``) and the forge's
(``update_published``). The last pull request's body is printed as IT sees it.

Run: ``.venv/bin/python benchmarks/bench_updates.py [--rounds 3] [--every 10]``.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import _common as c
import yaml

from tests.integration.conftest import ALIAS, tool_packages
from tests.support.channels import PackageSpec, make_channel, serve_directory, write_package_spec
from tests.support.forge import serve_forge
from tests.support.gitserver import GitRepo, free_port, serve_git_daemon

TOKEN = "bench-forge-token-4567"


def write_config(root: Path, git_url: str, channel: str, port: int, forge_url: str, every: float) -> Path:
    source = {
        "name": "envs",
        "git": git_url,
        "path": "envs",
        "interval": "3600s",
        "status_api": "github",
        "status_url": forge_url,
        "status_repo": "acme/envs",
        "status_token_env": "BENCH_FORGE_TOKEN",
        "updates": {"schedule": f"{every}s", "labels": ["dependencies"]},
    }
    config = {
        "store": "store",
        "sources": [source],
        "channels": {"default": ["testchan"], "alias": ALIAS, "mirrors": {ALIAS + "testchan": [channel]}},
        "platforms": ["linux-64"],
        "web": {"listen": f"127.0.0.1:{port}"},
    }
    path = root / "condaops.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def wait_for(predicate, timeout: float, step: float = 0.01) -> bool:  # type: ignore[no-untyped-def]  # a benchmark helper taking test-support objects
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OSError:
            pass
        time.sleep(step)
    return False


def cli(config: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "condaops.reconciler.cli", "--config", str(config), *args], check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"condaops {' '.join(args)} failed")


def run(root: Path, rounds: int, every: float) -> tuple[list[float], list[float], list[float], str, int]:
    served = root / "served"
    repo = GitRepo(served / "envs")
    channel = root / "testchan"
    make_channel(channel, tool_packages(("1.0",)))
    port = free_port()
    log_file = root / "serve.log"
    with (
        serve_directory(channel) as chan_url,
        serve_git_daemon(served, receive_pack=True) as base,
        serve_forge("github", repo="acme/envs", token=TOKEN, repo_path=repo.path) as forge,
    ):
        git_url = f"{base}/envs"
        config = write_config(root, git_url, str(chan_url), port, forge.url, every)
        repo.write({"envs/team/app.yaml": "dependencies:\n  - tool\n"})
        cli(config, "lock", "--dir", str(repo.path))
        repo.commit(message="team/app, locked")
        env = {**os.environ, "BENCH_FORGE_TOKEN": TOKEN}
        with log_file.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "condaops.reconciler.cli", "--config", str(config), "serve"], stderr=log, env=env
            )
        try:
            if not wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1), 60, 0.1):
                raise SystemExit("condaops serve did not answer within 60 s")
            wait_for(lambda: "updates_checked" in log_file.read_text(errors="replace"), 60, 0.1)  # the first run
            latencies = []
            for i in range(rounds):
                version = f"{i + 2}.0"
                write_package_spec(channel, PackageSpec("tool", version, depends=("libtool-data",)))
                make_channel(channel, [])
                started = time.perf_counter()
                if not wait_for(lambda v=version: any(p["title"].endswith(f"→ {v}") for p in forge.open_pulls()), 120):
                    raise SystemExit(f"round {i}: no pull request for tool {version} within 120 s")
                latencies.append(time.perf_counter() - started)
            log = log_file.read_text(errors="replace")
            runs = [float(x) for x in re.findall(r"updates_checked .*?proposed=1 .*?seconds=([\d.]+)", log)]
            posts = [float(x) for x in re.findall(r"update_published .*?seconds=([\d.]+)", log)]
            (pull,) = forge.open_pulls()
            return latencies, runs, posts, pull["body"], len(forge.violations) + (len(forge.pulls) - 1)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--every", type=float, default=10.0, help="updates.schedule interval, seconds")
    args = parser.parse_args()
    c.print_header("bench_updates")
    with c.workdir("updates") as root:
        latencies, runs, posts, body, problems = run(root, args.rounds, args.every)
    print()
    print(
        c.table(
            f"new version in the channel → update pull request (every {args.every:g} s), {len(latencies)} rounds",
            ["", "seconds"],
            [
                ["median", c.fmt_s(c.median(latencies))],
                ["max", c.fmt_s(max(latencies))],
                ["the run itself (solve, commit, push), median", c.fmt_s(c.median(runs))],
                ["posting to the forge, median", c.fmt_s(c.median(posts))],
            ],
        )
    )
    print(f"extra pull requests or requests refused as off-API: {problems}")
    print("\nThe last pull request's body:\n")
    print(body)
    c.print_summary(
        "bench_updates",
        {
            "rounds": len(latencies),
            "every_s": args.every,
            "median_s": round(c.median(latencies), 3),
            "max_s": round(max(latencies), 3),
            "run_median_s": round(c.median(runs), 3),
            "publish_median_s": round(c.median(posts), 3),
            "problems": problems,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
