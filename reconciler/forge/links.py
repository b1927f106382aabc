"""Links to a repository's pages on its forge: pull/merge requests, commits, files. Pure.

A source's ``web_url`` is its repository's web address; unset, it is guessed from the
``git`` URL for http(s) and ssh remotes (``git@github.com:acme/envs.git`` →
``https://github.com/acme/envs``). The forge's kind (how its pages are laid out) is
``status_api`` when set, else guessed from the host name (``github``, ``gitlab`` in it),
else GitHub's layout, which Gitea and Forgejo share for pull requests.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from condaops.config import SourceSettings
from condaops.reconciler.forge.api import GITEA, GITHUB, GITLAB


def web_url(source: SourceSettings) -> str | None:
    """The repository's web address: ``web_url``, else guessed from ``git``."""
    if source.web_url:
        return source.web_url.rstrip("/")
    return guess_web_url(source.git or "")


def guess_web_url(git: str) -> str | None:
    """``https://host/path`` for http(s), ssh and scp-like remotes; None for local paths
    and ``git://`` (no web server can be assumed there)."""
    text = git.strip()
    if "://" not in text and ":" in text.split("/", 1)[0] and not text.startswith("/"):
        host, _, path = text.partition(":")
        text = f"ssh://{host}/{path}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https", "ssh", "git+ssh") or not parts.hostname:
        return None
    scheme = "http" if parts.scheme == "http" else "https"
    port = f":{parts.port}" if parts.port and parts.scheme in ("http", "https") else ""
    path = parts.path.strip("/").removesuffix(".git")
    return f"{scheme}://{parts.hostname}{port}/{path}" if path else None


def kind_of(source: SourceSettings) -> str:
    if source.status_api:
        return source.status_api
    host = urlsplit(web_url(source) or "").hostname or ""
    return GITLAB if "gitlab" in host else GITEA if "gitea" in host or "forgejo" in host else GITHUB


def pull_request_url(source: SourceSettings, number: str) -> str | None:
    base = web_url(source)
    if base is None or not number.isdigit():
        return None
    kind = kind_of(source)
    return f"{base}/-/merge_requests/{number}" if kind == GITLAB else f"{base}/{_pulls(kind)}/{number}"


def commit_url(source: SourceSettings, sha: str) -> str | None:
    base = web_url(source)
    if base is None or not sha:
        return None
    return f"{base}/-/commit/{sha}" if kind_of(source) == GITLAB else f"{base}/commit/{sha}"


def file_url(source: SourceSettings, sha: str, path: str) -> str | None:
    """The file ``path`` (below the source's ``path``) at commit ``sha``."""
    base = web_url(source)
    if base is None or not sha or not path:
        return None
    full = quote("/".join(p for p in (*source.path.split("/"), *path.split("/")) if p not in ("", ".")))
    kind = kind_of(source)
    if kind == GITLAB:
        return f"{base}/-/blob/{sha}/{full}"
    if kind == GITEA:
        return f"{base}/src/commit/{sha}/{full}"
    return f"{base}/blob/{sha}/{full}"


def _pulls(kind: str) -> str:
    return "pulls" if kind == GITEA else "pull"
