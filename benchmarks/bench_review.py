"""Benchmark: a pull-request push → the review comment updated on the forge, through a
signed webhook; and the solves a target push avoids.

``condaops serve`` runs as users run it (a subprocess) with one Git source served by
``git daemon`` on 127.0.0.1 (``change_requests: true``, a poll ``interval`` of an hour, so
only webhooks make it read), packages from a small channel on loopback, and a GitHub
stand-in on loopback (``tests.support.forge``: it checks every request against GitHub's
API) as the forge. Each round commits to the pull request's branch, moves
``refs/pull/1/head``, sends GitHub's signed ``pull_request`` webhook and times until the
one review comment on the forge names the new head, and until it carries its final verdict
(previews done: the first round builds one, later rounds reuse it, the spec being the same).
Then ``main`` moves on elsewhere
(another environment): the review is made again against the new target, and the
service's log line tells how many solves it ran and how many the cache answered.

Run: ``.venv/bin/python benchmarks/bench_review.py [--pushes 5]``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import _common as c
import yaml

from tests.integration.conftest import ALIAS, tool_packages
from tests.support.channels import make_channel, serve_directory
from tests.support.forge import serve_forge
from tests.support.gitserver import GitRepo, free_port, serve_git_daemon

SECRET = "bench-review-secret-0123"
TOKEN = "bench-forge-token-4567"


def spec(constraint: str) -> str:
    return f"channels: [testchan]\ndependencies: [{constraint}]\n"


def write_config(root: Path, git_url: str, channel: str, port: int, forge_url: str) -> Path:
    source = {
        "name": "envs",
        "git": git_url,
        "interval": "3600s",
        "webhook_secret_env": "BENCH_HOOK_SECRET",
        "change_requests": True,
        "status_api": "github",
        "status_url": forge_url,
        "status_repo": "acme/envs",
        "status_token_env": "BENCH_FORGE_TOKEN",
        "status_target_url": f"http://127.0.0.1:{port}",
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


def post_hook(port: int, git_url: str, event: str) -> int:
    body = json.dumps({"action": "synchronize", "number": 1, "repository": {"clone_url": git_url}}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/hooks/git",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "X-GitHub-Event": event, "X-Hub-Signature-256": signature},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return resp.status


def wait_for(predicate, timeout: float, step: float = 0.005) -> bool:  # type: ignore[no-untyped-def]  # a benchmark helper taking test-support objects
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OSError:
            pass
        time.sleep(step)
    return False


def comment_names(forge, sha: str, *, final: bool = False) -> bool:  # type: ignore[no-untyped-def]  # a benchmark helper taking test-support objects
    """The one comment names ``sha``; ``final``: with its verdict (previews done)."""
    bodies = forge.bodies(1)
    return len(bodies) == 1 and f"({sha[:12]})" in bodies[0] and (not final or "⏳" not in bodies[0])


def run(root: Path, pushes: int) -> tuple[list[float], list[float], dict[str, int], int]:
    served = root / "served"
    repo = GitRepo(served / "envs")
    repo.commit({"team/tool.yaml": spec("tool=1.0"), "ds/base.yaml": spec("tool=1.0")}, "initial")
    channel = root / "testchan"
    make_channel(channel, tool_packages(("1.0", "2.0")))
    port = free_port()
    log_file = root / "serve.log"
    with (
        serve_directory(channel) as chan_url,
        serve_git_daemon(served) as base,
        serve_forge("github", repo="acme/envs", token=TOKEN) as forge,
    ):
        git_url = f"{base}/envs"
        config = write_config(root, git_url, str(chan_url), port, forge.url)
        env = {**os.environ, "BENCH_HOOK_SECRET": SECRET, "BENCH_FORGE_TOKEN": TOKEN}
        with log_file.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "condaops.reconciler.cli", "--config", str(config), "serve"],
                stderr=log,
                env=env,
            )
        try:
            if not wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1), 60, 0.1):
                raise SystemExit("condaops serve did not answer within 60 s")
            repo.git("checkout", "-q", "-b", "pr1")
            times, finals = [], []
            for i in range(pushes):
                sha = repo.commit({"team/tool.yaml": spec("tool=2.0") + f"# round {i}\n"}, f"round {i}")
                repo.update_ref("refs/pull/1/head", sha)
                started = time.perf_counter()
                if post_hook(port, git_url, "pull_request") != 202:
                    raise SystemExit("the webhook was refused")
                if not wait_for(lambda sha=sha: comment_names(forge, sha), 120):
                    raise SystemExit(f"round {i}: the comment did not name {sha[:12]} within 120 s")
                times.append(time.perf_counter() - started)
                if not wait_for(lambda sha=sha: comment_names(forge, sha, final=True), 300):
                    raise SystemExit(f"round {i}: no final verdict for {sha[:12]} within 300 s")
                finals.append(time.perf_counter() - started)
                time.sleep(1.0)  # let the previews' own updates settle
            repo.git("checkout", "-q", "main")
            before = log_file.read_text(errors="replace").count("change_request_reviewed")
            repo.commit({"ds/base.yaml": spec("tool=2.0")}, "main moves on elsewhere")
            post_hook(port, git_url, "push")
            wait_for(lambda: log_file.read_text(errors="replace").count("change_request_reviewed") > before, 60)
            line = log_file.read_text(errors="replace").splitlines()
            reviewed = [x for x in line if "change_request_reviewed" in x][-1]
            found = dict(re.findall(r"(solved|cached)=(\d+)", reviewed))
            solves = {k: int(v) for k, v in found.items()}
            return times, finals, solves, len(forge.violations)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=5)
    args = parser.parse_args()
    c.print_header("bench_review")
    with c.workdir("review") as root:
        times, finals, solves, violations = run(root, args.pushes)
    med = c.median(times)
    p95 = statistics.quantiles(times, n=20, method="inclusive")[-1] if len(times) > 1 else times[0]
    print()
    print(
        c.table(
            f"PR push → review comment edited on the forge (webhook), {len(times)} pushes",
            ["", "seconds"],
            [["median", c.fmt_s(med)], ["p95", c.fmt_s(p95)], ["max", c.fmt_s(max(times))]],
        )
    )
    print(f"… until the comment has its final verdict (previews built or reused): median {c.fmt_s(c.median(finals))}")
    print()
    print(f"target push elsewhere: solves run {solves.get('solved')}, answered by the cache {solves.get('cached')}")
    print(f"requests the forge stand-in refused as off-API: {violations}")
    c.print_summary(
        "bench_review",
        {
            "pushes": len(times),
            "median_s": round(med, 4),
            "p95_s": round(p95, 4),
            "max_s": round(max(times), 4),
            "final_median_s": round(c.median(finals), 4),
            "target_push_solved": solves.get("solved"),
            "target_push_cached": solves.get("cached"),
            "forge_violations": violations,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
