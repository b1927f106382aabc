"""Scale-out with real processes on the real PostgreSQL: ``serve --role web``, ``serve
--role reconciler`` and several ``condaops worker`` processes sharing one database
(state, APScheduler's data store and its event broker) and one store.

Package downloads from the test channel are slowed down so that builds overlap and a
worker can be killed in the middle of one.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, create_engine, text

from tests.integration.conftest import ALIAS
from tests.support.channels import PackageSpec, ServedURL, make_channel
from tests.support.intervals import max_overlap
from tests.support.postgres import fresh_database

pytestmark = pytest.mark.timeout(300)

N_TOOLS = 6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Cluster:
    """condaops processes on one PostgreSQL database and one store, in a temporary folder."""

    root: Path
    database: str
    channel: ServedURL
    procs: list[Proc] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        (self.root / "envs").mkdir(parents=True)
        config = {
            "store": str(self.root / "store"),
            "database": self.database,
            "sources": [{"directory": str(self.root / "envs")}],
            "channels": {"default": ["testchan"], "alias": ALIAS, "mirrors": {ALIAS + "testchan": [str(self.channel)]}},
            "platforms": ["linux-64"],
            "build": {"concurrency": 2, "retries": 1, "backoff": "1s", "lease": "4s"},
            "publish": {"enabled": False},
            "web": {"listen": f"127.0.0.1:{self.port}"},
        }
        self.config = self.root / "condaops.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.engine: Engine = create_engine(self.database)

    def start(self, name: str, *args: str, listen: int | None = None) -> Proc:
        """``condaops <args>``; each process gets its own package cache (build.cache_dir) and,
        given ``listen``, its own port instead of the web role's."""
        log = self.root / f"{name}.log"
        env = {**os.environ, "CONDAOPS_BUILD__CACHE_DIR": str(self.root / "caches" / name)}
        if listen is not None:
            env["CONDAOPS_WEB__LISTEN"] = f"127.0.0.1:{listen}"
        popen = subprocess.Popen(
            [sys.executable, "-m", "condaops.reconciler.cli", "--config", str(self.config), *args],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.root,
        )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        if proc.popen.poll() is None:
            proc.popen.send_signal(sig)
            proc.popen.wait(timeout=timeout)

    def close(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.kill()
                proc.popen.wait(timeout=30)
        self.engine.dispose()

    def migrate(self) -> None:
        proc = self.start("migrate", "migrate")
        assert proc.popen.wait(timeout=120) == 0, proc.text()

    def write_env(self, name: str, *deps: str) -> None:
        (self.root / "envs" / "team").mkdir(exist_ok=True)
        (self.root / "envs" / "team" / f"{name}.yaml").write_text(
            "channels: [testchan]\ndependencies:\n" + "".join(f"  - {d}\n" for d in deps)
        )

    def builds(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT b.id, e.name, b.state, b.worker, b.started_at, b.finished_at, b.reason, b.attempt, "
                    "e.current_build_id = b.id AS current FROM builds b JOIN environments e ON e.id = b.environment_id "
                    "ORDER BY b.id"
                )
            )
            return [dict(r._mapping) for r in rows]

    def ready(self, names: list[str]) -> bool:
        done = {b["name"] for b in self.builds() if b["current"] and b["state"] == "completed"}
        return set(names) <= done

    def link(self, name: str) -> Path:
        return self.root / "store" / "team" / "envs" / name

    def api(self, path: str) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
            return resp.status

    def ops(self, port: int, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.read().decode()

    def diagnostics(self) -> str:
        return "\n".join(f"--- {p.name} (exit {p.popen.poll()})\n{p.text()[-3000:]}" for p in self.procs)


@pytest.fixture
def cluster(tmp_path: Path, http_channel) -> Iterator[Cluster]:  # type: ignore[no-untyped-def]
    packages = [PackageSpec("libtool-data", "1.0", files={"share/tool/data.txt": "prefix=PREFIX_PLACEHOLDER\n"})]
    packages += [
        PackageSpec(f"tool{i}", "1.0", depends=("libtool-data",), executables=(f"tool{i}",)) for i in range(N_TOOLS)
    ]
    root = tmp_path / "channel"
    make_channel(root, packages)
    channel = http_channel(root)
    with fresh_database() as database:
        c = Cluster(tmp_path / "site", database, channel)
        try:
            yield c
        except BaseException:
            print(c.diagnostics())
            raise
        finally:
            c.close()


class WebProbe:
    """Polls the web role's API from a thread; every answer must be 200."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WebProbe:
        wait_until(lambda: self._try("/healthz"), 60, "the web role answers")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _try(self, path: str) -> bool:
        try:
            return self.cluster.api(path) == 200
        except OSError:
            return False

    def _run(self) -> None:
        while not self._stop.is_set():
            for path in ("/api/v1/environments", "/"):
                try:
                    status = self.cluster.api(path)
                    self.ok += 1
                    if status != 200:
                        self.failures.append(f"{path}: {status}")
                except OSError as exc:
                    self.failures.append(f"{path}: {exc}")
            time.sleep(0.1)


def _head_revision() -> str:
    """The newest migration's revision, as Alembic chains them (numbers may be out of order
    while branches are merged)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from condaops.reconciler.state import db

    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    return str(ScriptDirectory.from_config(config).get_current_head())


