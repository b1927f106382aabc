"""Benchmark: push → build scheduled, through a signed webhook.

``condaops serve`` runs as users run it (a subprocess) with one Git source served by
``git daemon`` on 127.0.0.1 and a poll ``interval`` of an hour, so only the webhook can
make it read the new commit; packages come from a small channel served on loopback (the
integration tests' ``tool`` package). Each round commits one new environment file, then
times from sending ``POST /hooks/git`` (signed as GitHub signs) until the environment and
its build are in the state DB (read directly: the status API caches lists for 2 s). The
round waits until the previous build has finished, so each pass starts from a quiet service.

Budget: under 1 s. Run: ``.venv/bin/python benchmarks/bench_webhook.py [--pushes 10]``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import _common as c
import yaml

from condaops.reconciler.model import EnvRef
from condaops.reconciler.state.db import make_engine
from condaops.reconciler.state.queries import count_active_builds, list_environments
from tests.integration.conftest import ALIAS, tool_packages
from tests.support.channels import make_channel, serve_directory
from tests.support.gitserver import GitRepo, free_port, serve_git_daemon

BUDGET = 1.0
SECRET = "bench-webhook-secret-0123"
SPEC = "channels: [testchan]\ndependencies: [tool=1.0]\n"


def write_config(root: Path, git_url: str, channel: str, port: int) -> Path:
    config = {
        "store": "store",
        "sources": [{"name": "envs", "git": git_url, "interval": "3600s", "webhook_secret_env": "BENCH_HOOK_SECRET"}],
        "channels": {"default": ["testchan"], "alias": ALIAS, "mirrors": {ALIAS + "testchan": [channel]}},
        "platforms": ["linux-64"],
        "web": {"listen": f"127.0.0.1:{port}"},
    }
    path = root / "condaops.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def post_hook(port: int, git_url: str) -> int:
    body = json.dumps({"ref": "refs/heads/main", "repository": {"clone_url": git_url}}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/hooks/git",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": signature},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return resp.status


def wait_for(predicate, timeout: float, step: float = 0.005) -> bool:  # type: ignore[no-untyped-def]  # a benchmark helper taking test-support objects
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OSError:  # not up yet
            pass
        time.sleep(step)
    return False


def scheduled(engine, ref: EnvRef) -> bool:  # type: ignore[no-untyped-def]  # a benchmark helper taking test-support objects
    return any(e.ref == ref and e.latest is not None for e in list_environments(engine))


def idle(engine) -> bool:  # type: ignore[no-untyped-def]  # a benchmark helper taking test-support objects
    return count_active_builds(engine) == 0


def run(root: Path, pushes: int) -> list[float]:
    served = root / "served"
    repo = GitRepo(served / "envs")
    repo.commit({"team/env0.yaml": SPEC}, "initial")
    channel = root / "testchan"
    make_channel(channel, tool_packages(("1.0",)))
    port = free_port()
    with serve_directory(channel) as chan_url, serve_git_daemon(served) as base:
        git_url = f"{base}/envs"
        config = write_config(root, git_url, str(chan_url), port)
        env = {**os.environ, "BENCH_HOOK_SECRET": SECRET}
        proc = subprocess.Popen(
            [sys.executable, "-m", "condaops.reconciler.cli", "--config", str(config), "serve"],
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            if not wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1), 60, 0.1):
                raise SystemExit("condaops serve did not answer within 60 s")
            engine = make_engine(f"sqlite:///{root / 'store' / 'condaops.db'}")  # migrated by serve by now
            if not wait_for(lambda: scheduled(engine, EnvRef("team", "env0")) and idle(engine), 120, 0.1):
                raise SystemExit("condaops serve did not build the first environment within 120 s")
            return [one_push(repo, engine, port, git_url, i) for i in range(1, pushes + 1)]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def one_push(repo: GitRepo, engine, port: int, git_url: str, i: int) -> float:  # type: ignore[no-untyped-def]  # a benchmark helper taking test-support objects
    wait_for(lambda: idle(engine), 60, 0.05)
    time.sleep(0.3)  # the pass a finished build triggers has run
    repo.commit({f"team/env{i}.yaml": SPEC}, f"add env{i}")
    ref = EnvRef("team", f"env{i}")
    started = time.perf_counter()
    status = post_hook(port, git_url)
    if status != 202 or not wait_for(lambda: scheduled(engine, ref), 30):
        raise SystemExit(f"push {i}: webhook answered {status}; the build was not scheduled within 30 s")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=10)
    args = parser.parse_args()
    c.print_header("bench_webhook")
    with c.workdir("webhook") as root:
        latencies = run(root, args.pushes)
    med = c.median(latencies)
    p95 = statistics.quantiles(latencies, n=20, method="inclusive")[-1] if len(latencies) > 1 else latencies[0]
    rows = [
        ["median", c.fmt_s(med)],
        ["p95", c.fmt_s(p95)],
        ["max", c.fmt_s(max(latencies))],
        ["min", c.fmt_s(min(latencies))],
    ]
    print()
    print(
        c.table(
            f"webhook POST → build scheduled (state DB), {len(latencies)} pushes, budget {c.fmt_s(BUDGET)}",
            ["", "seconds"],
            rows,
        )
    )
    print()
    c.print_summary(
        "bench_webhook",
        {
            "pushes": len(latencies),
            "median_s": round(med, 4),
            "p95_s": round(p95, 4),
            "max_s": round(max(latencies), 4),
            "budget_s": BUDGET,
            "within_budget": p95 < BUDGET,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
