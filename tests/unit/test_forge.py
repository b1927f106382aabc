"""The forge client's pure parts: requests per API, rate-limit waits, web links."""

from __future__ import annotations

from dataclasses import replace

import pytest

from condaops.config import SourceSettings
from condaops.reconciler.forge import api, links
from condaops.reconciler.forge.client import RetryPolicy, rate_limit_wait, redact

TOKEN = "tok-9c1d7e"
SHA = "0123456789abcdef0123456789abcdef01234567"
FORGES = {
    "github": api.Forge("github", None, "acme/envs"),
    "gitea": api.Forge("gitea", "https://gitea.example", "acme/envs"),
    "gitlab": api.Forge("gitlab", "https://gitlab.example/", "acme/infra/envs"),
}


@pytest.mark.parametrize(
    ("name", "method", "url", "body"),
    [
        ("github", "POST", "https://api.github.com/repos/acme/envs/issues/7/comments", {"body": "hi"}),
        ("gitea", "POST", "https://gitea.example/api/v1/repos/acme/envs/issues/7/comments", {"body": "hi"}),
        ("gitlab", "POST", "https://gitlab.example/api/v4/projects/acme%2Finfra%2Fenvs/merge_requests/7/notes", None),
    ],
    ids=["github", "gitea", "gitlab"],
)
def test_create_comment(name: str, method: str, url: str, body: dict | None) -> None:
    req = api.create_comment_request(FORGES[name], TOKEN, 7, "hi")
    assert (req.method, req.url, req.json) == (method, url, body or {"body": "hi"})
    assert TOKEN not in repr(req)


@pytest.mark.parametrize(
    ("name", "method", "path"),
    [
        ("github", "PATCH", "/repos/acme/envs/issues/comments/55"),
        ("gitea", "PATCH", "/api/v1/repos/acme/envs/issues/comments/55"),
        ("gitlab", "PUT", "/api/v4/projects/acme%2Finfra%2Fenvs/merge_requests/7/notes/55"),
    ],
    ids=["github", "gitea", "gitlab"],
)
def test_edit_comment(name: str, method: str, path: str) -> None:
    req = api.edit_comment_request(FORGES[name], TOKEN, 7, "55", "new")
    assert req.method == method and req.url.endswith(path) and req.json == {"body": "new"}


def test_list_comments_pages_and_the_marker() -> None:
    gh = api.list_comments_request(FORGES["github"], TOKEN, 7, page=2)
    assert gh.url.endswith("/issues/7/comments?per_page=100&page=2") and gh.method == "GET" and gh.json is None
    gl = api.list_comments_request(FORGES["gitlab"], TOKEN, 7)
    assert "sort=asc" in gl.url and "per_page=100" in gl.url
    comments = [{"id": 1, "body": "lgtm"}, {"id": 2, "body": "<!-- m -->\nreview"}, {"id": 3, "body": "<!-- m -->"}]
    assert api.marked_comment(comments, "<!-- m -->") == "2"
    assert api.marked_comment({"message": "x"}, "<!-- m -->") is None
    assert api.has_next_page(FORGES["github"], {"Link": '<x?page=3>; rel="next"'}, [], 2)
    assert not api.has_next_page(FORGES["gitlab"], {"X-Next-Page": ""}, [{}] * 100, 1)
    assert api.has_next_page(FORGES["gitea"], {}, [{}] * 50, 1)


def test_status_for_gitlab_uses_its_words() -> None:
    req = api.status_request(
        FORGES["gitlab"], TOKEN, SHA, state="failure", context="condaops/review", description="x" * 300
    )
    assert req.json == {"state": "failed", "name": "condaops/review", "description": "x" * 139 + "…"}


NOW = 40_000.0  # seconds since the epoch: 1970-01-01 11:06:40 UTC


@pytest.mark.parametrize(
    ("status", "headers", "text", "wait"),
    [
        (429, {"Retry-After": "7"}, "", 7.0),
        (429, {}, "", 0.0),
        (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2000000000"}, "", 2_000_000_000 - NOW),
        (403, {"Retry-After": "30"}, "", 30.0),
        (403, {}, "You have exceeded a secondary rate limit", 60.0),
        (429, {"RateLimit-Reset": "12"}, "", 12.0),
        (403, {}, "Resource not accessible by integration", None),
        (503, {"Retry-After": "5"}, "", None),
        (429, {"Retry-After": "Thu, 01 Jan 1970 11:35:00 GMT"}, "", 1700.0),
    ],
    ids=["429", "429-bare", "primary", "secondary", "secondary-bare", "gitlab", "forbidden", "503", "date"],
)
def test_rate_limit_waits(status: int, headers: dict, text: str, wait: float | None) -> None:
    assert rate_limit_wait(status, headers, text, NOW) == wait


def test_backoff_and_redaction() -> None:
    assert [RetryPolicy(backoff=2, backoff_max=5).delay(n) for n in (1, 2, 3)] == [2, 4, 5]
    assert redact(f"401 Bad credentials {TOKEN}\n\n", [TOKEN]) == "401 Bad credentials ***"


@pytest.mark.parametrize(
    ("git", "web"),
    [
        ("https://github.com/acme/envs.git", "https://github.com/acme/envs"),
        ("git@github.com:acme/envs.git", "https://github.com/acme/envs"),
        ("ssh://git@gitlab.example:2222/g/sub/p.git", "https://gitlab.example/g/sub/p"),
        ("http://gitea.lan:3000/o/r", "http://gitea.lan:3000/o/r"),
        ("https://token@github.com/acme/envs", "https://github.com/acme/envs"),
        ("/srv/git/envs.git", None),
        ("git://127.0.0.1/envs", None),
    ],
)
def test_web_url_guesses(git: str, web: str | None) -> None:
    assert links.guess_web_url(git) == web


def test_links_per_forge() -> None:
    gh = SourceSettings(name="e", git="git@github.com:acme/envs.git", path="envs")
    assert links.pull_request_url(gh, "7") == "https://github.com/acme/envs/pull/7"
    assert links.file_url(gh, SHA, "team/a.yaml") == f"https://github.com/acme/envs/blob/{SHA}/envs/team/a.yaml"
    gl = replace(gh, git="https://gitlab.example/g/p.git")
    assert links.pull_request_url(gl, "7") == "https://gitlab.example/g/p/-/merge_requests/7"
    assert links.commit_url(gl, SHA) == f"https://gitlab.example/g/p/-/commit/{SHA}"
    gt = replace(gh, git="/srv/envs.git", web_url="https://code.example/o/r/", status_api="gitea")
    assert links.pull_request_url(gt, "7") == "https://code.example/o/r/pulls/7"
    assert links.file_url(gt, SHA, "a.yaml") == f"https://code.example/o/r/src/commit/{SHA}/envs/a.yaml"
    assert links.pull_request_url(gh, "heads-review-x") is None