def test_migrations_run_once_when_many_processes_start_together(cluster: Cluster):
    procs = [cluster.start(f"migrate{i}", "migrate") for i in range(4)]
    for proc in procs:
        assert proc.popen.wait(timeout=120) == 0, proc.text()
    with cluster.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == _head_revision()
        tables = set(
            conn.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'apscheduler'")
            ).scalars()
        )
    assert {"tasks", "schedules", "jobs", "job_results", "metadata"} <= tables


def test_workers_share_the_queue_within_the_concurrency_limit(cluster: Cluster):
    """Three workers with two slots each, build.concurrency 2: never more than two builds at
    once across all of them, each build run exactly once, and more than one worker used."""
    cluster.channel.delays[".conda"] = 1.0
    cluster.channel.delays[".tar.bz2"] = 1.0
    cluster.start("web", "serve", "--role", "web")
    ops_port = free_port()
    cluster.start("reconciler", "serve", "--role", "reconciler", listen=ops_port)
    workers = [cluster.start(f"worker{i}", "worker", "--slots", "2") for i in range(3)]
    names = [f"e{i}" for i in range(N_TOOLS)]
    with WebProbe(cluster) as probe:
        for i, name in enumerate(names):
            cluster.write_env(name, f"tool{i}")
        wait_until(lambda: cluster.ready(names), 180, "every environment built")
    builds = cluster.builds()
    assert len(builds) == N_TOOLS and all(b["state"] == "completed" and b["attempt"] == 1 for b in builds)
    assert max_overlap([(b["started_at"], b["finished_at"]) for b in builds]) <= 2
    used = {b["worker"] for b in builds}
    assert len(used) >= 2, used
    started = "".join(w.text() for w in workers).count("build_started build=")
    assert started == N_TOOLS  # no build ran twice, not even briefly
    for i, name in enumerate(names):
        tool = cluster.link(name) / "bin" / f"tool{i}"
        assert subprocess.run([tool], capture_output=True, text=True, check=True).stdout.startswith(f"tool{i} 1.0")
    assert probe.ok > 0 and not probe.failures, probe.failures[:5]
    # The reconciler role serves its own health and figures (no pages, no registry).
    assert "condaops_reconcile_duration_seconds_count" in cluster.ops(ops_port, "/metrics")
    assert '"database":"ok"' in cluster.ops(ops_port, "/readyz").replace(" ", "")
    with pytest.raises(urllib.error.HTTPError):
        cluster.ops(ops_port, "/api/v1/environments")


