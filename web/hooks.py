"""``POST /hooks/git``: a signed push event asks for an immediate read of Git sources.

The only write the web server accepts besides registry pushes, and it changes nothing
itself: a verified call only hands source names to ``refresh`` (the runtime's, which
starts a reconcile pass now). What is decided, and in which order, is
``condaops.reconciler.hooks.decide``; here the body is read (at most ``MAX_BODY_BYTES``,
chunk by chunk) and the secrets are looked up at each call, so rotating one needs no
restart. Answers are JSON:

=====  ==================================================================
202    ``{"refreshed": [names]}``: those sources are read at once
200    a GitHub ``ping`` with a valid signature: nothing is read
400    the body is not JSON, or nests deeper than 64 levels
401    the signature is missing or wrong, or no Git source with a webhook
       secret has the payload's repository (or is named by ``?source=``):
       one answer for all, so an unsigned caller learns nothing; the
       log line says which
413    the body is larger than ``MAX_BODY_BYTES``
=====  ==================================================================

Not behind ``web.auth``: the signature is the credential. Secrets and signatures are
never logged or echoed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated

from litestar import MediaType, Request, Response, Router, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.params import QueryParameter

from condaops.config import Settings, SourceSettings
from condaops.reconciler.hooks import MAX_PAYLOAD_BYTES, HookDecision, decide
from condaops.reconciler.secrets import read_secret

log = logging.getLogger("condaops.web.hooks")

MAX_BODY_BYTES = MAX_PAYLOAD_BYTES
Refresh = Callable[[Iterable[str]], None]
SourceParam = Annotated[
    str | None, QueryParameter(name="source", required=False, description="Refresh this source, not those matched.")
]


class HookReceiver:
    """The sources, where their secrets are, and what to call for a verified push."""

    def __init__(self, settings: Settings, refresh: Refresh, *, environ: Mapping[str, str] | None = None) -> None:
        self.sources = settings.sources
        self.refresh = refresh
        self._environ = os.environ if environ is None else environ

    def secret_of(self, source: SourceSettings) -> bytes | None:
        """The source's webhook secret, or None (logged without the value) when unavailable."""
        value = read_secret(
            source.name,
            "webhook_secret",
            env=source.webhook_secret_env,
            file=source.webhook_secret_file,
            environ=self._environ,
        )
        return value.encode() if value else None

    def handle(self, headers: Mapping[str, str], body: bytes, source: str | None) -> HookDecision:
        decision = decide(self.sources, headers, body, self.secret_of, source=source)
        if decision.status == 202:
            self.refresh(decision.sources)
        return decision


async def _read_body(request: Request) -> bytes:
    """The body, chunk by chunk; Litestar stops at the handler's ``request_max_body_size``
    (announced or streamed) with ``RequestEntityTooLarge``."""
    return b"".join([chunk async for chunk in request.stream()])


def _answer(decision: HookDecision) -> Response[dict[str, object]]:
    names = list(decision.sources)
    body: dict[str, object]
    if decision.status == 202:
        body = {"detail": decision.detail, "refreshed": names}
    elif decision.status == 200:
        body = {"detail": decision.detail, "sources": names, "refreshed": []}
    else:
        body = {"status_code": decision.status, "detail": decision.detail}
    return Response(body, status_code=decision.status, media_type=MediaType.JSON)


def _log(decision: HookDecision, request: Request, event: str) -> None:
    client = request.client.host if request.client else "-"
    event = event[:40]  # the sender's word: kept short in the log
    if decision.status < 300:
        log.info(
            "webhook_accepted status=%d sources=%s event=%s client=%s",
            decision.status,
            ",".join(decision.sources),
            event,
            client,
        )
    else:
        log.warning(
            "webhook_answered status=%d sources=%s event=%s client=%s %s",
            decision.status,
            ",".join(decision.matched) or "-",
            event,
            client,
            decision.note or decision.detail,
        )


@post(
    "/hooks/git",
    request_max_body_size=MAX_BODY_BYTES,
    summary="Refresh Git sources (signed push webhook)",
    include_in_schema=False,
)
async def git_hook(
    request: Request, hooks: NamedDependency[HookReceiver], source: SourceParam = None
) -> Response[dict[str, object]]:
    try:
        body = await _read_body(request)
    except RequestEntityTooLarge:
        decision = HookDecision(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    else:
        headers = {k.lower(): v for k, v in request.headers.items()}
        decision = hooks.handle(headers, body, source)
    _log(decision, request, request.headers.get("x-github-event") or request.headers.get("x-gitlab-event") or "-")
    return _answer(decision)


def hooks_router(settings: Settings, refresh: Refresh, *, environ: Mapping[str, str] | None = None) -> Router:
    """The webhook route; ``refresh`` gets the names of verified sources (it must not block)."""
    receiver = HookReceiver(settings, refresh, environ=environ)
    return Router(
        "/", route_handlers=[git_hook], dependencies={"hooks": Provide(lambda: receiver, sync_to_thread=False)}
    )
