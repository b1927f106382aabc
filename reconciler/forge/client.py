"""Sending requests to a forge: timeouts, retries with backoff, rate limits, no token leaks.

The one place condaops talks HTTP to GitHub, GitLab and Gitea/Forgejo (with the standard
library's ``urllib``: five REST calls need no client library, and the ones on PyPI were
measured to follow redirects with the token, to block for many seconds inside a call on
429, or to echo the server's answer, token included, in their exceptions). Callers run
it from their own background thread: nothing here may be called on a reconcile pass.

* every request has ``RetryPolicy.timeout``; connection errors, 5xx and rate limits are
  retried ``attempts`` times with backoff doubling up to ``backoff_max``;
* rate limits: 429, and 403 with ``X-RateLimit-Remaining: 0`` or a ``Retry-After`` or a
  "secondary rate limit" message (GitHub), wait what the forge says (``Retry-After`` in
  seconds or as a date, ``X-RateLimit-Reset``/``RateLimit-Reset`` as an epoch), bounded
  by ``rate_limit_max``; a longer wait gives up and says when to try again
  (``Answer.retry_after``);
* redirects are not followed (the token would go along); answers are read up to
  ``MAX_BODY`` bytes; tokens never reach logs or messages (``redact``).
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from condaops.reconciler.forge.api import SECRET_HEADERS, ForgeRequest

log = logging.getLogger("condaops.forge")

MAX_BODY = 4 << 20  # bytes of an answer read at most (a page of 100 comments is far less)
SECONDARY_LIMIT_WAIT = 60.0  # GitHub: wait at least a minute after a secondary rate limit without headers


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try one request: ``attempts`` in all, backoff doubling up to ``backoff_max``."""

    attempts: int = 5
    timeout: float = 10.0  # seconds per request
    backoff: float = 1.0
    backoff_max: float = 30.0
    rate_limit_max: float = 120.0  # longest rate-limit wait sat out in place; longer: give up, retry later

    def delay(self, failures: int) -> float:
        return min(self.backoff * 2 ** max(failures - 1, 0), self.backoff_max)


@dataclass(frozen=True, slots=True)
class Answer:
    """What one attempt got: an HTTP status (None when no answer), headers, the parsed JSON
    body (or None) and a short, redacted detail for failures."""

    status: int | None
    detail: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    data: object = None
    retry_after: float | None = None  # the forge asked to wait this long (rate limits)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def rate_limited(self) -> bool:
        return self.retry_after is not None

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status >= 500 or self.rate_limited


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would resend the Authorization header to wherever a redirect points.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_NoRedirect)


def send(
    request: ForgeRequest,
    *,
    timeout: float,
    via: urllib.request.OpenerDirector | None = None,
    clock: Callable[[], float] = time.time,
) -> Answer:
    """Send one request; never raises for HTTP or network problems."""
    data = json.dumps(request.json).encode() if request.json is not None else None
    req = urllib.request.Request(request.url, data=data, headers=request.headers, method=request.method)
    secrets = secrets_of(request)
    try:
        with (via or opener()).open(req, timeout=timeout) as response:
            body = response.read(MAX_BODY)
            return Answer(response.status, headers=dict(response.headers), data=_json(body))
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(MAX_BODY)
        except OSError:  # the error body itself timed out or was cut
            body = b""
        finally:
            exc.close()
        headers = dict(exc.headers or {})
        text = body[:300].decode("utf-8", "replace")
        wait = rate_limit_wait(exc.code, headers, text, clock())
        return Answer(exc.code, redact(f"{exc.code} {exc.reason}: {text}", secrets), headers, _json(body), wait)
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, bad answers
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return Answer(None, redact(f"{type(reason).__name__}: {reason}", secrets))


def _json(body: bytes) -> object:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def rate_limit_wait(status: int, headers: Mapping[str, str], text: str, now: float) -> float | None:
    """Seconds the forge asks to wait, or None when this answer is no rate limit. Pure."""
    lower = {k.lower(): v for k, v in headers.items()}
    limited = status == 429 or (
        status == 403
        and (
            lower.get("x-ratelimit-remaining") == "0"
            or "retry-after" in lower
            or "rate limit" in text.lower()  # GitHub's secondary limits, sometimes without headers
        )
    )
    if not limited:
        return None
    if (after := _seconds(lower.get("retry-after"), now)) is not None:
        return after
    for name in ("x-ratelimit-reset", "ratelimit-reset"):
        value = lower.get(name, "").strip()
        if value.isdigit():
            reset = float(value)
            return max(reset - now if reset > 1e9 else reset, 0.0)  # an epoch, or (GitLab) seconds
    return SECONDARY_LIMIT_WAIT if status == 403 else 0.0


def _seconds(value: str | None, now: float) -> float | None:
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now, 0.0)


def secrets_of(request: ForgeRequest) -> list[str]:
    return [v.split()[-1] for k, v in request.headers.items() if k.lower() in SECRET_HEADERS and v.split()]


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return " ".join(text.split())[:300]


def hint(status: int | None, token_keys: str = "'status_token_env' or 'status_token_file'") -> str:
    """What to check for a refused request."""
    if status is not None and 300 <= status < 400:
        return "; redirects are not followed (the token would go along): set 'status_url' to the final address"
    if status in (401, 403):
        return f"; check the token named by {token_keys} and its scopes"
    if status == 404:
        return "; check 'status_repo', 'status_url' and that the token can see the repository"
    return ""


class Retrying:
    """Sends a request until it succeeds, is refused, or the policy gives up.

    ``name`` prefixes the log lines (``<name>_retry``, ``<name>_refused``,
    ``<name>_dropped``); ``stop`` ends backoff waits at once (shutting down);
    ``superseded()`` is asked before each retry: a newer request made this one pointless.
    Lines go to ``logger`` (the caller's).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        stop: threading.Event | None = None,
        via: urllib.request.OpenerDirector | None = None,
        logger: logging.Logger = log,
    ) -> None:
        self.policy = policy
        self.stop = stop or threading.Event()
        self.via = via or opener()
        self.log = logger

    def send(
        self,
        request: ForgeRequest,
        *,
        name: str,
        context: str,
        superseded: Callable[[], bool] = lambda: False,
        quiet: frozenset[int] = frozenset(),
    ) -> Answer:
        """The last answer. ``quiet``: statuses the caller handles itself (not logged as refused)."""
        policy = self.policy
        answer = Answer(None, "not sent")
        for attempt in range(1, policy.attempts + 1):
            answer = send(request, timeout=policy.timeout, via=self.via)
            if answer.ok or answer.status in quiet:
                return answer
            if not answer.retryable:
                self.log.warning(
                    "%s_refused %s url=%s detail=%s%s", name, context, request.url, answer.detail, hint(answer.status)
                )
                return answer
            wait = answer.retry_after or policy.delay(attempt)  # a 429 without a wait: backoff
            if wait > policy.rate_limit_max:
                self.log.warning("%s_rate_limited %s url=%s retry_in=%.0fs", name, context, request.url, wait)
                return answer
            self.log.warning(
                "%s_retry %s url=%s attempt=%d/%d detail=%s",
                name,
                context,
                request.url,
                attempt,
                policy.attempts,
                answer.detail,
            )
            if attempt == policy.attempts or self.stop.wait(wait):
                break
            if superseded():
                self.log.info("%s_superseded %s", name, context)
                return Answer(None, "superseded")
        self.log.warning("%s_dropped %s url=%s attempts=%d", name, context, request.url, attempt)
        return answer
