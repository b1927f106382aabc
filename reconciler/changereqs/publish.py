"""Reviews reach the pull request: one comment, edited in place on every new head, and a
commit status ``<status_context>/review`` on the head commit.

For Git sources with ``change_requests`` and a forge configured (``status_api``,
``status_repo``, a token: the settings of commit statuses). Runs on the forge client's
background thread (``ForgeWorker``): a recorded review or a finished preview only submits
the change request's key (waiting keys are coalesced); the thread reads the newest
recorded state, posts, and records what it achieved (``record_publication``). What could
not be posted (forge down, rate-limited) stays unpublished (``version`` ahead of
``published_version``) and is submitted again by ``catch_up`` on later passes, after the
wait the forge asked for. The comment is found again after a restart by its hidden marker.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping

from sqlalchemy import Engine

from condaops.config import Settings, SourceSettings
from condaops.reconciler.changereqs.summary import (
    PreviewLine,
    comment_body,
    ref_key,
    ref_number,
    review_marker,
    review_verdict,
)
from condaops.reconciler.forge import api
from condaops.reconciler.forge.client import Answer, RetryPolicy
from condaops.reconciler.forge.publisher import ForgePublisher, Key
from condaops.reconciler.forge.settings import forge_of, read_token
from condaops.reconciler.model import BuildOutcome
from condaops.reconciler.state.review_queries import (
    ChangeRequestInfo,
    get_change_request,
    get_preview,
    list_previews,
    unpublished_change_requests,
)
from condaops.reconciler.state.review_recorder import ReviewRecorder

log = logging.getLogger("condaops.reviews")

MAX_PAGES = 20  # comment pages searched for our marker (2,000 comments on GitHub and GitLab)


class ReviewPublisher(ForgePublisher):
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        recorder: ReviewRecorder,
        *,
        environ: Mapping[str, str] | None = None,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.recorder = recorder
        sources = [s for s in settings.sources if s.change_requests and forge_of(s) is not None]
        super().__init__("review", sources, logger=log, environ=environ, policy=policy, clock=clock)

    # --- what callers use (never blocking) ------------------------------------------------

    def on_change(self, source: str, ref: str) -> None:
        """A review was recorded, or its change request closed (``ChangeRequests.listeners``).
        While the forge asked to wait (a failure, a rate limit) ``catch_up`` posts it later."""
        self.submit(source, ref)

    def on_preview(self, preview_id: int, outcome: BuildOutcome | None) -> None:
        """A preview finished (``PreviewWorker.listeners``)."""
        if outcome is not None and self.sources:
            found = get_preview(self.engine, preview_id)
            if found is not None:
                self.on_change(found[0], found[1])

    def unpublished(self) -> Iterable[Key]:
        return unpublished_change_requests(self.engine, self.sources)

    # --- the background thread -------------------------------------------------------------

    def handle(self, key: Key) -> None:
        source, ref = key
        src = self.sources[source]
        cr = get_change_request(self.engine, source, ref)
        if cr is None:
            return  # forgotten meanwhile
        if cr.state != "open":
            self.recorder.record_publication(source, ref, version=cr.version, comment_id=None, error=None)
            return
        token = read_token(src, self._environ)
        if token is None:
            message = "no forge token: set the variable or file named by 'status_token_env' / 'status_token_file'"
            self.recorder.record_publication(source, ref, version=cr.version, comment_id=None, error=message)
            return
        started = time.perf_counter()
        errors, waits, comment = self._publish(src, cr, token)
        error = "; ".join(errors) or None
        self.recorder.record_publication(source, ref, version=cr.version, comment_id=comment, error=error)
        if error:
            self.wait(key, max(waits) if waits else None)
        log.log(
            logging.WARNING if error else logging.INFO,
            "review_published source=%s ref=%s head=%s version=%d ok=%s seconds=%.3f%s",
            source,
            ref,
            cr.head_revision[:12],
            cr.version,
            error is None,
            time.perf_counter() - started,
            f" error={error}" if error else "",
        )

    def _publish(
        self, src: SourceSettings, cr: ChangeRequestInfo, token: str
    ) -> tuple[list[str], list[float], str | None]:
        forge = forge_of(src)
        assert forge is not None
        previews = [
            PreviewLine(str(p.ref), p.state, p.reason, p.message, p.reused)
            for p in sorted(list_previews(self.engine, source=cr.source, ref=cr.ref), key=lambda p: str(p.ref))
            if p.head_revision == cr.head_revision and p.state != "canceled"
        ]
        report = json.loads(cr.report_json) if cr.report_json else None
        verdict = review_verdict(error=cr.error, report=report, previews=previews)
        page = _page_url(src, cr.ref)
        answers: list[tuple[str, Answer]] = []
        if api.is_commit(cr.head_revision):
            request = api.status_request(
                forge,
                token,
                cr.head_revision,
                state=verdict.state,
                context=f"{src.status_context.strip('/')}/review",
                description=verdict.description,
                target_url=page,
            )
            answers.append(("status", self.sender.send(request, name="review_status", context=_ctx(cr))))
        comment = cr.comment_id
        number = ref_number(cr.ref)
        if number is not None:
            body = comment_body(
                source=cr.source,
                ref=cr.ref,
                markdown=cr.report_markdown,
                error=cr.error,
                previews=previews,
                verdict=verdict,
                page_url=page,
            )
            comment, answer = self._upsert(forge, token, int(number), cr, body)
            answers.append(("comment", answer))
            if cr.title is None and answer.ok:
                self._title(forge, token, int(number), cr)
        errors = [f"{what}: {a.detail or a.status}" for what, a in answers if not a.ok]
        waits = [a.retry_after for _, a in answers if not a.ok and a.retry_after]
        return errors, waits, comment

    def _upsert(
        self, forge: api.Forge, token: str, number: int, cr: ChangeRequestInfo, body: str
    ) -> tuple[str | None, Answer]:
        """Edit our comment (by its recorded id, else found by its marker), else create it."""
        known = cr.comment_id
        if known is None:
            known, answer = self._find(forge, token, number, review_marker(cr.source, cr.ref), cr)
            if not answer.ok:
                return None, answer
        if known is not None:
            request = api.edit_comment_request(forge, token, number, known, body)
            answer = self.sender.send(request, name="review_comment", context=_ctx(cr), quiet=frozenset({404}))
            if answer.status != 404:
                return known, answer
            known, answer = self._find(forge, token, number, review_marker(cr.source, cr.ref), cr)  # deleted by hand?
            if known is not None or not answer.ok:
                return known, answer
        request = api.create_comment_request(forge, token, number, body)
        answer = self.sender.send(request, name="review_comment", context=_ctx(cr))
        return api.comment_id(answer.data) if answer.ok else None, answer

    def _find(
        self, forge: api.Forge, token: str, number: int, marker: str, cr: ChangeRequestInfo
    ) -> tuple[str | None, Answer]:
        answer = Answer(200)
        for page in range(1, MAX_PAGES + 1):
            answer = self.sender.send(
                api.list_comments_request(forge, token, number, page), name="review_comments", context=_ctx(cr)
            )
            if not answer.ok:
                return None, answer
            if (found := api.marked_comment(answer.data, marker)) is not None:
                return found, answer
            if not api.has_next_page(forge, answer.headers, answer.data, page):
                break
        return None, answer

    def _title(self, forge: api.Forge, token: str, number: int, cr: ChangeRequestInfo) -> None:
        answer = self.sender.send(api.pull_request_request(forge, token, number), name="review_title", context=_ctx(cr))
        if answer.ok:
            self.recorder.record_title(cr.source, cr.ref, api.title_of(answer.data))


def _ctx(cr: ChangeRequestInfo) -> str:
    return f"source={cr.source} ref={cr.ref} head={cr.head_revision[:12]}"


def _page_url(src: SourceSettings, ref: str) -> str | None:
    """The review page on the status site, when its address is known (``status_target_url``)."""
    if not src.status_target_url:
        return None
    return f"{src.status_target_url.rstrip('/')}/change-requests/{src.name}/{ref_key(ref)}"
