"""Benchmark 8a: blob download throughput of the built-in registry vs docker-registry.

Both registries run on 127.0.0.1 as their own processes, in the same run, and serve the
same 200 MB blob from local disk (page-cached after the first read): condaops' registry
as deployed (``create_registry_app(load_settings())`` under uvicorn) and Debian's
``docker-registry`` (distribution 2.8, filesystem driver). The same client downloads the
blob from each in turn, alternating, and throws the bytes away:

* ``python`` — ``http.client`` reading into one reused 1 MiB buffer;
* ``curl`` — ``curl -o /dev/null`` (when installed), a client with no Python overhead.

Reported: median MB/s of each registry per client, the ratio condaops / docker-registry
(target >= 1.0) of the medians and of the fastest runs, and each server's CPU seconds per
GB sent (far less sensitive than MB/s to other load on the machine: on a busy 2-CPU host
the MB/s ratio swings by +-30 % from run to run, CPU per GB by a few percent). Also the
time to push the blob to each (monolithic upload).

Measured here (2 CPUs shared with other jobs, load average 3-6, Python 3.11, uvicorn with
h11 and asyncio): condaops 1.5-2.8 GB/s, docker-registry 1.4-2.5 GB/s; median ratio
0.8-1.6 (python client), 1.0-1.6 (curl); CPU per GB 0.29-0.37 s for both.

Run: ``.venv/bin/python benchmarks/bench_registry.py [--size-mb 200] [--rounds 7]``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import _common as c

from tests.support.registry_clients import TOKEN, ServerProcess, docker_registry, registry_process

BUFFER = 1024 * 1024
MB = 1_000_000


def make_blob(path: Path, size: int) -> str:
    """Random (incompressible) content; returns its digest."""
    hasher = hashlib.sha256()
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            chunk = os.urandom(min(remaining, 4 * BUFFER))
            hasher.update(chunk)
            out.write(chunk)
            remaining -= len(chunk)
    return f"sha256:{hasher.hexdigest()}"


def push(host: str, blob: Path, digest: str, token: str | None) -> float:
    """POST an upload session, PUT the whole blob with its digest; seconds taken."""
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    start = time.perf_counter()
    conn = http.client.HTTPConnection(host, timeout=300)
    conn.request("POST", "/v2/bench/blob/blobs/uploads/", headers={**auth, "Content-Length": "0"})
    response = conn.getresponse()
    response.read()
    assert response.status == 202, response.status
    location = response.getheader("Location") or ""
    location = location.split(host, 1)[-1]  # distribution answers with an absolute URL
    separator = "&" if "?" in location else "?"
    with open(blob, "rb") as body:
        headers = {**auth, "Content-Length": str(blob.stat().st_size), "Content-Type": "application/octet-stream"}
        conn.request("PUT", f"{location}{separator}digest={digest}", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
    assert response.status == 201, (response.status, response.reason)
    conn.close()
    return time.perf_counter() - start


def download_python(host: str, digest: str, size: int) -> float:
    """Seconds to GET the blob with http.client into a reused buffer."""
    buffer = memoryview(bytearray(BUFFER))
    start = time.perf_counter()
    conn = http.client.HTTPConnection(host, timeout=300)
    conn.request("GET", f"/v2/bench/blob/blobs/{digest}")
    response = conn.getresponse()
    assert response.status == 200, response.status
    received = 0
    while n := response.readinto(buffer):
        received += n
    conn.close()
    assert received == size, (received, size)
    return time.perf_counter() - start


def download_curl(host: str, digest: str, size: int) -> float:
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-f",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{time_total}",
            f"http://{host}/v2/bench/blob/blobs/{digest}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    received, seconds = out.stdout.split()
    assert int(received) == size, (received, size)
    return float(seconds)


@contextlib.contextmanager
def registries(work: Path, uvicorn_options: dict[str, object]) -> Iterator[dict[str, ServerProcess]]:
    with (
        registry_process(work / "condaops-store", **uvicorn_options) as ours,
        docker_registry(work / "distribution") as reference,
    ):
        yield {"condaops": ours, "docker-registry": reference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--uvicorn", default="", help="uvicorn options as k=v,k=v (e.g. http=httptools,loop=uvloop)")
    args = parser.parse_args()
    if not shutil.which("docker-registry"):
        sys.exit("benchmark needs Debian's docker-registry: apt-get install -y docker-registry")
    uvicorn_options = dict(item.split("=", 1) for item in args.uvicorn.split(",") if item)
    size = args.size_mb * 1024 * 1024
    clients = {"python": download_python}
    if shutil.which("curl"):
        clients["curl"] = download_curl

    c.print_header(f"bench_registry — GET of a {args.size_mb} MiB blob, {args.rounds} rounds")
    with c.workdir("bench-registry") as work:
        blob = work / "blob"
        digest = make_blob(blob, size)
        with registries(work, uvicorn_options) as servers:
            push_seconds = {
                name: push(server.host, blob, digest, TOKEN if name == "condaops" else None)
                for name, server in servers.items()
            }
            seconds: dict[tuple[str, str], list[float]] = {}
            cpu: dict[tuple[str, str], float] = {}
            for client, download in clients.items():
                for server in servers.values():
                    download(server.host, digest, size)  # warm the page cache and connections
                for _ in range(args.rounds):
                    for name, server in servers.items():  # alternating: both see the same machine state
                        before = server.cpu_seconds()
                        seconds.setdefault((client, name), []).append(download(server.host, digest, size))
                        cpu[(client, name)] = cpu.get((client, name), 0.0) + server.cpu_seconds() - before

    rows, figures = [], {}
    gigabytes = size * args.rounds / 1e9
    for client in clients:
        ours = size / c.median(seconds[(client, "condaops")]) / MB
        theirs = size / c.median(seconds[(client, "docker-registry")]) / MB
        cpu_ours, cpu_theirs = cpu[(client, "condaops")] / gigabytes, cpu[(client, "docker-registry")] / gigabytes
        best_ours = size / min(seconds[(client, "condaops")]) / MB
        best_theirs = size / min(seconds[(client, "docker-registry")]) / MB
        rows.append(
            (
                client,
                f"{ours:.0f}",
                f"{theirs:.0f}",
                f"{ours / theirs:.2f}",
                f"{best_ours / best_theirs:.2f}",
                f"{cpu_ours:.2f}",
                f"{cpu_theirs:.2f}",
            )
        )
        figures[f"{client}_best_ratio"] = round(best_ours / best_theirs, 2)
        figures[f"{client}_condaops_mb_s"] = round(ours)
        figures[f"{client}_docker_registry_mb_s"] = round(theirs)
        figures[f"{client}_ratio"] = round(ours / theirs, 2)
        figures[f"{client}_condaops_cpu_s_per_gb"] = round(cpu_ours, 3)
        figures[f"{client}_docker_registry_cpu_s_per_gb"] = round(cpu_theirs, 3)
    header = [
        "client",
        "condaops MB/s",
        "docker-registry MB/s",
        "ratio",
        "best-run ratio",
        "condaops CPU s/GB",
        "docker-registry CPU s/GB",
    ]
    print(c.table("blob GET throughput (median MB/s) and server CPU per GB sent", header, rows))
    print(
        c.table(
            "push of the blob (monolithic PUT)",
            ["registry", "seconds"],
            [(name, f"{s:.2f}") for name, s in push_seconds.items()],
        )
    )
    c.print_summary("bench_registry", {"size_mib": args.size_mb, "rounds": args.rounds, **figures})


if __name__ == "__main__":
    main()
