"""Commit statuses: tell GitHub, GitLab or Gitea how the build of a commit went.

Off by default; a Git source turns it on with ``status_api``, ``status_repo`` and a token
(``status_token_env`` or ``status_token_file``). Each environment is its own check, named
``<status_context>/<ns>/<name>``: ``pending`` when its build starts, then ``success``,
``failure`` (retrying cannot help) or ``error`` (a transient failure; a retry posts
``pending`` again). GitLab calls these ``running``, ``success`` and ``failed``.

Two parts:

* ``status_request`` — pure: the HTTP request one status is, for each API;
* ``StatusNotifier`` — IO: a ``BuildWorker`` listener that hands events to one background
  thread, which looks the build up in the state DB, reads the token and posts with the
  standard library's ``urllib`` (no dependency beyond Python), a timeout per request and
  bounded retries with backoff for connection errors, 429 and 5xx.

Posting never blocks or fails a build: the listener only enqueues, and every failure is
logged and dropped. The token is read at each post (rotation is picked up) and never
logged: requests hide it from ``repr`` and response text is redacted. Redirects are not
followed, so the token is never sent to a host it was not configured for.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import queue
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy import Engine

from condaops.config import Settings, SourceSettings
from condaops.reconciler.model import BuildOutcome
from condaops.reconciler.secrets import read_secret
from condaops.reconciler.state.queries import BuildInfo, get_build

log = logging.getLogger("condaops.notify")

GITHUB, GITLAB, GITEA = "github", "gitlab", "gitea"
DEFAULT_GITHUB_URL = "https://api.github.com"
DESCRIPTION_LIMIT = 140  # GitHub refuses longer descriptions
PENDING, SUCCESS, FAILURE, ERROR = "pending", "success", "failure", "error"
GITLAB_STATES = {PENDING: "running", SUCCESS: "success", FAILURE: "failed", ERROR: "failed"}
_SECRET_HEADERS = frozenset({"authorization", "private-token"})
_COMMIT_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256 object names


# --- pure: what to post --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """One HTTP request that sets one commit status. ``repr`` hides the token."""

    method: str
    url: str
    headers: dict[str, str]
    json: dict[str, str]

    def __repr__(self) -> str:
        return (
            f"StatusRequest(method={self.method!r}, url={self.url!r}, "
            f"headers={redacted_headers(self.headers)!r}, json={self.json!r})"
        )


def redacted_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with credential values replaced by ``***``."""
    return {k: "***" if k.lower() in _SECRET_HEADERS else v for k, v in headers.items()}


def status_state(outcome: BuildOutcome | None) -> str:
    """``pending`` while building, then ``success``, ``failure`` or ``error`` (transient)."""
    if outcome is None:
        return PENDING
    if outcome.ok:
        return SUCCESS
    return ERROR if outcome.retryable else FAILURE


def status_context(build: BuildInfo, source: SourceSettings) -> str:
    """``<context>/<ns>/<name>``: each environment is its own check."""
    return f"{source.status_context.strip('/')}/{build.ref.namespace}/{build.ref.name}"


def status_description(build: BuildInfo, outcome: BuildOutcome | None) -> str:
    """One short line: ``building``, ``built in 12 s`` or ``SolveFailed: <message>``."""
    if outcome is None:
        text = "building" if build.attempt <= 1 else f"building, attempt {build.attempt}"
    elif outcome.ok:
        text = f"built in {duration_text(sum(t for _, t in outcome.timings))}"
        text += "" if outcome.linked else f"; {outcome.reason}"  # built but not made current
    else:
        text = f"{outcome.reason}: {outcome.message}" if outcome.message else outcome.reason
    return truncate(" ".join(text.split()), DESCRIPTION_LIMIT)


