"""The forges' REST APIs as data: the HTTP request each operation is, for GitHub, GitLab
and Gitea/Forgejo, and what their answers mean. Pure: no IO.

Operations: set a commit status; list, create and edit the comments of a pull/merge
request; read a pull/merge request (its title). Paths, methods, auth headers and body
fields follow each forge's documented API:

=========  ==========================================  ==============================
forge      comments of PR/MR ``n``                      auth header
=========  ==========================================  ==============================
github     ``/repos/{o}/{r}/issues/{n}/comments``       ``Authorization: Bearer <t>``
           (edit: ``PATCH /repos/{o}/{r}/issues/comments/{id}``)
gitea      ``/api/v1/repos/{o}/{r}/issues/{n}/comments`` ``Authorization: token <t>``
           (edit: ``PATCH .../issues/comments/{id}``)
gitlab     ``/api/v4/projects/{id}/merge_requests/{n}/notes``  ``PRIVATE-TOKEN: <t>``
           (edit: ``PUT .../notes/{id}``)
=========  ==========================================  ==============================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

GITHUB, GITLAB, GITEA = "github", "gitlab", "gitea"
APIS = (GITHUB, GITLAB, GITEA)
DEFAULT_GITHUB_URL = "https://api.github.com"
DESCRIPTION_LIMIT = 140  # GitHub refuses longer status descriptions
PAGE_SIZE = 100
PENDING, SUCCESS, FAILURE, ERROR = "pending", "success", "failure", "error"
GITLAB_STATES = {PENDING: "running", SUCCESS: "success", FAILURE: "failed", ERROR: "failed"}
SECRET_HEADERS = frozenset({"authorization", "private-token"})
_COMMIT_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256 object names


@dataclass(frozen=True, slots=True)
class Forge:
    """One repository on one forge: which API, its root URL and the repository's name
    (``owner/name``; for GitLab a project id or ``group/project`` path)."""

    api: str
    url: str | None  # the API root or the server; None: github.com
    repo: str

    @property
    def root(self) -> str:
        """The API root; a URL that already ends in it is taken as-is."""
        base = (self.url or DEFAULT_GITHUB_URL).rstrip("/")
        if self.api not in APIS:
            raise ValueError(f"unknown forge API {self.api!r}; use one of {', '.join(APIS)}")
        suffix = {GITHUB: "", GITEA: "/api/v1", GITLAB: "/api/v4"}[self.api]
        return base if not suffix or base.endswith(suffix) else base + suffix

    @property
    def repo_path(self) -> str:
        if self.api == GITLAB:
            return f"/projects/{quote(self.repo, safe='')}"
        owner, _, name = self.repo.partition("/")
        return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


@dataclass(frozen=True, slots=True)
class ForgeRequest:
    """One HTTP request to a forge. ``repr`` hides the token."""

    method: str
    url: str
    headers: dict[str, str]
    json: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return (
            f"ForgeRequest(method={self.method!r}, url={self.url!r}, "
            f"headers={redacted_headers(self.headers)!r}, json={self.json!r})"
        )


def redacted_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with credential values replaced by ``***``."""
    return {k: "***" if k.lower() in SECRET_HEADERS else v for k, v in headers.items()}


def headers_for(forge: Forge, token: str) -> dict[str, str]:
    common = {"Content-Type": "application/json", "User-Agent": "condaops"}
    if forge.api == GITHUB:
        auth = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
    elif forge.api == GITEA:
        auth = {"Authorization": f"token {token}", "Accept": "application/json"}
    elif forge.api == GITLAB:
        auth = {"PRIVATE-TOKEN": token, "Accept": "application/json"}
    else:
        raise ValueError(f"unknown forge API {forge.api!r}; use one of {', '.join(APIS)}")
    return {**auth, **common}


