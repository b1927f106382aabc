"""Pull/merge requests and labels on the loopback forge (``tests.support.forge``), checked
against each forge's documented API: GitHub's ``/pulls`` and issue labels, GitLab's
``/merge_requests``, Gitea's ``/pulls`` and repository labels. A request opening a second
pull request from the same branch is refused as the forges refuse it (GitHub and Gitea
422, GitLab 409); with ``repo_path`` set, the head branch must exist in that repository.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

Answer = tuple[int, Any, dict[str, str]] | str


def route_pulls(f: Any, r: Any, path: str, repo: str) -> Answer | None:
    """The answer to a pull-request or label request, or None when it is none of those."""
    if f.api == "gitlab":
        if re.fullmatch(repo + r"/merge_requests", path):
            return _gl_list(f, r) if r.method == "GET" else _create(f, r) if r.method == "POST" else "method"
        if m := re.fullmatch(repo + r"/merge_requests/(\d+)", path):
            number = int(m.group(1))
            return _get(f, number) if r.method == "GET" else _gl_edit(f, r, number) if r.method == "PUT" else "method"
        return None
    if re.fullmatch(repo + r"/pulls", path):
        return _list(f, r) if r.method == "GET" else _create(f, r) if r.method == "POST" else "method"
    if m := re.fullmatch(repo + r"/pulls/(\d+)", path):
        number = int(m.group(1))
        return _get(f, number) if r.method == "GET" else _edit(f, r, number) if r.method == "PATCH" else "method"
    if (m := re.fullmatch(repo + r"/issues/(\d+)/labels", path)) and r.method == "POST":
        return _add_labels(f, r, int(m.group(1)))
    if f.api == "gitea" and re.fullmatch(repo + r"/labels", path) and r.method == "GET":
        return 200, [{"id": i, "name": n} for n, i in sorted(f.labels.items())], {}
    return None


def view(f: Any, pr: dict[str, Any]) -> dict[str, Any]:
    """A pull request as the forge's API shows it."""
    url = f"{f.url}/{f.repo}/{'-/merge_requests' if f.api == 'gitlab' else 'pulls'}/{pr['number']}"
    if f.api == "gitlab":
        state = "merged" if pr["merged"] else pr["state"].replace("open", "opened")
        return {
            "iid": pr["number"],
            "web_url": url,
            "state": state,
            "source_branch": pr["head"],
            "target_branch": pr["base"],
            "title": pr["title"],
            "description": pr["body"],
            "labels": list(pr["labels"]),
        }
    labels = [{"name": n, **({"id": f.labels.get(n)} if f.api == "gitea" else {})} for n in pr["labels"]]
    return {
        "number": pr["number"],
        "html_url": url,
        "state": pr["state"],
        "merged": pr["merged"],
        "head": {"ref": pr["head"]},
        "base": {"ref": pr["base"]},
        "title": pr["title"],
        "body": pr["body"],
        "labels": labels,
    }


def _open_from(f: Any, head: str) -> dict[str, Any] | None:
    return next((p for p in f.pulls.values() if p["head"] == head and p["state"] == "open"), None)


def _list(f: Any, r: Any) -> Answer:
    state = r.query.get("state", ["open"])[0]
    items = [p for p in sorted(f.pulls.values(), key=lambda p: p["number"]) if state == "all" or p["state"] == state]
    if f.api == "github" and "head" in r.query:
        owner, _, branch = r.query["head"][0].partition(":")
        if owner != f.repo.split("/")[0]:
            return f"head must be 'owner:branch', got {r.query['head'][0]!r}"
        items = [p for p in items if p["head"] == branch]
    size_key = "limit" if f.api == "gitea" else "per_page"
    size, page = int(r.query.get(size_key, ["30"])[0]), int(r.query.get("page", ["1"])[0])
    if size > (50 if f.api == "gitea" else 100):
        return f"{size_key} is too large"
    chunk = items[(page - 1) * size : page * size]
    headers = {"Link": f'<{f.url}?page={page + 1}>; rel="next"'} if page * size < len(items) else {}
    return 200, [view(f, p) for p in chunk], headers


def _gl_list(f: Any, r: Any) -> Answer:
    state = {"opened": "open", "closed": "closed", "merged": "merged"}.get(r.query.get("state", ["all"])[0])
    items = [p for p in sorted(f.pulls.values(), key=lambda p: p["number"])]
    if state == "merged":
        items = [p for p in items if p["merged"]]
    elif state is not None:
        items = [p for p in items if p["state"] == state and not p["merged"]]
    for key, field in (("source_branch", "head"), ("target_branch", "base")):
        if key in r.query:
            items = [p for p in items if p[field] == r.query[key][0]]
    return 200, [view(f, p) for p in items], {"X-Next-Page": ""}


