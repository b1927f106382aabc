"""Git context for a revision the site and ``condaops history`` show: commit subject,
author, time, links to the commit and the file on the forge; for a directory source, the
file's path and mtime.

Commit details are read at render time from the source's bare mirror
(``<mirror_dir>/<source>.git``, the one the reconciler fetches into), read-only, with
dulwich. Commits never change, so what was read is kept in a bounded LRU by (source,
SHA); a commit not (yet) in the mirror is asked again after ``MISS_SECONDS``. A web
replica on a host without the mirror shows the SHA and the forge links only.

Links come from ``reconciler.forge.links``: the source's ``web_url``, else guessed from
its Git URL (GitHub, GitLab, Gitea/Forgejo layouts).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING

from condaops.config import SourceSettings
from condaops.reconciler.forge.links import commit_url, file_url
from condaops.reconciler.lru import LRU

if TYPE_CHECKING:  # dulwich loads with the first Git source asked about (not for directories)
    from dulwich.repo import Repo

    from condaops.reconciler.sources.githistory import CommitInfo

log = logging.getLogger("condaops.web")

MISS_SECONDS = 30.0  # a commit the mirror lacks is looked for again after this long
STAT_SECONDS = 2.0  # a directory source's file mtime is read at most this often
SUBJECT_LIMIT = 200  # characters of a subject shown


@dataclass(frozen=True, slots=True)
class Revision:
    """A revision as the site shows it. ``kind``: ``git``, ``dir`` or ``unknown``."""

    revision: str
    short: str
    kind: str
    subject: str | None = None
    author: str | None = None  # the author's name (the address is not shown)
    time: datetime | None = None  # the commit's author time; for ``dir``: the file's mtime
    commit_url: str | None = None
    file_url: str | None = None
    path: str | None = None  # the file, as the source names it (``dir``: its full path)


def short_revision(revision: str | None) -> str:
    """A Git SHA to 12 characters; ``dir:<digest>`` revisions likewise."""
    if not revision:
        return "-"
    kind, sep, digest = revision.partition(":")
    if sep and len(digest) > 12:
        return f"{kind}:{digest[:12]}"
    return revision[:12] if re.fullmatch(r"[0-9a-f]{13,}", revision) else revision


class RevisionReader:
    """Describes revisions of the configured sources; shared by all requests (thread-safe)."""

    def __init__(self, sources: tuple[SourceSettings, ...], *, size: int = 4096) -> None:
        self._sources = {s.name: s for s in sources}
        self._commits: LRU[tuple[str, str], tuple[float, CommitInfo | None]] = LRU(size)
        self._stats: LRU[Path, tuple[float, datetime | None]] = LRU(size)
        self._repos: dict[str, tuple[float, Repo | None]] = {}
        self._lock = threading.Lock()

    def describe(self, source: str | None, revision: str | None, path: str | None = None) -> Revision | None:
        """What to show of ``revision`` of ``source`` (and the file ``path`` in it)."""
        if not revision:
            return None
        settings = self._sources.get(source or "")
        short = short_revision(revision)
        if settings is None:
            return Revision(revision, short, "unknown", path=path)
        if settings.git is not None:
            return self._git(settings, revision, short, path)
        return self._directory(settings, revision, short, path)

    def file_text(self, source: str | None, revision: str | None, path: str | None) -> str | None:
        """The text of the environment file ``path`` at commit ``revision`` of a Git
        source; None when that cannot be read here."""
        settings = self._sources.get(source or "")
        if settings is None or settings.git is None or not revision or not path:
            return None
        full = "/".join(p for p in (*settings.path.split("/"), *path.split("/")) if p not in ("", "."))
        from condaops.reconciler.sources.githistory import file_text

        with self._lock:
            repo = self._repo(settings)
            return file_text(repo, revision, full) if repo is not None else None

    def close(self) -> None:
        with self._lock:
            for _, repo in self._repos.values():
                if repo is not None:
                    repo.close()
            self._repos.clear()

    # --- Git ------------------------------------------------------------------------------

    def _git(self, settings: SourceSettings, revision: str, short: str, path: str | None) -> Revision:
        info = self._commit(settings, revision)
        subject = author = None
        when = None
        if info is not None:
            subject = info.subject[:SUBJECT_LIMIT]
            author = parseaddr(info.author)[0] or info.author.split("<", 1)[0].strip()
            when = datetime.fromisoformat(info.time)
        return Revision(
            revision,
            short,
            "git",
            subject=subject,
            author=author,
            time=when,
            commit_url=commit_url(settings, revision),
            file_url=file_url(settings, revision, path) if path else None,
            path=path,
        )

    def _commit(self, settings: SourceSettings, sha: str) -> CommitInfo | None:
        key = (settings.name, sha)
        now = time.monotonic()
        hit = self._commits.get(key)
        if hit is not None and (hit[1] is not None or now - hit[0] < MISS_SECONDS):
            return hit[1]
        from condaops.reconciler.sources.githistory import commit_info

        with self._lock:
            repo = self._repo(settings)
            try:
                info = commit_info(repo, sha) if repo is not None else None
            except (OSError, ValueError):  # a pack being rewritten by a fetch: ask again later
                log.debug("commit_unreadable source=%s sha=%s", settings.name, sha, exc_info=True)
                info = None
        self._commits.put(key, (now, info))
        return info

    def _repo(self, settings: SourceSettings) -> Repo | None:
        """The source's mirror, opened once; None while this host has none (looked for
        again after ``MISS_SECONDS``: the reconciler creates it on its first fetch)."""
        now = time.monotonic()
        opened, repo = self._repos.get(settings.name, (0.0, None))
        if repo is not None or (settings.name in self._repos and now - opened < MISS_SECONDS):
            return repo
        from dulwich.errors import NotGitRepository
        from dulwich.repo import Repo

        folder = settings.mirror_dir / f"{settings.name}.git" if settings.mirror_dir else None
        try:
            repo = Repo(str(folder)) if folder and folder.is_dir() else None
        except (NotGitRepository, OSError):
            repo = None
        self._repos[settings.name] = (now, repo)
        return repo

    # --- directories --------------------------------------------------------------------

    def _directory(self, settings: SourceSettings, revision: str, short: str, path: str | None) -> Revision:
        if settings.directory is None or not path:
            return Revision(revision, short, "dir", path=path)
        full = settings.directory / settings.path / path
        return Revision(revision, short, "dir", time=self._mtime(full), path=str(full))

    def _mtime(self, path: Path) -> datetime | None:
        now = time.monotonic()
        hit = self._stats.get(path)
        if hit is not None and now - hit[0] < STAT_SECONDS:
            return hit[1]
        try:
            found: datetime | None = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
        except OSError:  # removed since: the page says so by showing no time
            found = None
        self._stats.put(path, (now, found))
        return found
