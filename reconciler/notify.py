"""Commit statuses: tell GitHub, GitLab or Gitea how the build of a commit went.

Off by default; a Git source turns it on with ``status_api``, ``status_repo`` and a token
(``status_token_env`` or ``status_token_file``). Each environment is its own check, named
``<status_context>/<ns>/<name>``: ``pending`` when its build starts, then ``success``,
``failure`` (retrying cannot help) or ``error`` (a transient failure; a retry posts
``pending`` again). GitLab calls these ``running``, ``success`` and ``failed``.

Two parts:

* ``status_request`` — pure: the HTTP request one status is, for each API;
* ``StatusNotifier`` — IO: a ``BuildWorker`` listener that hands events to one background
  thread, which looks the build up in the state DB, reads the token and posts through the
  forge client (``condaops.reconciler.forge``: a timeout per request, bounded retries
  with backoff for connection errors and 5xx, rate limits waited out as the forge asks).

Posting never blocks or fails a build: the listener only enqueues, and every failure is
logged and dropped. The token is read at each post (rotation is picked up) and never
logged: requests hide it from ``repr`` and response text is redacted. Redirects are not
followed, so the token is never sent to a host it was not configured for.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable, Mapping

from sqlalchemy import Engine

from condaops.config import Settings, SourceSettings
from condaops.reconciler.forge.api import (
    DESCRIPTION_LIMIT,
    ERROR,
    FAILURE,
    GITEA,
    GITHUB,
    GITLAB,
    GITLAB_STATES,
    PENDING,
    SUCCESS,
    ForgeRequest,
    is_commit,
    truncate,
)
from condaops.reconciler.forge.api import status_request as forge_status_request
from condaops.reconciler.forge.client import Retrying, RetryPolicy
from condaops.reconciler.forge.settings import forge_of, read_token
from condaops.reconciler.forge.worker import ForgeWorker
from condaops.reconciler.model import BuildOutcome
from condaops.reconciler.state.queries import BuildInfo, get_build

log = logging.getLogger("condaops.notify")

__all__ = [  # what the rest of condaops and the tests take from here
    "DESCRIPTION_LIMIT",
    "GITEA",
    "GITHUB",
    "GITLAB",
    "GITLAB_STATES",
    "RetryPolicy",
    "StatusNotifier",
    "duration_text",
    "is_commit",
    "read_token",
    "status_request",
]


# --- pure: what to post --------------------------------------------------------------------


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
    return truncate(text, DESCRIPTION_LIMIT)


def duration_text(seconds: float) -> str:
    """``12 s``, ``4 min 3 s``, ``1 h 2 min``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def status_request(build: BuildInfo, outcome: BuildOutcome | None, source: SourceSettings, token: str) -> ForgeRequest:
    """The request that posts ``build``'s state for its commit. Pure: no IO.

    ``outcome`` is None when the build starts. ``source`` must have ``status_api`` and
    ``status_repo`` set (the configuration loader makes sure) and ``build`` a commit SHA.
    """
    forge = forge_of(source)
    if forge is None:
        raise ValueError(f"source '{source.name}' has no status_api and status_repo")
    target = f"{source.status_target_url.rstrip('/')}/builds/{build.build_id}" if source.status_target_url else None
    return forge_status_request(
        forge,
        token,
        build.source_revision or "",
        state=status_state(outcome),
        context=status_context(build, source),
        description=status_description(build, outcome),
        target_url=target,
    )


# --- IO: the listener and its background thread --------------------------------------------


class StatusNotifier:
    """A ``BuildWorker`` listener that posts commit statuses from a background thread
    (``ForgeWorker``): ``on_build_event`` returns at once; ``drain`` waits until everything
    queued was sent (or dropped); ``close`` drains for at most ``timeout`` seconds."""

    QUEUE_LIMIT = 1000  # events beyond this are dropped (and logged): a dead forge must not eat memory

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        environ: Mapping[str, str] | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.policy = policy or RetryPolicy()
        self.sources = {s.name: s for s in settings.sources if s.git is not None and s.status_api}
        self._environ = os.environ if environ is None else environ
        self._worker = ForgeWorker("status", self._handle, limit=self.QUEUE_LIMIT, join_timeout=self.policy.timeout)
        self._sender = Retrying(self.policy, stop=self._worker.stop, logger=log)

    @property
    def enabled(self) -> bool:
        return bool(self.sources)

    def on_build_event(self, build_id: int, outcome: BuildOutcome | None) -> None:
        """The listener (``BuildWorker.listeners``): enqueue and return; never blocks."""
        if self.sources:
            self._worker.submit(build_id, outcome)

    def drain(self, timeout: float | None = None) -> bool:
        return self._worker.drain(timeout)

    def close(self, timeout: float = 30.0) -> None:
        self._worker.close(timeout)

    def _handle(self, build_id: Hashable, outcome: object, superseded: Callable[[], bool]) -> None:
        # The worker hands back what on_build_event queued: an int and a BuildOutcome or None.
        build = get_build(self.engine, build_id) if isinstance(build_id, int) else None
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
        if token is None:
            return
        request = status_request(build, outcome if isinstance(outcome, BuildOutcome) else None, source, token)
        context = f"build={build.build_id} api={source.status_api} state={(request.json or {}).get('state')}"
        if self._sender.send(request, name="status", context=context, superseded=superseded).ok:
            log.info("status_posted %s url=%s", context, request.url)
