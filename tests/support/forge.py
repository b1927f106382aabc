"""A forge on 127.0.0.1 that speaks the documented REST API of GitHub, GitLab or Gitea for
what condaops uses — commit statuses, pull/merge request comments, pull/merge requests
(listed, opened, edited, closed, labelled: ``forge_pulls``) —
and checks every request against it: path, method, auth header, JSON body fields (names,
types, allowed values). Anything else is answered 400/404 and recorded in ``violations``
(tests assert it stays empty). Comments live in memory, with pagination as each forge
does it (``Link: rel="next"`` on GitHub and Gitea, ``X-Next-Page`` on GitLab).

Failures are scripted: ``fail(status, headers, times)`` answers the next requests with an
error (502, 429 with ``Retry-After``, 403 with ``X-RateLimit-Remaining: 0``...),
``hang(seconds)`` holds them.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.forge_pulls import route_pulls
from tests.support.loopback import serve_http

STATES = {
    "github": {"pending", "success", "failure", "error"},
    "gitea": {"pending", "success", "failure", "error", "warning"},
    "gitlab": {"pending", "running", "success", "failed", "canceled"},
}
ROOTS = {"github": "", "gitea": "/api/v1", "gitlab": "/api/v4"}


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    at: float


@dataclass
class ForgeState:
    api: str
    repo: str
    token: str
    url: str = ""
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    titles: dict[int, str] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    scripted: deque = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_id: int = 1000
    edited: threading.Event = field(default_factory=threading.Event)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)  # number -> pull request (forge_pulls)
    labels: dict[str, int] = field(default_factory=dict)  # Gitea: the repository's labels, name -> id
    next_number: int = 0
    edits: int = 0
    repo_path: Path | None = None  # the repository behind the forge: opened branches must exist there

    def open_pulls(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(p) for p in self.pulls.values() if p["state"] == "open"]

    def close_pull(self, number: int, *, merged: bool = False) -> None:
        """A person closes (or merges) a pull request."""
        with self.lock:
            self.pulls[number]["state"] = "closed"
            self.pulls[number]["merged"] = merged

    # --- scripting and reading ----------------------------------------------------------

    def fail(self, status: int, headers: dict[str, str] | None = None, times: int = 1, *, path: str = "") -> None:
        """Answer the next ``times`` requests (whose path contains ``path``) with ``status``."""
        for _ in range(times):
            self.scripted.append(("fail", status, headers or {}, path))

    def hang(self, seconds: float, times: int = 1, *, path: str = "") -> None:
        """Hold the next ``times`` requests (whose path contains ``path``), then hang up."""
        for _ in range(times):
            self.scripted.append(("hang", seconds, {}, path))

    def _next_script(self, path: str) -> tuple | None:  # type: ignore[type-arg]
        for index, entry in enumerate(self.scripted):
            if entry[3] in path:
                del self.scripted[index]
                return entry
        return None

    def add_comment(self, number: int, body: str, author: str = "someone") -> int:
        with self.lock:
            self.next_id += 1
            self.comments.setdefault(number, []).append({"id": self.next_id, "body": body, "user": author})
            return self.next_id

    def bodies(self, number: int) -> list[str]:
        with self.lock:
            return [c["body"] for c in self.comments.get(number, [])]

    def review_statuses(self) -> list[dict[str, Any]]:
        key = "name" if self.api == "gitlab" else "context"
        return [s for s in self.statuses if str(s.get(key, "")).endswith("/review")]

    def wait_for(self, check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                result = check()
            if result:
                return result
            time.sleep(0.01)
        raise AssertionError(f"forge: timed out; requests: {[(r.method, r.path) for r in self.requests][-10:]}")


class _Handler(http.server.BaseHTTPRequestHandler):
    forge: ForgeState

    def do_GET(self) -> None:  # noqa: N802 - http.server's names
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle()

    def do_PUT(self) -> None:  # noqa: N802
        self._handle()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _handle(self) -> None:
        f = self.forge
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = "<not json>"
        seen = Seen(self.command, parts.path, parse_qs(parts.query), headers, body, time.monotonic())
        with f.lock:
            f.requests.append(seen)
            script = f._next_script(parts.path)
        if script and script[0] == "hang":
            time.sleep(script[1])
            self.close_connection = True
            return
        if script and script[0] == "fail":
            return self._send(script[1], {"message": f"scripted {script[1]}"}, script[2])
        problem = self._auth_problem(headers)
        if problem:
            return self._violation(401, problem)
        with f.lock:
            answer = _route(f, seen)
        if isinstance(answer, str):
            return self._violation(404 if answer.startswith("no route") else 400, answer)
        status, payload, extra = answer
        self._send(status, payload, extra)

    def _auth_problem(self, headers: dict[str, str]) -> str | None:
        f = self.forge
        if f.api == "gitlab":
            return None if headers.get("private-token") == f.token else "GitLab wants PRIVATE-TOKEN: <token>"
        scheme = "Bearer" if f.api == "github" else "token"
        if headers.get("authorization") != f"{scheme} {f.token}":
            return f"{f.api} wants Authorization: {scheme} <token>"
        if f.api == "github" and headers.get("accept") != "application/vnd.github+json":
            return "GitHub wants Accept: application/vnd.github+json"
        return None

    def _violation(self, status: int, problem: str) -> None:
        with self.forge.lock:
            self.forge.violations.append(f"{self.command} {self.path}: {problem}")
        self._send(status, {"message": problem})

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


def _route(f: ForgeState, r: Seen) -> tuple[int, Any, dict[str, str]] | str:
    root = ROOTS[f.api]
    if not r.path.startswith(root + "/"):
        return f"no route: {r.path} is outside {root or '/'}"
    path = r.path[len(root) :]
    repo = re.escape(f"/projects/{f.repo.replace('/', '%2F')}" if f.api == "gitlab" else f"/repos/{f.repo}")
    if m := re.fullmatch(repo + r"/statuses/([0-9a-f]{40})", path):
        return _status(f, r) if r.method == "POST" else f"{r.method} not allowed on statuses"
    comments = r"/merge_requests/(\d+)/notes" if f.api == "gitlab" else r"/issues/(\d+)/comments"
    if m := re.fullmatch(repo + comments, path):
        number = int(m.group(1))
        if r.method == "GET":
            return _list(f, r, number)
        return _create(f, r, number) if r.method == "POST" else f"{r.method} not allowed on comments"
    edit = r"/merge_requests/(\d+)/notes/(\d+)" if f.api == "gitlab" else r"/issues/comments/(\d+)"
    if m := re.fullmatch(repo + edit, path):
        wanted = "PUT" if f.api == "gitlab" else "PATCH"
        return _edit(f, r, int(m.group(m.lastindex))) if r.method == wanted else f"edit a comment with {wanted}"
    found = route_pulls(f, r, path, repo)
    if found == "method":
        return f"{r.method} not allowed on {path}"
    return found if found is not None else f"no route: {r.method} {r.path}"


def _fields(body: Any, required: dict[str, type], optional: dict[str, type]) -> str | None:
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    for name, kind in required.items():
        if not isinstance(body.get(name), kind):
            return f"'{name}' is required ({kind.__name__})"
    unknown = set(body) - set(required) - set(optional)
    if unknown:
        return f"undocumented fields {sorted(unknown)}"
    for name, kind in optional.items():
        if name in body and not isinstance(body[name], kind):
            return f"'{name}' must be {kind.__name__}"
    return None


def _status(f: ForgeState, r: Seen) -> tuple[int, Any, dict[str, str]] | str:
    name = "name" if f.api == "gitlab" else "context"
    problem = _fields(r.body, {"state": str}, {name: str, "description": str, "target_url": str})
    if problem:
        return problem
    if r.body["state"] not in STATES[f.api]:
        return f"state {r.body['state']!r} is not one of {sorted(STATES[f.api])}"
    if len(r.body.get("description", "")) > 140 and f.api == "github":
        return "description longer than 140 characters"
    f.statuses.append(dict(r.body))
    return 201, {"id": len(f.statuses), **r.body}, {}


def _page(f: ForgeState, r: Seen) -> tuple[int, int] | str:
    size_key = "limit" if f.api == "gitea" else "per_page"
    try:
        size = int(r.query.get(size_key, ["30"])[0])
        page = int(r.query.get("page", ["1"])[0])
    except ValueError:
        return "page and page size must be numbers"
    if size > 100 or page < 1:
        return f"{size_key} is at most 100, page at least 1"
    return page, size


def _list(f: ForgeState, r: Seen, number: int) -> tuple[int, Any, dict[str, str]] | str:
    paging = _page(f, r)
    if isinstance(paging, str):
        return paging
    page, size = paging
    items = f.comments.get(number, [])
    chunk = items[(page - 1) * size : page * size]
    more = page * size < len(items)
    headers: dict[str, str] = {}
    if f.api == "gitlab":
        headers["X-Next-Page"] = str(page + 1) if more else ""
    elif more:
        headers["Link"] = f'<{f.url}{r.path}?page={page + 1}>; rel="next"'
    return 200, [{"id": c["id"], "body": c["body"]} for c in chunk], headers


def _create(f: ForgeState, r: Seen, number: int) -> tuple[int, Any, dict[str, str]] | str:
    problem = _fields(r.body, {"body": str}, {})
    if problem:
        return problem
    f.next_id += 1
    comment = {"id": f.next_id, "body": r.body["body"], "user": "condaops"}
    f.comments.setdefault(number, []).append(comment)
    f.edited.set()
    return 201, {"id": comment["id"], "body": comment["body"]}, {}


def _edit(f: ForgeState, r: Seen, comment_id: int) -> tuple[int, Any, dict[str, str]] | str:
    problem = _fields(r.body, {"body": str}, {})
    if problem:
        return problem
    for items in f.comments.values():
        for c in items:
            if c["id"] == comment_id:
                c["body"] = r.body["body"]
                f.edited.set()
                return 200, {"id": c["id"], "body": c["body"]}, {}
    return 404, {"message": "Not Found"}, {}


@contextlib.contextmanager
def serve_forge(api: str, *, repo: str, token: str, repo_path: Path | None = None) -> Iterator[ForgeState]:
    """A forge of kind ``api`` for repository ``repo`` (GitLab: a ``group/project`` path);
    ``repo_path``: the Git repository behind it (pull requests need their branch there)."""
    state = ForgeState(api, repo, token, repo_path=repo_path)
    with serve_http(type("ForgeHandler", (_Handler,), {"forge": state}), name=f"forge-{api}") as url:
        state.url = url
        yield state
