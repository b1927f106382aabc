"""Webhooks, decided: URL normalization and matching, signatures, and every answer of ``decide``."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from condaops.config.settings import SourceSettings
from condaops.reconciler.hooks import (
    UNVERIFIED,
    decide,
    matching_sources,
    normalize_repo_url,
    payload_repo_urls,
    verify_signature,
)

SECRET = b"hook-secret-value-0123"
BODY = b'{"repository": {"clone_url": "https://github.com/conda/envs.git"}}'


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


# --- URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/conda/envs.git", "github.com/conda/envs"),
        ("https://github.com/conda/envs", "github.com/conda/envs"),
        ("https://github.com/conda/envs/", "github.com/conda/envs"),
        ("HTTPS://GitHub.COM/Conda/Envs.git", "github.com/conda/envs"),
        ("https://user:token@github.com/conda/envs.git", "github.com/conda/envs"),
        ("git@github.com:conda/envs.git", "github.com/conda/envs"),
        ("ssh://git@github.com/conda/envs.git", "github.com/conda/envs"),
        ("ssh://git@gitlab.example.org:2222/group/sub/proj.git", "gitlab.example.org/group/sub/proj"),
        ("git://127.0.0.1:9418/envs", "127.0.0.1/envs"),
        ("http://gitlab.example.org:8080/group/proj", "gitlab.example.org/group/proj"),
        ("/srv/git/envs.git", "/srv/git/envs"),
        ("file:///srv/git/envs", "/srv/git/envs"),
        ("  https://github.com/conda/envs.git  ", "github.com/conda/envs"),
    ],
    ids=[
        "https-dotgit",
        "https",
        "trailing-slash",
        "case",
        "userinfo",
        "scp",
        "ssh",
        "ssh-port-subgroup",
        "git-daemon",
        "http-port",
        "local-path",
        "file-url",
        "whitespace",
    ],
)
def test_normalize_repo_url(url: str, expected: str) -> None:
    assert normalize_repo_url(url) == expected


GITHUB_PUSH = {
    "ref": "refs/heads/main",
    "repository": {
        "url": "https://github.com/conda/envs",
        "html_url": "https://github.com/conda/envs",
        "clone_url": "https://github.com/conda/envs.git",
        "git_url": "git://github.com/conda/envs.git",
        "ssh_url": "git@github.com:conda/envs.git",
    },
}
GITLAB_PUSH = {
    "object_kind": "push",
    "project": {
        "web_url": "https://gitlab.example.org/group/proj",
        "git_ssh_url": "git@gitlab.example.org:group/proj.git",
        "git_http_url": "https://gitlab.example.org/group/proj.git",
    },
}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (GITHUB_PUSH, 4),  # url and html_url are the same
        (GITLAB_PUSH, 3),
        ({"repository": {"clone_url": 7, "ssh_url": ""}}, 0),
        ({"zen": "ping"}, 0),
        ([1, 2], 0),
        ("text", 0),
    ],
    ids=["github", "gitlab", "bad-values", "no-repository", "list", "string"],
)
def test_payload_repo_urls(payload: object, expected: int) -> None:
    assert len(payload_repo_urls(payload)) == expected


def git_source(name: str, git: str | None, **kw: object) -> SourceSettings:
    return SourceSettings(name=name, git=git, **kw)  # type: ignore[arg-type]


SOURCES = (
    git_source("gh", "git@github.com:conda/envs.git", webhook_secret_env="GH"),
    git_source("gh-https", "https://GitHub.com/conda/envs", webhook_secret_env="GH2"),
    git_source("gl", "https://gitlab.example.org/group/proj.git", webhook_secret_env="GL"),
    git_source("other", "https://github.com/conda/other.git"),
    SourceSettings(name="dir"),
)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (GITHUB_PUSH, ["gh", "gh-https"]),
        (GITLAB_PUSH, ["gl"]),
        ({"repository": {"clone_url": "https://github.com/conda/envs-fork.git"}}, []),
        ({"repository": {"clone_url": "https://evil.example/conda/envs.git"}}, []),
    ],
    ids=["github-both-forms", "gitlab", "prefix-is-not-a-match", "other-host"],
)
def test_matching_sources(payload: object, expected: list[str]) -> None:
    assert [s.name for s in matching_sources(SOURCES, payload_repo_urls(payload))] == expected


# --- signatures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "secret", "valid"),
    [
        ({"x-hub-signature-256": sign(BODY)}, SECRET, True),
        ({"x-hub-signature-256": sign(BODY).upper().replace("SHA256=", "sha256=")}, SECRET, True),
        ({"x-condaops-signature": sign(BODY)}, SECRET, True),
        ({"x-gitlab-token": SECRET.decode()}, SECRET, True),
        ({"x-hub-signature-256": sign(BODY, b"other")}, SECRET, False),
        ({"x-hub-signature-256": sign(BODY + b" ")}, SECRET, False),
        ({"x-hub-signature-256": sign(BODY)[len("sha256=") :]}, SECRET, False),
        ({"x-hub-signature-256": "sha1=" + hmac.new(SECRET, BODY, hashlib.sha1).hexdigest()}, SECRET, False),
        ({"x-hub-signature-256": "sha256=zz\u00e9"}, SECRET, False),
        ({"x-gitlab-token": SECRET.decode() + "x"}, SECRET, False),
        ({"x-gitlab-token": ""}, SECRET, False),
        ({}, SECRET, False),
        ({"x-hub-signature-256": sign(BODY, b"")}, b"", False),
        ({"x-hub-signature-256": sign(BODY)}, None, False),
        ({"x-hub-signature-256": "sha256=00", "x-gitlab-token": SECRET.decode()}, SECRET, True),
    ],
    ids=[
        "github",
        "hex-case",
        "generic",
        "gitlab",
        "wrong-secret",
        "changed-body",
        "no-prefix",
        "sha1",
        "non-ascii",
        "gitlab-wrong",
        "gitlab-empty",
        "no-header",
        "empty-secret",
        "no-secret",
        "one-valid-of-two",
    ],
)
def test_verify_signature(headers: dict[str, str], secret: bytes | None, valid: bool) -> None:
    assert verify_signature(headers, BODY, secret) is valid


# --- decide -------------------------------------------------------------------------------

SECRETS = {"gh": SECRET, "gh-https": b"another-secret-value", "gl": SECRET}


def secret_of(source: SourceSettings) -> bytes | None:
    return SECRETS.get(source.name)


def github_body(payload: object = GITHUB_PUSH) -> bytes:
    return json.dumps(payload).encode()


GH = github_body()
GL = github_body(GITLAB_PUSH)
NONE_MATCH = github_body({"repository": {"clone_url": "https://github.com/x/y.git"}})


@pytest.mark.parametrize(
    ("headers", "body", "source", "status", "sources"),
    [
        ({"x-hub-signature-256": sign(GH)}, GH, None, 202, ("gh",)),
        ({"x-hub-signature-256": sign(GH, b"another-secret-value")}, GH, None, 202, ("gh-https",)),
        ({"x-gitlab-token": SECRET.decode()}, GL, None, 202, ("gl",)),
        ({"x-condaops-signature": sign(b"{}")}, b"{}", "gh", 202, ("gh",)),
        ({"x-hub-signature-256": sign(GH), "x-github-event": "ping"}, GH, None, 200, ("gh",)),
        ({"x-hub-signature-256": sign(GH, b"wrong")}, GH, None, 401, ()),
        ({}, GH, None, 401, ()),
        ({"x-hub-signature-256": sign(GH, b"wrong"), "x-github-event": "ping"}, GH, None, 401, ()),
        ({"x-hub-signature-256": sign(b"not json")}, b"not json", None, 400, ()),
        ({"x-hub-signature-256": sign(b"\xff\xfe")}, b"\xff\xfe", None, 400, ()),
        ({}, b"\xff\xfe", None, 401, ()),
        ({"x-hub-signature-256": sign(NONE_MATCH)}, NONE_MATCH, None, 401, ()),
        ({}, NONE_MATCH, None, 401, ()),
        ({"x-hub-signature-256": sign(GH)}, GH, "nope", 401, ()),
        ({"x-hub-signature-256": sign(GH)}, GH, "other", 401, ()),
        ({"x-hub-signature-256": sign(GH)}, GH, "dir", 401, ()),
        ({"x-hub-signature-256": sign(b'{"a":' * 50_000)}, b'{"a":' * 50_000, None, 400, ()),
        ({}, b'{"a":' * 50_000, None, 401, ()),
        ({}, b"not json", "gh", 401, ()),
        ({"x-condaops-signature": sign(b"not json")}, b"not json", "gh", 400, ()),
    ],
    ids=[
        "github",
        "second-source-own-secret",
        "gitlab",
        "by-name",
        "ping",
        "bad-signature",
        "unsigned",
        "unsigned-ping",
        "not-json",
        "not-utf8",
        "not-utf8-unsigned",
        "no-match",
        "no-match-unsigned",
        "unknown-name",
        "name-without-secret",
        "name-of-directory",
        "deep-signed",
        "deep-unsigned",
        "by-name-unsigned-first",
        "by-name-signed-not-json",
    ],
)
def test_decide(
    headers: dict[str, str], body: bytes, source: str | None, status: int, sources: tuple[str, ...]
) -> None:
    decision = decide(SOURCES, headers, body, secret_of, source=source)
    assert (decision.status, decision.sources) == (status, sources), decision.detail


def test_decide_never_repeats_the_secret() -> None:
    decision = decide(SOURCES, {"x-gitlab-token": "guess"}, GL, secret_of)
    assert decision.status == 401
    assert SECRET.decode() not in decision.detail and "guess" not in decision.detail


def test_an_unmatched_url_is_named_in_the_log_note_without_its_user_info() -> None:
    body = github_body({"repository": {"clone_url": "https://bot:ghp_token123@github.com/x/y.git"}})
    decision = decide(SOURCES, {"x-hub-signature-256": sign(body)}, body, secret_of)
    assert decision.status == 401 and decision.detail == UNVERIFIED  # the caller learns nothing
    assert "github.com/x/y" in decision.note and "ghp_token123" not in decision.note


def test_unsigned_calls_get_one_answer_whether_or_not_a_source_matches() -> None:
    answers = {decide(SOURCES, {}, body, secret_of, source=name) for body in (GH, NONE_MATCH) for name in (None, "gh")}
    assert {(a.status, a.detail, a.sources) for a in answers} == {(401, UNVERIFIED, ())}