def _create(f: Any, r: Any) -> Answer:
    from tests.support.forge import _fields

    if f.api == "gitlab":
        problem = _fields(
            r.body, {"source_branch": str, "target_branch": str, "title": str}, {"description": str, "labels": str}
        )
        head, base, body_key = (r.body or {}).get("source_branch"), (r.body or {}).get("target_branch"), "description"
    else:
        optional = {
            "body": str,
            **({"labels": list} if f.api == "gitea" else {"draft": bool, "maintainer_can_modify": bool}),
        }
        problem = _fields(r.body, {"head": str, "base": str, "title": str}, optional)
        head, base, body_key = (r.body or {}).get("head"), (r.body or {}).get("base"), "body"
    if problem:
        return problem
    if f.repo_path is not None and not _branch_exists(f.repo_path, head):
        return 422, {"message": f"head branch {head!r} does not exist"}, {}
    if _open_from(f, head) is not None:
        status = 409 if f.api == "gitlab" else 422
        return status, {"message": "A pull request already exists for this branch"}, {}
    labels = _label_names(f, r.body.get("labels")) if "labels" in r.body else []
    if isinstance(labels, str):
        return labels
    f.next_number += 1
    pr = {
        "number": f.next_number,
        "head": head,
        "base": base,
        "title": r.body["title"],
        "body": r.body.get(body_key, ""),
    }
    pr |= {"state": "open", "merged": False, "labels": labels}
    f.pulls[pr["number"]] = pr
    return 201, view(f, pr), {}


def _get(f: Any, number: int) -> Answer:
    pr = f.pulls.get(number)
    if pr is None:  # a change request the tests made with git alone: only its title is known
        key = "iid" if f.api == "gitlab" else "number"
        return 200, {key: number, "title": f.titles.get(number, f"PR {number}")}, {}
    return 200, view(f, pr), {}


def _edit(f: Any, r: Any, number: int) -> Answer:
    from tests.support.forge import _fields

    problem = _fields(r.body, {}, {"title": str, "body": str, "state": str, "base": str})
    if problem:
        return problem
    pr = f.pulls.get(number)
    if pr is None:
        return 404, {"message": "Not Found"}, {}
    if r.body.get("state") not in (None, "open", "closed"):
        return f"state must be open or closed, got {r.body['state']!r}"
    for key in ("title", "body"):
        if key in r.body:
            pr[key] = r.body[key]
    if "state" in r.body:
        pr["state"] = r.body["state"]
    f.edits += 1
    return 200, view(f, pr), {}


def _gl_edit(f: Any, r: Any, number: int) -> Answer:
    from tests.support.forge import _fields

    problem = _fields(r.body, {}, {"title": str, "description": str, "state_event": str, "add_labels": str})
    if problem:
        return problem
    pr = f.pulls.get(number)
    if pr is None:
        return 404, {"message": "Not Found"}, {}
    if r.body.get("state_event") not in (None, "close", "reopen"):
        return "state_event must be close or reopen"
    if "title" in r.body:
        pr["title"] = r.body["title"]
    if "description" in r.body:
        pr["body"] = r.body["description"]
    if "state_event" in r.body:
        pr["state"] = "closed" if r.body["state_event"] == "close" else "open"
    added = [n for n in r.body.get("add_labels", "").split(",") if n]
    pr["labels"] += [n for n in added if n not in pr["labels"]]
    f.edits += 1
    return 200, view(f, pr), {}


def _add_labels(f: Any, r: Any, number: int) -> Answer:
    from tests.support.forge import _fields

    problem = _fields(r.body, {"labels": list}, {})
    if problem:
        return problem
    pr = f.pulls.get(number)
    if pr is None:
        return 404, {"message": "Not Found"}, {}
    names = _label_names(f, r.body["labels"])
    if isinstance(names, str):
        return names
    pr["labels"] += [n for n in names if n not in pr["labels"]]
    return 200, [{"name": n} for n in pr["labels"]], {}


def _label_names(f: Any, given: Any) -> list[str] | str:
    """Label names from a request: names on GitHub and GitLab (a comma list), ids on Gitea."""
    if f.api == "gitlab":
        return [n for n in str(given or "").split(",") if n]
    if not isinstance(given, list):
        return "labels must be a list"
    if f.api == "gitea":
        by_id = {i: n for n, i in f.labels.items()}
        if not all(isinstance(x, int) and x in by_id for x in given):
            return f"Gitea takes label ids it has ({sorted(by_id)}), got {given}"
        return [by_id[x] for x in given]
    if not all(isinstance(x, str) for x in given):
        return "GitHub takes label names"
    return list(given)


def _branch_exists(repo_path: Any, branch: str | None) -> bool:
    if not branch:
        return False
    done = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"], cwd=repo_path, capture_output=True
    )
    return done.returncode == 0
