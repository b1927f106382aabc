"""Commit statuses against a forge stand-in on 127.0.0.1: what each API receives, retries,
refusals, timeouts, and that the build's listener call never waits for the forge.

Builds are real rows in a migrated SQLite state DB, planned, claimed and finished by the
Recorder; one test drives a real ``BuildWorker`` whose channel is unreachable.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from sqlalchemy import Engine

from condaops.config import Settings, SourceSettings
from condaops.config.settings import ChannelSettings
from condaops.reconciler.model import BuildOutcome, DesiredEnv, EnvRef, Policy, SourceSnapshot
from condaops.reconciler.notify import RetryPolicy, StatusNotifier
from condaops.reconciler.plan import plan
from condaops.reconciler.spec import Dependency, Spec
from condaops.reconciler.state.db import make_engine, migrate
from condaops.reconciler.state.queries import load_recorded
from condaops.reconciler.state.recorder import Recorder
from condaops.reconciler.worker import BuildWorker
from tests.support.channels import closed_port_url
from tests.support.clock import T0, Clock
from tests.support.loopback import serve_http

pytestmark = pytest.mark.integration

SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"
TOKEN = "forge-token-5b0f3e9d1c2a"
REF = EnvRef("team", "ml")
ALIAS = "https://conda.anaconda.org/"
HANG_LIMIT = 10.0  # a hanging answer gives up by itself after this long
FAST = RetryPolicy(attempts=3, timeout=2.0, backoff=0.01, backoff_max=0.05)
BUILT = BuildOutcome(True, "BuildSucceeded", timings=(("solve", 2.0), ("install", 3.0)), linked=True)


# --- a forge on loopback -------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: dict


@dataclass
class Forge:
    """Records every request, then answers with the next scripted answer (201 when none is left).

    An answer is a status code, ``("slow", seconds)`` (then 201), ``"hang"`` (no answer until
    the test ends or ``HANG_LIMIT``), or ``("redirect", url)``.
    """

    answers: deque
    url: str = ""
    requests: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_answer(self, seen: Seen) -> object:
        with self.lock:
            self.requests.append(seen)
            return self.answers.popleft() if self.answers else 201

    def states(self) -> list[str]:
        return [r.body["state"] for r in self.requests]

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.005)


class _Handler(http.server.BaseHTTPRequestHandler):
    forge: Forge

    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"null")
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer = self.forge.next_answer(Seen(self.command, self.path, headers, body))
        if answer == "hang":
            self.forge.release.wait(HANG_LIMIT)
            self.close_connection = True
            return
        if isinstance(answer, tuple) and answer[0] == "slow":
            self.forge.release.wait(answer[1])
            answer = 201
        if isinstance(answer, tuple) and answer[0] == "redirect":
            self._answer(307, {}, location=answer[1])
        elif answer == 401:  # forges often echo what they refused: it must not reach the logs
            self._answer(401, {"message": f"Bad credentials: {headers.get('authorization', '')}"})
        else:
            self._answer(int(answer), {"id": len(self.forge.requests)})  # type: ignore[call-overload]

    def _answer(self, status: int, payload: dict, location: str | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_forge(answers: tuple) -> Iterator[Forge]:
    forge = Forge(deque(answers))
    with serve_http(type("ForgeHandler", (_Handler,), {"forge": forge}), name="forge") as forge.url:
        try:
            yield forge
        finally:
            forge.release.set()  # hanging and slow answers end now


@pytest.fixture
def forge() -> Iterator[Callable[..., Forge]]:
    """``forge(*answers)`` → a Forge serving until the test ends."""
    with contextlib.ExitStack() as stack:
        yield lambda *answers: stack.enter_context(serve_forge(answers))


# --- state DB, builds, notifiers -----------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(eng)
    yield eng
    eng.dispose()


clock = Clock(T0)  # time never moves in these tests


def spec(channel: str = "conda-forge") -> Spec:
    return Spec(channels=(channel,), dependencies=(Dependency("tool"),), platforms=("linux-64",))


def start_build(
    engine: Engine, *, source: str = "envs", revision: str = SHA, ref: EnvRef = REF, channel: str = "conda-forge"
) -> int:
    """Plan and queue one build of ``ref`` at ``revision``; return its id (still queued)."""
    env = DesiredEnv(ref, spec(channel), source, f"{ref.namespace}/{ref.name}.yaml", revision)
    snap = SourceSnapshot(source, revision, envs=(env,))
    rec = Recorder(engine, clock)
    (queued,) = rec.apply_plan(plan([snap], load_recorded(engine), policy=Policy(), now=clock()))
    return queued.build_id


def claim(engine: Engine, build_id: int) -> None:
    assert Recorder(engine, clock).claim(build_id, "test-worker") is not None


def run_build(engine: Engine, notifier: StatusNotifier, outcome: BuildOutcome, **build: object) -> int:
    """What BuildWorker does around a build: claim, tell (start), finish, tell (end)."""
    build_id = start_build(engine, **build)  # type: ignore[arg-type]
    claim(engine, build_id)
    notifier.on_build_event(build_id, None)
    Recorder(engine, clock).finish(build_id, outcome)
    notifier.on_build_event(build_id, outcome)
    return build_id


def status_source(api: str, url: str, **changes: object) -> SourceSettings:
    repo = "acme/infra/envs" if api == "gitlab" else "acme/envs"
    src = SourceSettings(
        name="envs",
        git="https://git.example/acme/envs.git",
        status_api=api,
        status_url=url,
        status_repo=repo,
        status_token_env="FORGE_TOKEN",
        status_target_url="https://condaops.example/",
    )
    return replace(src, **changes)


@pytest.fixture
def notifier(engine: Engine) -> Iterator[Callable[..., StatusNotifier]]:
    """``notifier(*sources, policy=FAST, settings=None)`` → a StatusNotifier closed at the end."""
    made: list[StatusNotifier] = []

    def make(
        *sources: SourceSettings, policy: RetryPolicy = FAST, settings: Settings | None = None, on: Engine = engine
    ) -> StatusNotifier:
        n = StatusNotifier(settings or Settings(sources=sources), on, environ={"FORGE_TOKEN": TOKEN}, policy=policy)
        made.append(n)
        return n

    yield make
    for n in made:
        n.close(timeout=5)


def timed(call: Callable[[], None]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


# --- what each API receives ----------------------------------------------------------------

EXPECTED = {
    "github": (
        f"/repos/acme/envs/statuses/{SHA}",
        {
            "authorization": f"Bearer {TOKEN}",
            "accept": "application/vnd.github+json",
            "x-github-api-version": "2022-11-28",
        },
        "context",
        ("pending", "success"),
    ),
    "gitea": (
        f"/api/v1/repos/acme/envs/statuses/{SHA}",
        {"authorization": f"token {TOKEN}", "accept": "application/json"},
        "context",
        ("pending", "success"),
    ),
    "gitlab": (
        f"/api/v4/projects/acme%2Finfra%2Fenvs/statuses/{SHA}",
        {"private-token": TOKEN, "accept": "application/json"},
        "name",
        ("running", "success"),
    ),
}


@pytest.mark.parametrize("api", sorted(EXPECTED))
def test_each_api_gets_the_start_and_the_end_of_a_build(api: str, forge, notifier, engine) -> None:
    path, headers, name_key, states = EXPECTED[api]
    f = forge()
    n = notifier(status_source(api, f.url))
    build_id = run_build(engine, n, BUILT)
    assert n.drain(5)
    assert [(r.method, r.path) for r in f.requests] == [("POST", path)] * 2
    for seen in f.requests:
        assert headers.items() <= seen.headers.items()
        assert seen.headers["content-type"] == "application/json"
    target = f"https://condaops.example/builds/{build_id}"
    assert [r.body for r in f.requests] == [
        {"state": states[0], name_key: "condaops/team/ml", "description": "building", "target_url": target},
        {"state": states[1], name_key: "condaops/team/ml", "description": "built in 5 s", "target_url": target},
    ]


def test_a_failed_build_is_reported_with_its_reason(forge, notifier, engine) -> None:
    f = forge()
    n = notifier(status_source("github", f.url, status_target_url=None))
    run_build(engine, n, BuildOutcome(False, "SolveFailed", "team/ml.yaml: nothing provides tool 9"))
    assert n.drain(5)
    assert f.requests[-1].body == {
        "state": "failure",
        "context": "condaops/team/ml",
        "description": "SolveFailed: team/ml.yaml: nothing provides tool 9",
    }


def worker_for(engine: Engine, notifier: StatusNotifier, settings: Settings) -> BuildWorker:
    worker = BuildWorker(settings, Recorder(engine, clock), name="test-worker")
    worker.listeners.append(notifier.on_build_event)
    return worker


def build_settings(tmp_path: Path, source: SourceSettings, channel_url: str) -> Settings:
    """``testchan`` (what the specs name) served from ``channel_url``, as a mirror."""
    return Settings(
        store=tmp_path / "store",
        sources=(source,),
        platforms=("linux-64",),
        channels=ChannelSettings(mirrors={f"{ALIAS}testchan": (channel_url,)}),
    )


def test_a_real_build_reports_pending_then_success(tmp_path: Path, tool_channel, forge, notifier, engine) -> None:
    f = forge()
    settings = build_settings(tmp_path, status_source("github", f.url, status_target_url=None), tool_channel)
    n = notifier(settings=settings)
    build_id = start_build(engine, channel="testchan")
    worker_for(engine, n, settings)(build_id)
    assert n.drain(10)
    assert f.states() == ["pending", "success"]
    assert f.requests[1].body["description"].startswith("built in ")


def test_an_unreachable_channel_reports_an_error(tmp_path: Path, forge, notifier, engine) -> None:
    f = forge()
    settings = build_settings(tmp_path, status_source("gitea", f.url, status_target_url=None), closed_port_url())
    n = notifier(settings=settings)
    build_id = start_build(engine, channel="testchan")
    worker_for(engine, n, settings)(build_id)
    assert n.drain(10)
    assert f.states() == ["pending", "error"]  # a channel that is down is transient: it will be retried
    assert f.requests[1].body["description"].startswith("ChannelUnreachable: team/ml.yaml")
    assert len(f.requests[1].body["description"]) <= 140


# --- retries, refusals, timeouts -----------------------------------------------------------


def test_server_errors_are_retried_until_the_status_is_posted(forge, notifier, engine, caplog) -> None:
    caplog.set_level("INFO", logger="condaops.notify")
    f = forge(502, 503)
    n = notifier(status_source("github", f.url))
    build_id = start_build(engine)
    claim(engine, build_id)
    n.on_build_event(build_id, None)
    assert n.drain(5)
    assert f.states() == ["pending"] * 3
    assert caplog.text.count("status_retry") == 2 and "502 Bad Gateway" in caplog.text
    assert "status_posted" in caplog.text and TOKEN not in caplog.text


def test_a_refused_token_is_logged_once_and_not_retried(forge, notifier, engine, caplog) -> None:
    f = forge(401, 401, 401)
    n = notifier(status_source("gitea", f.url))
    run_build(engine, n, BUILT)
    assert n.drain(5)
    assert f.states() == ["pending", "success"]  # one attempt each
    refused = [r.getMessage() for r in caplog.records if "status_refused" in r.getMessage()]
    assert len(refused) == 2 and "401" in refused[0] and "status_token_env" in refused[0]
    assert "Bad credentials: token ***" in refused[0]  # what the forge echoed, redacted
    assert TOKEN not in caplog.text


def test_a_slow_forge_times_out_and_the_status_is_dropped(forge, notifier, engine, caplog) -> None:
    f = forge(("slow", 3.0), ("slow", 3.0))
    n = notifier(status_source("gitlab", f.url), policy=RetryPolicy(attempts=2, timeout=0.3, backoff=0.01))
    build_id = start_build(engine)
    claim(engine, build_id)
    assert timed(lambda: n.on_build_event(build_id, None)) < 0.05
    assert n.drain(5)
    assert len(f.requests) == 2
    assert "timed out" in caplog.text and "status_dropped" in caplog.text and "attempts=2" in caplog.text


def test_the_listener_returns_at_once_while_the_forge_hangs(forge, notifier, engine) -> None:
    f = forge("hang", "hang", "hang")
    n = notifier(status_source("github", f.url), policy=RetryPolicy())  # the real 10 s timeout
    build_id = start_build(engine)
    claim(engine, build_id)
    assert timed(lambda: n.on_build_event(build_id, None)) < 0.05
    f.wait_for(1)
    Recorder(engine, clock).finish(build_id, BUILT)
    assert timed(lambda: n.on_build_event(build_id, BUILT)) < 0.05  # while the first post hangs
    assert not n.drain(0.2)
    assert timed(lambda: n.close(timeout=0.2)) < 2.0  # shutting down does not wait out the forge


def test_connection_refused_is_retried_then_dropped(notifier, engine, caplog) -> None:
    n = notifier(status_source("gitea", closed_port_url()))
    build_id = start_build(engine)
    claim(engine, build_id)
    n.on_build_event(build_id, None)
    assert n.drain(5)
    assert caplog.text.count("status_retry") == 3 and "ConnectionRefusedError" in caplog.text
    assert "status_dropped" in caplog.text


def test_a_newer_event_replaces_a_status_still_being_retried(forge, notifier, engine, caplog) -> None:
    caplog.set_level("INFO", logger="condaops.notify")
    f = forge(502)
    n = notifier(status_source("github", f.url), policy=RetryPolicy(attempts=5, timeout=2.0, backoff=0.5))
    build_id = start_build(engine)
    claim(engine, build_id)
    n.on_build_event(build_id, None)
    f.wait_for(1)  # the pending status failed and waits for its retry...
    Recorder(engine, clock).finish(build_id, BUILT)
    n.on_build_event(build_id, BUILT)  # ...when the build ends: only the end is still worth sending
    assert n.drain(5)
    assert f.states() == ["pending", "success"]
    assert "status_superseded" in caplog.text


def test_redirects_are_not_followed_with_the_token(forge, notifier, engine, caplog) -> None:
    elsewhere = forge()
    f = forge(("redirect", f"{elsewhere.url}/steal"))
    n = notifier(status_source("github", f.url))
    build_id = start_build(engine)
    claim(engine, build_id)
    n.on_build_event(build_id, None)
    assert n.drain(5)
    assert len(f.requests) == 1 and elsewhere.requests == []
    assert "status_refused" in caplog.text and "redirects are not followed" in caplog.text


def test_close_sends_what_is_queued(forge, notifier, engine) -> None:
    f = forge(("slow", 0.2), ("slow", 0.2))
    n = notifier(status_source("gitea", f.url))
    run_build(engine, n, BUILT)
    n.close(timeout=5)  # what `reconcile --once` does before the process exits
    assert f.states() == ["pending", "success"]
    n.on_build_event(1, None)  # after close: ignored
    assert len(f.requests) == 2


# --- what is not reported ------------------------------------------------------------------


def test_only_commits_of_sources_with_statuses_are_reported(tmp_path: Path, forge, notifier, engine, caplog) -> None:
    f = forge()
    (tmp_path / "dir").mkdir()
    sources = (
        status_source("github", f.url),
        SourceSettings(name="plain", git="https://git.example/acme/plain.git"),
        SourceSettings(name="dir", directory=tmp_path / "dir"),
    )
    n = notifier(*sources)
    run_build(engine, n, BUILT, source="plain", ref=EnvRef("plain", "a"))
    run_build(engine, n, BUILT, source="dir", revision="ab" * 32, ref=EnvRef("dir", "b"))
    run_build(engine, n, BUILT, source="envs", revision="not-a-sha", ref=EnvRef("odd", "c"))
    n.on_build_event(10_000, None)  # no such build
    run_build(engine, n, BUILT)
    assert n.drain(5)
    assert [r.body["context"] for r in f.requests] == ["condaops/team/ml"] * 2
    assert "reason=NotACommit" in caplog.text


def test_nothing_runs_without_a_source_with_statuses(notifier, engine) -> None:
    n = notifier(SourceSettings(name="envs", git="https://git.example/acme/envs.git"))
    before = set(threading.enumerate())
    assert not n.enabled
    run_build(engine, n, BUILT)
    assert n.drain(0)  # nothing was even queued
    assert not [t for t in threading.enumerate() if t not in before and t.name == "condaops-status"]


def test_a_missing_token_is_logged_and_nothing_is_posted(forge, notifier, engine, caplog) -> None:
    f = forge()
    n = notifier(status_source("github", f.url, status_token_env="UNSET_TOKEN"))
    run_build(engine, n, BUILT)
    assert n.drain(5)
    assert f.requests == [] and "status_token_missing" in caplog.text and "UNSET_TOKEN" in caplog.text


def test_the_token_file_is_read_at_each_post(tmp_path: Path, forge, notifier, engine) -> None:
    f = forge()
    token_file = tmp_path / "token"
    token_file.write_text("first-token-value\n")
    n = notifier(status_source("gitlab", f.url, status_token_env=None, status_token_file=token_file))
    build_id = start_build(engine)
    claim(engine, build_id)
    n.on_build_event(build_id, None)
    assert n.drain(5)
    token_file.write_text("rotated-token-value\n")
    Recorder(engine, clock).finish(build_id, BUILT)
    n.on_build_event(build_id, BUILT)
    assert n.drain(5)
    assert [r.headers["private-token"] for r in f.requests] == ["first-token-value", "rotated-token-value"]
