"""``POST /hooks/git``: every answer through the real app (Litestar's test client), then
``condaops serve`` end to end: a commit pushed to a repository served by ``git daemon``
is built within seconds of a signed webhook, with polling an hour away."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from condaops.config.settings import Settings, SourceSettings
from condaops.reconciler.service import SourceReader
from condaops.reconciler.state.db import make_engine, migrate
from condaops.web.app import create_app
from condaops.web.hooks import MAX_BODY_BYTES, hooks_router
from tests.integration.conftest import ALIAS
from tests.integration.test_serve import free_port, get_status, wait_until
from tests.support.gitserver import GitRepo, require_git, serve_git_daemon

pytestmark = pytest.mark.integration

SECRET = "whsec-0123456789abcdef"  # distinctive: searched for in logs and answers
FILE_SECRET = "file-secret-9876543210"
REPO_URL = "https://github.com/conda/envs.git"
TOOL1 = "channels: [testchan]\ndependencies: [tool=1.0]\n"
TOOL2 = "channels: [testchan]\ndependencies: [tool=2.0]\n"


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def push_event(url: str = REPO_URL) -> bytes:
    return json.dumps({"ref": "refs/heads/main", "repository": {"clone_url": url, "html_url": url[:-4]}}).encode()


class Refreshes:
    """What the runtime's ``refresh`` would have been asked (the app's only effect)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, names: Iterable[str]) -> None:
        self.calls.append(list(names))


@pytest.fixture
def refreshes() -> Refreshes:
    return Refreshes()


@pytest.fixture
def client(tmp_path: Path, refreshes: Refreshes) -> Iterator[TestClient]:
    secret_file = tmp_path / "hook-secret"
    secret_file.write_text(FILE_SECRET + "\n")
    sources = (
        SourceSettings(name="envs", git=REPO_URL, webhook_secret_env="HOOK_SECRET"),
        SourceSettings(name="gl", git="git@gitlab.example.org:group/proj.git", webhook_secret_file=secret_file),
        SourceSettings(name="unset", git="https://github.com/conda/unset.git", webhook_secret_env="NOT_SET"),
        SourceSettings(name="dir", directory=tmp_path),
    )
    settings = Settings(store=tmp_path / "store", sources=sources)
    engine = make_engine(settings.database_url)
    migrate(engine)
    router = hooks_router(settings, refreshes, environ={"HOOK_SECRET": SECRET})
    with TestClient(create_app(settings, engine, routers=[router])) as test_client:
        yield test_client


def post(client: TestClient, body: bytes, headers: dict[str, str], query: str = ""):  # type: ignore[no-untyped-def]
    return client.post(f"/hooks/git{query}", content=body, headers={"content-type": "application/json", **headers})


def test_github_push_refreshes_the_matching_source(client: TestClient, refreshes: Refreshes) -> None:
    body = push_event()
    resp = post(client, body, {"X-Hub-Signature-256": sign(body), "X-GitHub-Event": "push"})
    assert resp.status_code == 202
    assert resp.json()["refreshed"] == ["envs"]
    assert refreshes.calls == [["envs"]]


def test_gitlab_token_and_secret_file(client: TestClient, refreshes: Refreshes) -> None:
    body = json.dumps(
        {
            "object_kind": "push",
            "project": {
                "git_http_url": "https://gitlab.example.org/group/proj.git",
                "git_ssh_url": "git@gitlab.example.org:group/proj.git",
            },
        }
    ).encode()
    assert post(client, body, {"X-Gitlab-Token": SECRET}).status_code == 401  # another source's secret
    resp = post(client, body, {"X-Gitlab-Token": FILE_SECRET, "X-Gitlab-Event": "Push Hook"})
    assert (resp.status_code, resp.json()["refreshed"]) == (202, ["gl"])
    assert refreshes.calls == [["gl"]]


def test_generic_signature_by_source_name(client: TestClient, refreshes: Refreshes) -> None:
    body = b'{"anything": true}'
    resp = post(client, body, {"X-Condaops-Signature": sign(body)}, "?source=envs")
    assert (resp.status_code, resp.json()["refreshed"]) == (202, ["envs"])
    assert refreshes.calls == [["envs"]]


def test_ping_is_answered_and_refreshes_nothing(client: TestClient, refreshes: Refreshes) -> None:
    body = push_event()
    resp = post(client, body, {"X-Hub-Signature-256": sign(body), "X-GitHub-Event": "ping"})
    assert resp.status_code == 200
    assert resp.json()["sources"] == ["envs"]
    assert refreshes.calls == []