def duration_text(seconds: float) -> str:
    """``12 s``, ``4 min 3 s``, ``1 h 2 min``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_request(build: BuildInfo, outcome: BuildOutcome | None, source: SourceSettings, token: str) -> StatusRequest:
    """The request that posts ``build``'s state for its commit. Pure: no IO.

    ``outcome`` is None when the build starts. ``source`` must have ``status_api`` and
    ``status_repo`` set (the configuration loader makes sure) and ``build`` a commit SHA.
    """
    api, sha = source.status_api, build.source_revision or ""
    state = status_state(outcome)
    body = {"state": state, "context": status_context(build, source), "description": status_description(build, outcome)}
    if source.status_target_url:
        body["target_url"] = f"{source.status_target_url.rstrip('/')}/builds/{build.build_id}"
    common = {"Content-Type": "application/json", "User-Agent": "condaops"}
    if api == GITHUB:
        url = f"{_base(source, '')}/repos/{_owner_name(source)}/statuses/{sha}"
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
    elif api == GITEA:
        url = f"{_base(source, '/api/v1')}/repos/{_owner_name(source)}/statuses/{sha}"
        headers = {"Authorization": f"token {token}", "Accept": "application/json"}
    elif api == GITLAB:
        url = f"{_base(source, '/api/v4')}/projects/{quote(source.status_repo or '', safe='')}/statuses/{sha}"
        headers = {"PRIVATE-TOKEN": token, "Accept": "application/json"}
        body["state"], body["name"] = GITLAB_STATES[state], body.pop("context")
    else:
        raise ValueError(f"source '{source.name}': unknown status_api {api!r}")
    return StatusRequest("POST", url, {**headers, **common}, body)


def _base(source: SourceSettings, api_root: str) -> str:
    """The API root; a ``status_url`` that already ends in it is taken as-is."""
    base = (source.status_url or DEFAULT_GITHUB_URL).rstrip("/")
    return base if not api_root or base.endswith(api_root) else base + api_root


def _owner_name(source: SourceSettings) -> str:
    owner, _, name = (source.status_repo or "").partition("/")
    return f"{quote(owner, safe='')}/{quote(name, safe='')}"


def is_commit(revision: str | None) -> bool:
    """A full Git object name (what forges take), not a directory digest or a short SHA."""
    return revision is not None and _COMMIT_RE.fullmatch(revision) is not None


# --- IO: reading the token, sending with retries -------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try one status: ``attempts`` in all, backoff doubling up to ``backoff_max``."""

    attempts: int = 5
    timeout: float = 10.0  # seconds per request
    backoff: float = 1.0
    backoff_max: float = 30.0

    def delay(self, failures: int) -> float:
        return min(self.backoff * 2 ** max(failures - 1, 0), self.backoff_max)


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one attempt got: an HTTP status (None when no answer) and a short, redacted detail."""

    status: int | None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would resend the Authorization header to wherever a redirect points.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def send_status(
    request: StatusRequest, *, timeout: float, opener: urllib.request.OpenerDirector | None = None
) -> SendResult:
    """Send one request; never raises for HTTP or network problems."""
    opener = opener or urllib.request.build_opener(_NoRedirect)
    data = json.dumps(request.json).encode()
    req = urllib.request.Request(request.url, data=data, headers=request.headers, method=request.method)
    secrets = [v.split()[-1] for k, v in request.headers.items() if k.lower() in _SECRET_HEADERS and v.split()]
    try:
        with opener.open(req, timeout=timeout) as response:
            return SendResult(response.status)
    except urllib.error.HTTPError as exc:
        try:
            text = exc.read(300).decode("utf-8", "replace")
        except OSError:  # the error body itself timed out or was cut
            text = ""
        finally:
            exc.close()
        return SendResult(exc.code, _redact(f"{exc.code} {exc.reason}: {text}", secrets))
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, bad answers
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return SendResult(None, _redact(f"{type(reason).__name__}: {reason}", secrets))


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return " ".join(text.split())[:300]


def read_token(source: SourceSettings, environ: Mapping[str, str]) -> str | None:
    """The source's API token, or None (logged, without the value) when it is not available."""
    return read_secret(
        source.name, "status_token", env=source.status_token_env, file=source.status_token_file, environ=environ
    )


# --- IO: the listener and its background thread --------------------------------------------


@dataclass(frozen=True, slots=True)
class _Event:
    build_id: int
    outcome: BuildOutcome | None
    seq: int


_STOP = object()


