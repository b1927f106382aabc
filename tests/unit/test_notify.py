"""Commit statuses, the pure part: the request each API gets, and the settings that enable it."""

from __future__ import annotations

import logging
import textwrap
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from condaops.config import ConfigError, SourceSettings, load_settings
from condaops.config.checks import STATUS_APIS
from condaops.reconciler.forge.api import ForgeRequest
from condaops.reconciler.forge.client import Answer
from condaops.reconciler.model import BuildOutcome, EnvRef
from condaops.reconciler.notify import (
    DESCRIPTION_LIMIT,
    GITEA,
    GITHUB,
    GITLAB,
    GITLAB_STATES,
    RetryPolicy,
    duration_text,
    is_commit,
    read_token,
    status_request,
)
from condaops.reconciler.state.queries import BuildInfo

SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "tok-3f9a1c77e2b04d5e"


def build(**changes: object) -> BuildInfo:
    info = BuildInfo(
        build_id=7,
        ref=EnvRef("team", "ml"),
        spec_hash="ab" * 32,
        state="building",
        attempt=1,
        reason=None,
        message=None,
        retryable=False,
        prefix=None,
        source="envs",
        source_revision=SHA,
        source_path="team/ml.yaml",
        queued_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        started_at=None,
        finished_at=None,
        collected_at=None,
    )
    return replace(info, **changes)


def source(api: str, **changes: object) -> SourceSettings:
    urls = {GITHUB: None, GITLAB: "https://gitlab.example", GITEA: "https://gitea.example/"}
    repos = {GITHUB: "acme/envs", GITLAB: "acme/infra/envs", GITEA: "acme/envs"}
    base = SourceSettings(
        name="envs",
        git="https://git.example/acme/envs.git",
        status_api=api,
        status_url=urls[api],
        status_repo=repos[api],
        status_token_env="TOKEN",
    )
    return replace(base, **changes)


BUILT = BuildOutcome(True, "BuildSucceeded", timings=(("solve", 3.2), ("install", 8.9)), linked=True)
SUPERSEDED = BuildOutcome(True, "Superseded", "a newer specification was queued", timings=(("solve", 1.0),))
STALLED = BuildOutcome(False, "SolveFailed", "team/ml.yaml: nothing provides numpy >=9")
TRANSIENT = BuildOutcome(False, "ChannelUnreachable", "team/ml.yaml: conda-forge: 503", retryable=True)


# --- the request per API ------------------------------------------------------------------

URLS = {
    GITHUB: f"https://api.github.com/repos/acme/envs/statuses/{SHA}",
    GITLAB: f"https://gitlab.example/api/v4/projects/acme%2Finfra%2Fenvs/statuses/{SHA}",
    GITEA: f"https://gitea.example/api/v1/repos/acme/envs/statuses/{SHA}",
}
AUTH = {
    GITHUB: {"Authorization": f"Bearer {TOKEN}", "Accept": "application/vnd.github+json"},
    GITLAB: {"PRIVATE-TOKEN": TOKEN, "Accept": "application/json"},
    GITEA: {"Authorization": f"token {TOKEN}", "Accept": "application/json"},
}


@pytest.mark.parametrize("api", [GITHUB, GITLAB, GITEA])
def test_url_and_headers(api: str) -> None:
    req = status_request(build(), None, source(api), TOKEN)
    assert (req.method, req.url) == ("POST", URLS[api])
    assert AUTH[api].items() <= req.headers.items()
    assert req.headers["Content-Type"] == "application/json"


STATE_IDS = [
    "github-start",
    "github-built",
    "github-superseded",
    "github-stalled",
    "github-transient",
    "gitea-start",
    "gitea-built",
    "gitea-stalled",
    "gitea-transient",
    "gitlab-start",
    "gitlab-built",
    "gitlab-stalled",
    "gitlab-transient",
]


