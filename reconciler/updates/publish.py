"""Update pull requests on the forge: opened, edited, labelled, commented on and closed from
the forge client's background thread, as the state DB says (``update_branches``).

A run records what each branch should look like and submits it here; the thread finds the
branch's pull request (the number recorded, else the open one from that branch: never a
second one), then opens it, edits its title and body, says why condaops stopped touching
it (``held``) or closes it (``closed``). Labels are added when it is opened. A pull request
a person closed without merging is *dismissed*: its proposal is not made again. What the
forge did not take (down, rate-limited, refused) stays unpublished and ``catch_up``
submits it again on later passes, after the wait the forge asked for — nothing here ever
blocks a reconcile pass or a build.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping

from condaops.config import Settings, SourceSettings
from condaops.reconciler.forge import api, pulls
from condaops.reconciler.forge.client import Answer, RetryPolicy
from condaops.reconciler.forge.links import web_url
from condaops.reconciler.forge.publisher import ForgePublisher, Key
from condaops.reconciler.forge.settings import forge_of, read_token
from condaops.reconciler.state.update_queries import UpdateBranchInfo, get_update_branch, unpublished_update_branches
from condaops.reconciler.state.update_recorder import UpdateRecorder
from condaops.reconciler.updates.plan import CLOSED_STATE, HELD_STATE, OPEN_STATE
from condaops.reconciler.updates.render import closed_note, held_note

log = logging.getLogger("condaops.updates")

MAX_PAGES = 10  # Gitea lists every open pull request: pages searched for ours


class Failed(Exception):
    """One request was not answered as hoped; ``answer`` says how."""

    def __init__(self, what: str, answer: Answer) -> None:
        super().__init__(f"{what}: {answer.detail or answer.status}")
        self.answer = answer


class UpdatePublisher(ForgePublisher):
    def __init__(
        self,
        settings: Settings,
        recorder: UpdateRecorder,
        *,
        environ: Mapping[str, str] | None = None,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = recorder.engine
        self.recorder = recorder
        wanted = [s for s in settings.sources if s.updates is not None and s.updates.pull_requests]
        sources = [s for s in wanted if forge_of(s) is not None]
        super().__init__("update", sources, logger=log, environ=environ, policy=policy, clock=clock)

    def on_branch(self, source: str, branch: str) -> None:
        """An update run recorded news for this branch (never blocks)."""
        self.submit(source, branch)

    def unpublished(self) -> Iterable[Key]:
        return unpublished_update_branches(self.engine, self.sources)

    # --- the background thread ------------------------------------------------------------

    def handle(self, key: Key) -> None:
        source, branch = key
        src = self.sources[source]
        info = get_update_branch(self.engine, source, branch)
        if info is None or info.published:
            return
        token = read_token(src, self._environ)
        if token is None:
            self._record(info, None, "no forge token: set the variable or file named by 'status_token_env'", None)
            return
        started = time.perf_counter()
        try:
            pull, dismissed = self._publish(src, info, token)
        except Failed as failed:
            wait = self.wait(key, failed.answer.retry_after)
            self._record(info, None, str(failed), None)
            log.warning(
                "update_not_published source=%s branch=%s retry_in=%.0fs error=%s", source, branch, wait, failed
            )
            return
        self._record(info, pull, None, dismissed)
        log.info(
            "update_published source=%s branch=%s state=%s pr=%s seconds=%.3f",
            source,
            branch,
            info.state,
            pull.url if pull else None,
            time.perf_counter() - started,
        )

    def _record(
        self, info: UpdateBranchInfo, pull: pulls.PullInfo | None, error: str | None, dismissed: bool | None
    ) -> None:
        self.recorder.record_publication(
            info.source,
            info.branch,
            version=info.version,
            pr_number=pull.number if pull else None,
            pr_url=pull.url if pull else None,
            pr_state=pull.state if pull else None,
            error=error,
            head=info.head_sha,
            dismissed=bool(dismissed),
        )

    def _publish(self, src: SourceSettings, info: UpdateBranchInfo, token: str) -> tuple[pulls.PullInfo | None, bool]:
        forge = forge_of(src)
        assert forge is not None
        known = self._known(forge, token, info)
        current = known if known is not None and known.state == "open" else self._open_for(forge, token, info)
        if info.state == OPEN_STATE:
            if current is None and known is not None and known.state == "closed" and info.pr_head == info.head_sha:
                return known, True  # a person closed it as it shows this very proposal: dismissed
            if current is None:
                return self._open(forge, token, src, info), False
            self._send(pulls.edit_pull_request(forge, token, current.number, title=info.title, body=info.body), "edit")
            return current, False
        if current is None:
            return known, False
        if info.state == HELD_STATE:
            self._comment(forge, token, current.number, held_note(info.source, info.branch, info.note or ""))
            return current, False
        assert info.state == CLOSED_STATE
        self._comment(forge, token, current.number, closed_note(info.note or "", info.environments))
        answer = self._send(pulls.edit_pull_request(forge, token, current.number, close=True), "close")
        return pulls.pull_of(forge, answer.data) or current, False

    def _known(self, forge: api.Forge, token: str, info: UpdateBranchInfo) -> pulls.PullInfo | None:
        """The pull request recorded for this branch, as the forge has it now."""
        if info.pr_number is None:
            return None
        answer = self._send(pulls.get_pull_request(forge, token, info.pr_number), "read", quiet=frozenset({404}))
        return pulls.pull_of(forge, answer.data) if answer.ok else None

    def _open_for(self, forge: api.Forge, token: str, info: UpdateBranchInfo) -> pulls.PullInfo | None:
        """The open pull request from the branch, if any (one condaops or a person opened)."""
        base = self.sources[info.source].branch
        for page in range(1, MAX_PAGES + 1):
            answer = self._send(pulls.list_pulls_request(forge, token, info.branch, base, page), "list")
            found = pulls.pull_for_branch(forge, answer.data, info.branch)
            if found is not None or not api.has_next_page(forge, answer.headers, answer.data, page):
                return found
        return None

    def _open(self, forge: api.Forge, token: str, src: SourceSettings, info: UpdateBranchInfo) -> pulls.PullInfo:
        labels: list[object] = list(src.updates.labels) if src.updates else []
        if forge.api == api.GITEA and labels:
            listing = self._send(pulls.list_labels_request(forge, token), "labels")
            ids = pulls.label_ids(listing.data, [str(label) for label in labels])
            missing = sorted(set(map(str, labels)) - set(ids))
            if missing:
                log.warning("update_labels_missing source=%s labels=%s: create them on the forge", src.name, missing)
            labels = [ids[name] for name in sorted(ids)]
        request = pulls.create_pull_request(
            forge,
            token,
            branch=info.branch,
            base=src.branch,
            title=info.title or info.branch,
            body=info.body or "",
            labels=labels if forge.api != api.GITHUB else (),
        )
        created = pulls.pull_of(forge, self._send(request, "open").data)
        if created is None:
            raise Failed("open", Answer(None, "the forge's answer names no pull request"))
        if forge.api == api.GITHUB and labels:
            self._send(pulls.add_labels_request(forge, token, created.number, labels), "label")
        return created

    def _comment(self, forge: api.Forge, token: str, number: int, body: str) -> None:
        marker = body.splitlines()[0] if body.startswith("<!--") else None
        if marker is not None:
            listing = self._send(api.list_comments_request(forge, token, number), "comments")
            if api.marked_comment(listing.data, marker) is not None:
                return  # said once is enough
        self._send(api.create_comment_request(forge, token, number, body), "comment")

    def _send(self, request: api.ForgeRequest, what: str, *, quiet: frozenset[int] = frozenset()) -> Answer:
        answer = self.sender.send(request, name=f"update_{what}", context=f"url={request.url}", quiet=quiet)
        if not answer.ok and answer.status not in quiet:
            raise Failed(what, answer)
        return answer


def branch_page(src: SourceSettings, branch: str) -> str | None:
    return pulls.branch_url(web_url(src), src.status_api or "", branch)