class StatusNotifier:
    """A ``BuildWorker`` listener that posts commit statuses from one background thread.

    ``on_build_event`` returns at once; ``drain`` waits until everything queued was sent
    (or dropped); ``close`` drains for at most ``timeout`` seconds, then gives up.
    """

    QUEUE_LIMIT = 1000  # events beyond this are dropped (and logged): a dead forge must not eat memory

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        environ: Mapping[str, str] | None = None,
        policy: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.sources = {s.name: s for s in settings.sources if s.git is not None and s.status_api}
        self._environ = os.environ if environ is None else environ
        self._queue: queue.Queue[_Event | object] = queue.Queue(self.QUEUE_LIMIT)
        self._lock = threading.Condition()
        self._unfinished = 0
        self._latest: dict[int, int] = {}  # build id -> seq of its newest event
        self._seq = 0
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._opener = urllib.request.build_opener(_NoRedirect)

    @property
    def enabled(self) -> bool:
        return bool(self.sources)

    def on_build_event(self, build_id: int, outcome: BuildOutcome | None) -> None:
        """The listener (``BuildWorker.listeners``): enqueue and return; never blocks."""
        if not self.sources:
            return
        with self._lock:
            if self._closed:
                return
            self._seq += 1
            event = _Event(build_id, outcome, self._seq)
            try:
                self._queue.put_nowait(event)
            except queue.Full:
                log.warning("status_dropped build=%s reason=QueueFull", build_id)
                return
            self._latest[build_id] = event.seq
            self._unfinished += 1
            self._start()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued event was handled; False if ``timeout`` came first."""
        with self._lock:
            return self._lock.wait_for(lambda: self._unfinished == 0, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking events, send what is queued for up to ``timeout`` seconds, then stop."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is None or self._stop.is_set():
            return
        if not self.drain(timeout):
            log.warning("status_abandoned events=%d: the forge did not answer in time", self._unfinished)
        self._stop.set()  # ends backoff waits; a request in flight ends at its timeout
        with contextlib.suppress(queue.Full):  # the thread skips what is left once stopped
            self._queue.put(_STOP, timeout=self.policy.timeout)
        thread.join(timeout=1.0)

    def _start(self) -> None:
        if self._thread is None:  # started lazily: no thread unless a status is to be sent
            self._thread = threading.Thread(target=self._run, name="condaops-status", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            assert isinstance(item, _Event)
            try:
                if not self._stop.is_set():
                    self._handle(item)
            except Exception:  # the sender must outlive any one event
                log.exception("status_failed build=%s", item.build_id)
            finally:
                self._done(item)

    def _done(self, event: _Event) -> None:
        with self._lock:
            if self._latest.get(event.build_id) == event.seq:
                del self._latest[event.build_id]
            self._unfinished -= 1
            self._lock.notify_all()

    def _superseded(self, event: _Event) -> bool:
        """A newer event of the same build is queued: retrying this one would be wasted."""
        with self._lock:
            return self._latest.get(event.build_id, event.seq) != event.seq

    def _handle(self, event: _Event) -> None:
        build = get_build(self.engine, event.build_id)
        source = self.sources.get(build.source or "") if build else None
        if build is None or source is None:
            return  # not a build of a source with statuses turned on
        if not is_commit(build.source_revision):
            log.warning(
                "status_skipped build=%s source=%s reason=NotACommit revision=%s",
                build.build_id,
                source.name,
                build.source_revision,
            )
            return
        token = read_token(source, self._environ)
        if token is not None:
            self._post(event, status_request(build, event.outcome, source, token), source)

    def _post(self, event: _Event, request: StatusRequest, source: SourceSettings) -> None:
        state, policy = request.json["state"], self.policy
        for attempt in range(1, policy.attempts + 1):
            result = send_status(request, timeout=policy.timeout, opener=self._opener)
            if result.ok:
                log.info(
                    "status_posted build=%s api=%s state=%s url=%s",
                    event.build_id,
                    source.status_api,
                    state,
                    request.url,
                )
                return
            if not result.retryable:
                log.warning(
                    "status_refused build=%s api=%s state=%s url=%s detail=%s%s",
                    event.build_id,
                    source.status_api,
                    state,
                    request.url,
                    result.detail,
                    _hint(result.status),
                )
                return
            log.warning(
                "status_retry build=%s api=%s state=%s url=%s attempt=%d/%d detail=%s",
                event.build_id,
                source.status_api,
                state,
                request.url,
                attempt,
                policy.attempts,
                result.detail,
            )
            if attempt == policy.attempts or self._stop.wait(policy.delay(attempt)):
                break
            if self._superseded(event):
                log.info("status_superseded build=%s state=%s", event.build_id, state)
                return
        log.warning(
            "status_dropped build=%s api=%s state=%s url=%s attempts=%d",
            event.build_id,
            source.status_api,
            state,
            request.url,
            attempt,
        )


def _hint(status: int | None) -> str:
    if status is not None and 300 <= status < 400:
        return "; redirects are not followed (the token would go along): set 'status_url' to the final address"
    if status in (401, 403):
        return "; check the token named by 'status_token_env' or 'status_token_file' and its scopes"
    if status == 404:
        return "; check 'status_repo', 'status_url' and that the token can see the repository"
    return ""