def repo_request(forge: Forge, token: str, method: str, path: str, body: dict[str, Any] | None = None) -> ForgeRequest:
    """A request to ``path`` below the repository (``/repos/{o}/{r}``, ``/projects/{id}``)."""
    return ForgeRequest(method, forge.root + forge.repo_path + path, headers_for(forge, token), body)


# --- commit statuses -------------------------------------------------------------------------


def status_request(
    forge: Forge, token: str, sha: str, *, state: str, context: str, description: str, target_url: str | None = None
) -> ForgeRequest:
    """Set the status ``context`` of commit ``sha``: ``pending``, ``success``, ``failure``
    or ``error`` (GitLab: ``running``, ``success``, ``failed``)."""
    body: dict[str, Any] = {"state": state, "context": context, "description": truncate(description)}
    if target_url:
        body["target_url"] = target_url
    if forge.api == GITLAB:
        body["state"], body["name"] = GITLAB_STATES[state], body.pop("context")
    return repo_request(forge, token, "POST", f"/statuses/{sha}", body)


def truncate(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_commit(revision: str | None) -> bool:
    """A full Git object name (what forges take), not a directory digest or a short SHA."""
    return revision is not None and _COMMIT_RE.fullmatch(revision) is not None


# --- pull/merge request comments -------------------------------------------------------------


def _comments_path(forge: Forge, number: int) -> str:
    return f"/merge_requests/{number}/notes" if forge.api == GITLAB else f"/issues/{number}/comments"


def list_comments_request(forge: Forge, token: str, number: int, page: int = 1) -> ForgeRequest:
    query: dict[str, int | str] = (
        {"per_page": PAGE_SIZE, "page": page} if forge.api != GITEA else {"limit": 50, "page": page}
    )
    if forge.api == GITLAB:
        query.update(sort="asc", order_by="created_at")
    return repo_request(forge, token, "GET", f"{_comments_path(forge, number)}?{urlencode(query)}")


def create_comment_request(forge: Forge, token: str, number: int, body: str) -> ForgeRequest:
    return repo_request(forge, token, "POST", _comments_path(forge, number), {"body": body})


def edit_comment_request(forge: Forge, token: str, number: int, comment_id: str, body: str) -> ForgeRequest:
    cid = quote(str(comment_id), safe="")
    if forge.api == GITLAB:
        return repo_request(forge, token, "PUT", f"/merge_requests/{number}/notes/{cid}", {"body": body})
    return repo_request(forge, token, "PATCH", f"/issues/comments/{cid}", {"body": body})


def pull_request_request(forge: Forge, token: str, number: int) -> ForgeRequest:
    path = f"/merge_requests/{number}" if forge.api == GITLAB else f"/pulls/{number}"
    return repo_request(forge, token, "GET", path)


def marked_comment(comments: object, marker: str) -> str | None:
    """The id of the first comment whose body holds ``marker`` (ours), or None."""
    for item in comments if isinstance(comments, list) else ():
        if isinstance(item, dict) and marker in str(item.get("body") or "") and item.get("id") is not None:
            return str(item["id"])
    return None


def comment_id(answer: object) -> str | None:
    return str(answer["id"]) if isinstance(answer, dict) and answer.get("id") is not None else None


def title_of(answer: object) -> str | None:
    title = answer.get("title") if isinstance(answer, dict) else None
    return title.strip() if isinstance(title, str) and title.strip() else None


def has_next_page(forge: Forge, headers: Mapping[str, str], items: object, page: int) -> bool:
    """Whether a listing continues after ``page``: the ``Link: rel="next"`` header (GitHub,
    Gitea) or ``X-Next-Page`` (GitLab); without either, a full page may have more."""
    lower = {k.lower(): v for k, v in headers.items()}
    if "link" in lower:
        return 'rel="next"' in lower["link"]
    if lower.get("x-next-page") is not None:
        return bool(lower["x-next-page"].strip())
    size = 50 if forge.api == GITEA else PAGE_SIZE
    return isinstance(items, list) and len(items) >= size
