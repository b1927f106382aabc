"""Pull/merge requests and labels as data: the requests that find, open, edit and close
one, per forge, and what their answers mean. Pure: no IO (``api`` builds the requests).

=========  ===================================================  =====================================
forge      list open, by branch                                  create / edit
=========  ===================================================  =====================================
github     ``GET /repos/{o}/{r}/pulls?state=open&head=o:b``      ``POST .../pulls``, ``PATCH .../pulls/{n}``
gitlab     ``GET /projects/{id}/merge_requests?state=opened``   ``POST .../merge_requests``,
           ``&source_branch=b``                                  ``PUT .../merge_requests/{iid}``
gitea      ``GET /repos/{o}/{r}/pulls?state=open`` (filtered     ``POST .../pulls``, ``PATCH .../pulls/{n}``
           by ``head.ref`` here: Gitea has no head filter)
=========  ===================================================  =====================================

Labels: GitHub adds them by name (``POST .../issues/{n}/labels``; unknown names are
created); GitLab takes them by name when creating or editing (``labels``/``add_labels``,
created at project level); Gitea takes label *ids* (``GET .../labels`` maps names; names
the repository does not have are left out, and said so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from condaops.reconciler.forge.api import GITEA, GITHUB, GITLAB, PAGE_SIZE, Forge, ForgeRequest, repo_request

GITEA_PAGE = 50


@dataclass(frozen=True, slots=True)
class PullInfo:
    """One pull/merge request as the forge describes it."""

    number: int
    url: str | None
    state: str  # open | closed | merged
    head: str | None  # the source branch


def list_pulls_request(forge: Forge, token: str, branch: str, base: str, page: int = 1) -> ForgeRequest:
    """Open pull requests from ``branch`` into ``base`` (Gitea: every open one, a page)."""
    if forge.api == GITLAB:
        query = {"state": "opened", "source_branch": branch, "target_branch": base, "per_page": PAGE_SIZE}
        return repo_request(forge, token, "GET", f"/merge_requests?{urlencode(query)}")
    if forge.api == GITHUB:
        owner = forge.repo.partition("/")[0]
        query = {"state": "open", "head": f"{owner}:{branch}", "base": base, "per_page": PAGE_SIZE, "page": page}
        return repo_request(forge, token, "GET", f"/pulls?{urlencode(query)}")
    return repo_request(
        forge, token, "GET", f"/pulls?{urlencode({'state': 'open', 'limit': GITEA_PAGE, 'page': page})}"
    )


def get_pull_request(forge: Forge, token: str, number: int) -> ForgeRequest:
    path = f"/merge_requests/{number}" if forge.api == GITLAB else f"/pulls/{number}"
    return repo_request(forge, token, "GET", path)


def create_pull_request(
    forge: Forge, token: str, *, branch: str, base: str, title: str, body: str, labels: Sequence[object] = ()
) -> ForgeRequest:
    """``labels``: names (GitLab), ids (Gitea); GitHub takes none here (``add_labels_request``)."""
    if forge.api == GITLAB:
        fields: dict[str, Any] = {"source_branch": branch, "target_branch": base, "title": title, "description": body}
        if labels:
            fields["labels"] = ",".join(str(label) for label in labels)
        return repo_request(forge, token, "POST", "/merge_requests", fields)
    fields = {"head": branch, "base": base, "title": title, "body": body}
    if forge.api == GITEA and labels:
        fields["labels"] = list(labels)
    return repo_request(forge, token, "POST", "/pulls", fields)


def edit_pull_request(
    forge: Forge, token: str, number: int, *, title: str | None = None, body: str | None = None, close: bool = False
) -> ForgeRequest:
    """Change the title and body of a pull request, or close it."""
    if forge.api == GITLAB:
        fields: dict[str, Any] = {}
        if title is not None:
            fields["title"] = title
        if body is not None:
            fields["description"] = body
        if close:
            fields["state_event"] = "close"
        return repo_request(forge, token, "PUT", f"/merge_requests/{number}", fields)
    fields = {k: v for k, v in (("title", title), ("body", body)) if v is not None}
    if close:
        fields["state"] = "closed"
    return repo_request(forge, token, "PATCH", f"/pulls/{number}", fields)


def add_labels_request(forge: Forge, token: str, number: int, labels: Sequence[object]) -> ForgeRequest:
    """Add labels to an open pull request: names (GitHub, GitLab) or ids (Gitea)."""
    if forge.api == GITLAB:
        fields = {"add_labels": ",".join(str(label) for label in labels)}
        return repo_request(forge, token, "PUT", f"/merge_requests/{number}", fields)
    return repo_request(forge, token, "POST", f"/issues/{number}/labels", {"labels": list(labels)})


def list_labels_request(forge: Forge, token: str, page: int = 1) -> ForgeRequest:
    """Gitea: the repository's labels (names → ids)."""
    return repo_request(forge, token, "GET", f"/labels?{urlencode({'limit': GITEA_PAGE, 'page': page})}")


def pull_of(forge: Forge, answer: object) -> PullInfo | None:
    """The pull request an answer describes, or None when it describes none."""
    if not isinstance(answer, dict):
        return None
    if forge.api == GITLAB:
        number, url, head = answer.get("iid"), answer.get("web_url"), answer.get("source_branch")
        state = {"opened": "open", "merged": "merged"}.get(str(answer.get("state")), "closed")
    else:
        number, url = answer.get("number"), answer.get("html_url")
        head_info = answer.get("head")
        head = head_info.get("ref") if isinstance(head_info, dict) else None
        merged = bool(answer.get("merged") or answer.get("merged_at"))
        state = "merged" if merged else "open" if answer.get("state") == "open" else "closed"
    if not isinstance(number, int):
        return None
    return PullInfo(number, url if isinstance(url, str) else None, state, head if isinstance(head, str) else None)


def pull_for_branch(forge: Forge, answer: object, branch: str) -> PullInfo | None:
    """The open pull request from ``branch`` in a listing (the forges that filter send only it)."""
    for item in answer if isinstance(answer, list) else ():
        found = pull_of(forge, item)
        if found is not None and found.state == "open" and found.head == branch:
            return found
    return None


def label_ids(answer: object, names: Sequence[str]) -> dict[str, int]:
    """Gitea: ids of the labels named ``names`` in a listing of the repository's labels."""
    wanted = set(names)
    out = {}
    for item in answer if isinstance(answer, list) else ():
        if isinstance(item, dict) and item.get("name") in wanted and isinstance(item.get("id"), int):
            out[item["name"]] = item["id"]
    return out


def branch_url(web: str | None, api: str, branch: str) -> str | None:
    """The branch's page on the forge, for messages."""
    if web is None:
        return None
    return (
        f"{web}/-/tree/{quote(branch)}"
        if api == GITLAB
        else f"{web}/{'src/branch' if api == GITEA else 'tree'}/{quote(branch)}"
    )