@pytest.mark.parametrize(
    ("api", "outcome", "state", "description"),
    [
        (GITHUB, None, "pending", "building"),
        (GITHUB, BUILT, "success", "built in 12 s"),
        (GITHUB, SUPERSEDED, "success", "built in 1 s; Superseded"),
        (GITHUB, STALLED, "failure", "SolveFailed: team/ml.yaml: nothing provides numpy >=9"),
        (GITHUB, TRANSIENT, "error", "ChannelUnreachable: team/ml.yaml: conda-forge: 503"),
        (GITEA, None, "pending", "building"),
        (GITEA, BUILT, "success", "built in 12 s"),
        (GITEA, STALLED, "failure", "SolveFailed: team/ml.yaml: nothing provides numpy >=9"),
        (GITEA, TRANSIENT, "error", "ChannelUnreachable: team/ml.yaml: conda-forge: 503"),
        (GITLAB, None, "running", "building"),
        (GITLAB, BUILT, "success", "built in 12 s"),
        (GITLAB, STALLED, "failed", "SolveFailed: team/ml.yaml: nothing provides numpy >=9"),
        (GITLAB, TRANSIENT, "failed", "ChannelUnreachable: team/ml.yaml: conda-forge: 503"),
    ],
    ids=STATE_IDS,
)
def test_state_and_description(api: str, outcome: BuildOutcome | None, state: str, description: str) -> None:
    body = status_request(build(), outcome, source(api), TOKEN).json
    name_key = "name" if api == GITLAB else "context"
    assert body == {"state": state, name_key: "condaops/team/ml", "description": description}


def test_every_configurable_api_builds_requests() -> None:
    assert set(STATUS_APIS) == {GITHUB, GITLAB, GITEA}
    assert set(GITLAB_STATES) == {"pending", "success", "failure", "error"}


@pytest.mark.parametrize(
    ("api", "changes", "url"),
    [
        (
            GITHUB,
            {"status_url": "https://ghe.example/api/v3/"},
            f"https://ghe.example/api/v3/repos/acme/envs/statuses/{SHA}",
        ),
        (GITEA, {"status_url": "https://gitea.example/api/v1"}, URLS[GITEA]),
        (
            GITEA,
            {"status_url": "https://host.example/gitea"},
            f"https://host.example/gitea/api/v1/repos/acme/envs/statuses/{SHA}",
        ),
        (GITLAB, {"status_url": "https://gitlab.example/api/v4/"}, URLS[GITLAB]),
        (GITLAB, {"status_repo": "4711"}, f"https://gitlab.example/api/v4/projects/4711/statuses/{SHA}"),
    ],
    ids=["github-enterprise", "gitea-api-root-given", "gitea-under-a-path", "gitlab-api-root-given", "gitlab-id"],
)
def test_api_roots(api: str, changes: dict[str, str], url: str) -> None:
    assert status_request(build(), None, source(api, **changes), TOKEN).url == url


@pytest.mark.parametrize("api", [GITHUB, GITLAB, GITEA])
def test_target_url_links_the_build(api: str) -> None:
    src = source(api, status_target_url="https://condaops.example/", status_context="ci/conda")
    body = status_request(build(), BUILT, src, TOKEN).json
    assert body["target_url"] == "https://condaops.example/builds/7"
    assert body["name" if api == GITLAB else "context"] == "ci/conda/team/ml"


@pytest.mark.parametrize(
    ("info", "outcome", "description"),
    [
        (build(attempt=3), None, "building, attempt 3"),
        (build(), BuildOutcome(False, "InstallFailed", "line one\n  line two"), "InstallFailed: line one line two"),
        (build(), BuildOutcome(False, "InternalError"), "InternalError"),
    ],
    ids=["attempt", "one-line", "no-message"],
)
def test_descriptions(info: BuildInfo, outcome: BuildOutcome | None, description: str) -> None:
    assert status_request(info, outcome, source(GITHUB), TOKEN).json["description"] == description