@pytest.mark.parametrize(
    ("headers", "query", "body", "status"),
    [
        ({"X-Hub-Signature-256": sign(push_event(), "wrong-secret-value")}, "", push_event(), 401),
        ({}, "", push_event(), 401),
        ({"X-Gitlab-Token": "guess"}, "", push_event(), 401),
        ({"X-Hub-Signature-256": sign(push_event())}, "", push_event() + b" ", 401),
        ({"X-Condaops-Signature": sign(b"x")}, "?source=envs", b"x", 400),
        ({"X-Hub-Signature-256": sign(b"<xml/>")}, "", b"<xml/>", 400),
        (
            {"X-Hub-Signature-256": sign(push_event("https://github.com/a/b.git"))},
            "",
            push_event("https://github.com/a/b.git"),
            401,
        ),
        ({}, "", push_event("https://github.com/a/b.git"), 401),
        ({"X-Hub-Signature-256": sign(b"{}")}, "?source=missing", b"{}", 401),
        ({"X-Hub-Signature-256": sign(b"{}")}, "?source=dir", b"{}", 401),
        ({}, "", b'{"a":' * 50_000, 401),
        ({"X-Hub-Signature-256": sign(b'{"a":' * 50_000)}, "", b'{"a":' * 50_000, 400),
        ({"X-Hub-Signature-256": sign(b"[" * 50_000 + b"]" * 50_000)}, "", b"[" * 50_000 + b"]" * 50_000, 400),
    ],
    ids=[
        "wrong-secret",
        "unsigned",
        "wrong-token",
        "body-changed",
        "by-name-not-json",
        "not-json",
        "no-match",
        "no-match-unsigned",
        "unknown-name",
        "directory-source",
        "deep-unsigned",
        "deep-signed",
        "deep-balanced-signed",
    ],
)
def test_refusals_do_nothing(
    client: TestClient,
    refreshes: Refreshes,
    headers: dict[str, str],
    query: str,
    body: bytes,
    status: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="condaops.web.hooks"):
        resp = post(client, body, headers, query)
    assert resp.status_code == status
    assert resp.json()["status_code"] == status
    assert refreshes.calls == []
    assert SECRET not in resp.text + caplog.text and "guess" not in caplog.text


def test_missing_secret_variable_refuses_and_says_why(
    client: TestClient, refreshes: Refreshes, caplog: pytest.LogCaptureFixture
) -> None:
    body = push_event("https://github.com/conda/unset.git")
    with caplog.at_level(logging.WARNING, logger="condaops.web.hooks"):
        resp = post(client, body, {"X-Hub-Signature-256": sign(body, "")})
    assert resp.status_code == 401
    assert "webhook_secret_missing source=unset variable=NOT_SET" in caplog.text
    assert refreshes.calls == []


def test_oversized_body_is_refused(client: TestClient, refreshes: Refreshes) -> None:
    padding = b" " * MAX_BODY_BYTES
    body = push_event()[:-1] + padding + b"}"
    assert post(client, body, {"X-Hub-Signature-256": sign(body)}).status_code == 413

    def chunks() -> Iterator[bytes]:  # no content-length: the limit applies to what streams in
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    resp = client.post("/hooks/git", content=chunks(), headers={"X-Hub-Signature-256": sign(b"")})
    assert resp.status_code == 413
    assert resp.json()["status_code"] == 413
    assert refreshes.calls == []


def test_get_is_not_allowed(client: TestClient, refreshes: Refreshes) -> None:
    assert client.get("/hooks/git").status_code == 405
    assert refreshes.calls == []


# --- a webhook skips the wait after failures ----------------------------------------------


def test_forced_read_skips_the_backoff_once(tmp_path: Path) -> None:
    require_git()
    served = tmp_path / "served"
    GitRepo(served / "envs").commit({"team/tool.yaml": TOOL1}, "initial")
    port = free_port()
    src = SourceSettings(
        name="envs", git=f"git://127.0.0.1:{port}/envs", interval=3600.0, mirror_dir=tmp_path / "mirrors"
    )
    reader = SourceReader()
    assert reader(src).error_reason == "SourceUnreachable"  # nothing listens yet: an hour's wait follows
    with serve_git_daemon(served, port=port):
        assert reader(src).error_reason == "SourceUnreachable"  # still waiting: the remote is not asked
        reader.force(["envs", "another"])
        assert [str(e.ref) for e in reader(src).envs] == ["team/tool"]


# --- condaops serve, end to end -----------------------------------------------------------


def post_hook(port: int, body: bytes, signature: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/hooks/git",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": signature},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_serve_builds_a_pushed_commit_on_a_signed_webhook(
    project: Callable[..., object], tool_channel: object, tmp_path: Path
) -> None:
    require_git()
    served = tmp_path / "served"
    repo = GitRepo(served / "envs")
    repo.commit({"team/tool.yaml": TOOL1}, "initial")
    port = free_port()
    with serve_git_daemon(served) as base:
        url = f"{base}/envs"
        source = {"git": url, "name": "envs", "interval": "3600s", "webhook_secret_env": "TEST_WEBHOOK_SECRET"}
        p = project({ALIAS + "testchan": tool_channel}, web={"listen": f"127.0.0.1:{port}"}, sources=[source])
        env = {**os.environ, "TEST_WEBHOOK_SECRET": SECRET}
        proc = subprocess.Popen(
            [sys.executable, "-m", "condaops.reconciler.cli", "--config", str(p.config_file), "serve"],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # type: ignore[attr-defined]
        try:
            wait_until(lambda: get_status(port).get("team/tool", {}).get("state") == "ready")
            time.sleep(1.0)  # the pass after the build has run: from here on only a webhook reads the source
            repo.commit({"team/tool2.yaml": TOOL2}, "add tool2")
            body = push_event(url)

            assert post_hook(port, body, sign(body, "not-the-secret-value")) == 401
            time.sleep(3.0)  # past the status cache (2 s): a pass would have shown tool2 by now
            assert "team/tool2" not in get_status(port)

            started = time.monotonic()
            assert post_hook(port, body, sign(body)) == 202
            wait_until(lambda: "team/tool2" in get_status(port), timeout=5)
            assert time.monotonic() - started < 5
            wait_until(lambda: get_status(port)["team/tool2"]["state"] == "ready", timeout=30)
            assert proc.poll() is None
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert SECRET not in err
