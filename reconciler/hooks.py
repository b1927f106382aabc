"""Webhooks, decided: which Git sources a signed call asks to refresh. Pure: no IO.

A call names its sources by the repository URLs in its JSON payload (GitHub, Gitea and
GitLab push events) or explicitly with ``?source=<name>``; it is trusted for a source
only when its signature verifies with that source's secret:

* ``X-Hub-Signature-256: sha256=<hex>`` — GitHub, Gitea: HMAC-SHA256 of the raw body;
* ``X-Condaops-Signature: sha256=<hex>`` — the same HMAC, for any other sender;
* ``X-Gitlab-Token: <secret>`` — GitLab sends the secret itself.

``decide`` turns one call into a ``HookDecision`` (an HTTP status, the sources to
refresh, a message); the web layer reads the body and the secrets and acts on it. The
order of the checks is fixed: a signature header (401), JSON (400: not JSON, over
``MAX_PAYLOAD_BYTES`` or nested deeper than ``boundedjson.MAX_DEPTH``), a matching source
and a signature that verifies with its secret (401), then a ping (200, nothing
refreshed) or the refresh (202). A call that does not verify gets the same 401 whether
or not a source has its repository, so a caller without the secret learns nothing about
the configuration; ``note`` says which it was, for the log only. A source without a
webhook secret is never a target.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from condaops.config.settings import SourceSettings
from condaops.reconciler import boundedjson

GITHUB_SIGNATURE = "x-hub-signature-256"
GENERIC_SIGNATURE = "x-condaops-signature"
GITLAB_TOKEN = "x-gitlab-token"
GITHUB_EVENT = "x-github-event"
SIGNATURE_PREFIX = "sha256="
MAX_PAYLOAD_BYTES = 1024 * 1024  # push events are a few KiB; GitHub caps payloads at 25 MB
UNVERIFIED = (
    "the call is not signed, or its signature does not match the webhook secret of a Git source "
    "for this repository; sign it with the source's secret (see the server log)"
)

# Where push payloads carry the repository's addresses: GitHub and Gitea under
# ``repository``, GitLab under ``project`` (and, older, ``repository``).
PAYLOAD_OBJECTS = ("repository", "project")
URL_KEYS = ("clone_url", "ssh_url", "git_url", "html_url", "git_http_url", "git_ssh_url", "web_url", "homepage", "url")

SecretOf = Callable[[SourceSettings], bytes | None]


@dataclass(frozen=True, slots=True)
class HookDecision:
    """What to answer; ``sources`` verified the signature (refreshed only when ``status`` is 202)."""

    status: int
    detail: str
    sources: tuple[str, ...] = ()
    matched: tuple[str, ...] = ()  # sources the call named, verified or not (for the log)
    note: str = ""  # why a call was refused, for the server log only (never answered)


# --- repository URLs ----------------------------------------------------------------------


def normalize_repo_url(url: str) -> str:
    """One repository's address in a form all its URLs share: ``host/path``.

    The scheme, user info and port are dropped (the same repository is reached over
    https, ssh and git://), scp-like ``user@host:path`` is read as ssh, the host and the
    path are lower-cased (GitHub, GitLab and Gitea treat paths case-insensitively) and
    trailing ``/`` and ``.git`` are removed. Local paths and ``file://`` URLs become
    their path."""
    text = url.strip()
    if "://" not in text and ":" in text.split("/", 1)[0]:  # scp-like: [user@]host:path
        host, _, path = text.partition(":")
        text = f"ssh://{host}/{path}"
    if "://" in text:
        parts = urlsplit(text)
        host = parts.hostname or ""
        text = f"{host}/{parts.path.lstrip('/')}" if host else parts.path
    text = text.rstrip("/").removesuffix(".git").rstrip("/")
    return text.lower()


def payload_repo_urls(payload: object) -> tuple[str, ...]:
    """The repository URLs a push payload carries (GitHub, Gitea, GitLab), in order."""
    if not isinstance(payload, dict):
        return ()
    urls: list[str] = []
    for name in PAYLOAD_OBJECTS:
        obj = payload.get(name)
        if isinstance(obj, dict):
            urls += [v for k in URL_KEYS if isinstance(v := obj.get(k), str) and v.strip()]
    return tuple(dict.fromkeys(urls))


def matching_sources(sources: Iterable[SourceSettings], urls: Iterable[str]) -> list[SourceSettings]:
    """The Git sources whose ``git`` location is one of ``urls`` (normalized)."""
    wanted = {normalize_repo_url(u) for u in urls}
    return [s for s in sources if s.git is not None and normalize_repo_url(s.git) in wanted]


def accepts_webhooks(source: SourceSettings) -> bool:
    """Git sources with a webhook secret configured."""
    return source.git is not None and bool(source.webhook_secret_env or source.webhook_secret_file)


# --- signatures ---------------------------------------------------------------------------


def hmac_hex(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def _signature_valid(header: str, secret: bytes, body: bytes) -> bool:
    if not header.startswith(SIGNATURE_PREFIX):
        return False
    given = header[len(SIGNATURE_PREFIX) :].strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(hmac_hex(secret, body).encode(), given)


def _token_valid(token: str, secret: bytes) -> bool:
    # Digests of both sides: equal lengths, so the comparison time says nothing about the secret's.
    given = hashlib.sha256(token.encode("utf-8", "replace")).digest()
    return hmac.compare_digest(hashlib.sha256(secret).digest(), given)


def verify_signature(headers: Mapping[str, str], body: bytes, secret: bytes | None) -> bool:
    """Whether one of the signature headers (lower-case names) verifies with ``secret``.
    No secret, an empty one or no signature header: False."""
    if not secret:
        return False
    checks = (
        (GITHUB_SIGNATURE, lambda v: _signature_valid(v, secret, body)),
        (GENERIC_SIGNATURE, lambda v: _signature_valid(v, secret, body)),
        (GITLAB_TOKEN, lambda v: _token_valid(v, secret)),
    )
    return any(name in headers and check(headers[name]) for name, check in checks)


def is_ping(headers: Mapping[str, str]) -> bool:
    """GitHub's (and Gitea's) ``ping``, sent when a hook is created: answered, nothing done."""
    return headers.get(GITHUB_EVENT, "").strip().lower() == "ping"


# --- the decision -------------------------------------------------------------------------


def _parse(body: bytes) -> tuple[object, str | None]:
    try:
        return boundedjson.loads(body, max_bytes=MAX_PAYLOAD_BYTES), None
    except boundedjson.JSONRejected as exc:
        return None, f"the body is refused ({exc}); send the push event as application/json"


def _named(sources: Sequence[SourceSettings], name: str) -> list[SourceSettings]:
    return [s for s in sources if s.name == name and accepts_webhooks(s)]


def _is_signed(headers: Mapping[str, str]) -> bool:
    return any(name in headers for name in (GITHUB_SIGNATURE, GENERIC_SIGNATURE, GITLAB_TOKEN))


def _targets(sources: Sequence[SourceSettings], body: bytes, source: str | None) -> list[SourceSettings] | HookDecision:
    """The sources a call names (by ``?source`` or its payload's URLs), or the refusal."""
    if source is not None:
        targets = _named(sources, source)
        if not targets:
            return HookDecision(401, UNVERIFIED, note=f"no Git source named '{source}' accepts webhooks")
        return targets
    payload, problem = _parse(body)
    if problem:
        return HookDecision(400, problem)
    urls = payload_repo_urls(payload)
    targets = [s for s in matching_sources(sources, urls) if accepts_webhooks(s)]
    if not targets:
        shown = sorted({normalize_repo_url(u) for u in urls})  # without user info
        where = ", ".join(shown[:4]) if shown else "no repository URL in the payload"
        note = (
            f"no Git source with a webhook secret has this repository ({where}); "
            "fix the source's 'git' URL or call with ?source=<name>"
        )
        return HookDecision(401, UNVERIFIED, note=note)
    return targets


def decide(
    sources: Sequence[SourceSettings],
    headers: Mapping[str, str],
    body: bytes,
    secret_of: SecretOf,
    *,
    source: str | None = None,
) -> HookDecision:
    """Answer one webhook call; ``headers`` have lower-case names; ``secret_of`` gives a
    source's secret (None when it cannot be read). Never raises for bad input."""
    if not _is_signed(headers):
        return HookDecision(401, UNVERIFIED, note="no signature header")
    targets = _targets(sources, body, source)
    if isinstance(targets, HookDecision):
        return targets
    matched = tuple(s.name for s in targets)
    verified = tuple(s.name for s in targets if verify_signature(headers, body, secret_of(s)))
    if not verified:
        return HookDecision(401, UNVERIFIED, matched=matched, note="the signature does not match")
    if source is not None and (problem := _parse(body)[1]):
        return HookDecision(400, problem, matched=matched)
    if is_ping(headers):
        return HookDecision(
            200, "pong: the signature is valid; push events will refresh these sources", verified, matched
        )
    return HookDecision(202, "refresh requested", verified, matched)