def test_long_messages_are_cut_to_the_limit() -> None:
    outcome = BuildOutcome(False, "SolveFailed", "x" * 500)
    text = status_request(build(), outcome, source(GITHUB), TOKEN).json["description"]
    assert len(text) == DESCRIPTION_LIMIT and text.startswith("SolveFailed: xxx") and text.endswith("…")


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.2, "0 s"), (12.4, "12 s"), (59.6, "1 min 0 s"), (243, "4 min 3 s"), (3725, "1 h 2 min")]
)
def test_duration_text(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


@pytest.mark.parametrize("api", [GITHUB, GITLAB, GITEA])
def test_the_token_is_not_in_repr(api: str) -> None:
    req = status_request(build(), None, source(api), TOKEN)
    assert TOKEN in str(req.headers)  # it is there to be sent...
    assert TOKEN not in repr(req) and TOKEN not in str(req) and "***" in repr(req)  # ...and never shown
    assert TOKEN not in f"{req}"


def test_the_token_is_not_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("test").info("request=%s", status_request(build(), None, source(GITLAB), TOKEN))
    assert TOKEN not in caplog.text


def test_an_unknown_api_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown forge API"):
        status_request(build(), None, source(GITHUB, status_api="bitbucket"), TOKEN)


@pytest.mark.parametrize(
    ("revision", "expected"),
    [(SHA, True), ("ab" * 32, True), (SHA[:12], False), (None, False), (SHA.upper(), False), ("rev-3.12", False)],
)
def test_is_commit(revision: str | None, expected: bool) -> None:
    assert is_commit(revision) is expected


@pytest.mark.parametrize(
    ("status", "wait", "ok", "retryable"),
    [
        (201, None, True, False),
        (None, None, False, True),
        (502, None, False, True),
        (429, 0.0, False, True),
        (403, 30.0, False, True),
        (401, None, False, False),
        (404, None, False, False),
        (307, None, False, False),
    ],
)
def test_answers(status: int | None, wait: float | None, ok: bool, retryable: bool) -> None:
    answer = Answer(status, retry_after=wait)
    assert (answer.ok, answer.retryable) == (ok, retryable)


def test_backoff_doubles_up_to_its_bound() -> None:
    policy = RetryPolicy(backoff=1.0, backoff_max=5.0)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_tokens_come_from_the_variable_or_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    file = tmp_path / "token"
    file.write_text(TOKEN + "\n")
    assert read_token(source(GITHUB), {"TOKEN": TOKEN}) == TOKEN
    assert read_token(source(GITHUB, status_token_env=None, status_token_file=file), {}) == TOKEN
    assert read_token(source(GITHUB), {}) is None
    assert read_token(source(GITHUB, status_token_env=None, status_token_file=tmp_path / "gone"), {}) is None
    assert "status_token_missing" in caplog.text and "status_token_unreadable" in caplog.text


def test_status_request_is_plain_data() -> None:
    req = ForgeRequest("POST", "https://x.example/", {"Authorization": "Bearer s3cr3t-value"}, {"state": "pending"})
    assert repr(req) == (
        "ForgeRequest(method='POST', url='https://x.example/', headers={'Authorization': '***'}, "
        "json={'state': 'pending'})"
    )


# --- settings -----------------------------------------------------------------------------


def load(tmp_path: Path, source_yaml: str):  # type: ignore[no-untyped-def]
    file = tmp_path / "condaops.yaml"
    file.write_text("sources:\n" + textwrap.indent(textwrap.dedent(source_yaml), "  "), encoding="utf-8")
    return load_settings(file, environ={}, cwd=tmp_path)


def test_statuses_are_off_by_default(tmp_path: Path) -> None:
    (src,) = load(tmp_path, "- git: https://github.com/acme/envs.git\n").sources
    assert (src.status_api, src.status_context, src.status_url) == (None, "condaops", None)


@pytest.mark.parametrize(
    "text",
    [
        "- {git: https://github.com/acme/envs.git, status_api: github, status_repo: acme/envs, "
        "status_token_env: GH_TOKEN}",
        "- {git: 'git@gitlab.example:a/b.git', status_api: gitlab, status_url: 'https://gitlab.example', "
        "status_repo: a/sub/b, status_token_file: token, status_context: ci, "
        "status_target_url: 'https://condaops.example'}",
        "- {git: /srv/envs.git, status_api: gitlab, status_url: 'http://gitlab.lan', status_repo: '42', "
        "status_token_env: T}",
        "- {git: /srv/envs.git, status_api: gitea, status_url: 'http://gitea.lan:3000', status_repo: o/n.x, "
        "status_token_env: T}",
    ],
    ids=["github", "gitlab-path", "gitlab-id", "gitea"],
)
def test_accepted_status_settings(tmp_path: Path, text: str) -> None:
    (src,) = load(tmp_path, text + "\n").sources
    assert src.status_api in STATUS_APIS
    if src.status_token_file is not None:
        assert src.status_token_file == tmp_path / "token"  # relative paths follow the config file


GIT = "git: https://github.com/acme/envs.git"
GH = f"{GIT}, status_api: github, status_repo: acme/envs"


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        (
            f"{{{GIT}, status_api: bitbucket, status_repo: a/b, status_token_env: T}}",
            "status_api",
            "unknown status API 'bitbucket'; use one of github, gitlab, gitea",
        ),
        (f"{{{GH}}}", "status_api", "needs a token; set 'status_token_env' or 'status_token_file'"),
        (
            f"{{{GH}, status_token_env: T, status_token_file: t}}",
            "status_token_file",
            "set only one of 'status_token_env' and 'status_token_file'",
        ),
        (f"{{{GH}, status_token_env: 1T}}", "status_token_env", "is not an environment variable name"),
        (f"{{{GIT}, status_api: github, status_token_env: T}}", "status_repo", "is required when 'status_api' is set"),
        (
            f"{{{GIT}, status_api: github, status_repo: acme, status_token_env: T}}",
            "status_repo",
            "'acme' is not owner/name",
        ),
        (
            f"{{{GIT}, status_api: gitea, status_repo: a/b/c, status_url: 'https://g.example', status_token_env: T}}",
            "status_repo",
            "'a/b/c' is not owner/name",
        ),
        (
            f"{{{GIT}, status_api: gitlab, status_repo: 'a b', status_url: 'https://g.example', status_token_env: T}}",
            "status_repo",
            "is not a project id such as 42",
        ),
        (
            f"{{{GIT}, status_api: gitea, status_repo: a/b, status_token_env: T}}",
            "status_url",
            "is required when status_api is 'gitea'",
        ),
        (
            f"{{{GH}, status_token_env: T, status_url: api.github.com}}",
            "status_url",
            "'api.github.com' must be an http:// or https:// URL",
        ),
        (
            f"{{{GH}, status_token_env: T, status_target_url: 'ftp://x'}}",
            "status_target_url",
            "must be an http:// or https:// URL",
        ),
        (f"{{{GH}, status_token_env: T, status_context: ' '}}", "status_context", "must not be empty"),
        (f"{{{GIT}, status_repo: acme/envs}}", "status_repo", "applies only with 'status_api'"),
        (
            "{directory: envs, status_api: github, status_repo: a/b, status_token_env: T}",
            "status_api",
            "applies only to Git sources",
        ),
    ],
    ids=[
        "unknown-api",
        "no-token",
        "two-tokens",
        "bad-variable",
        "no-repo",
        "github-repo",
        "gitea-repo",
        "gitlab-repo",
        "no-url",
        "url-scheme",
        "target-url",
        "blank-context",
        "without-api",
        "directory",
    ],
)
def test_rejected_status_settings(tmp_path: Path, text: str, key: str, message: str) -> None:
    (tmp_path / "envs").mkdir()
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"- {text}\n")
    assert caught.value.key == f"sources[0].{key}"
    assert message in str(caught.value)