def test_a_killed_worker_s_build_is_taken_over_after_its_lease(cluster: Cluster):
    """SIGKILL in the middle of an install: after the lease (4 s) the build goes back to the
    queue, the other worker removes the half prefix and builds it; the link never points at
    the half prefix; the web role keeps answering throughout."""
    cluster.channel.delays["tool0-1.0"] = 6.0  # libtool-data lands in the prefix, tool0 is still downloading
    cluster.start("web", "serve", "--role", "web")
    reconciler = cluster.start("reconciler", "serve", "--role", "reconciler", "--no-web")
    first = cluster.start("worker-a", "worker", "--slots", "1")
    with WebProbe(cluster) as probe:
        cluster.write_env("e0", "tool0")
        wait_until(lambda: any(b["state"] == "building" for b in cluster.builds()), 60, "the build started")
        team = cluster.root / "store" / "team"
        wait_until(lambda: list(team.glob(".*-e0.partial-*")), 60, "the install under way")
        (half,) = team.glob(".*-e0.partial-*")  # rattler's staging folder: renamed into place when complete
        assert not (half / "bin" / "tool0").exists()
        cluster.stop(first, signal.SIGKILL)
        killed_at = time.monotonic()
        second = cluster.start("worker-b", "worker", "--slots", "1")
        cluster.channel.delays.clear()
        seen_links = set()

        def built() -> bool:
            link = cluster.link("e0")
            if link.is_symlink():
                seen_links.add(os.readlink(link))
            return cluster.ready(["e0"])

        wait_until(built, 120, "the build taken over and finished")
    (build,) = cluster.builds()
    assert build["state"] == "completed" and build["worker"].startswith(socket.gethostname())
    assert f":{second.popen.pid}:" in build["worker"] and f":{first.popen.pid}:" not in build["worker"]
    assert time.monotonic() - killed_at >= 3  # not before the lease expired
    assert f"build_interrupted build={build['id']} " in reconciler.text()
    # The half-written prefix is gone; the one link ever seen points at the finished prefix.
    assert not half.exists() and not list(half.parent.glob(".*-e0.partial-*"))
    final = half.parent / half.name.removeprefix(".").split(".partial-")[0]
    assert seen_links == {f"../{final.name}"}
    out = subprocess.run([cluster.link("e0") / "bin" / "tool0"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("tool0 1.0")
    assert (cluster.link("e0") / "share" / "tool" / "data.txt").is_file()
    assert probe.ok > 0 and not probe.failures, probe.failures[:5]


def test_no_queued_build_is_lost_when_every_process_restarts(cluster: Cluster):
    """Builds queued while every worker is down, then every process killed: after a restart
    all of them are built, each once."""
    cluster.migrate()
    cluster.start("reconciler", "serve", "--role", "reconciler", "--no-web")
    names = [f"e{i}" for i in range(3)]
    for i, name in enumerate(names):
        cluster.write_env(name, f"tool{i}")
    wait_until(lambda: len([b for b in cluster.builds() if b["state"] == "queued"]) == 3, 60, "three builds queued")
    for proc in list(cluster.procs):
        cluster.stop(proc, signal.SIGKILL)
    cluster.start("reconciler-2", "serve", "--role", "reconciler", "--no-web")
    cluster.start("worker", "worker")
    wait_until(lambda: cluster.ready(names), 120, "every queued build built after the restart")
    builds = cluster.builds()
    assert len(builds) == 3 and all(b["state"] == "completed" and b["attempt"] == 1 for b in builds)


def test_roles_other_than_all_refuse_sqlite(tmp_path: Path):
    config = tmp_path / "condaops.yaml"
    config.write_text(yaml.safe_dump({"store": str(tmp_path / "store")}))
    run = subprocess.run(
        [sys.executable, "-m", "condaops.reconciler.cli", "--config", str(config), "worker"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "key 'database'" in run.stderr and "postgresql+psycopg://" in run.stderr
