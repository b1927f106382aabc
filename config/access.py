"""``web.auth`` as decisions: who may read which namespace. Pure; no IO, no web framework.

The one source of truth for read access, used by the status site (``web.access``) and by
the registry (``registry.access``), so a namespace the site hides is hidden from pulls too.

* No tokens configured anywhere: everything is public.
* ``web.auth.tokens``: each may read every namespace; namespaces not listed in
  ``web.auth.namespaces`` then need one of them.
* ``web.auth.namespaces``: ``public`` (readable by anyone) or a list of tokens that may
  read that namespace (in addition to the global tokens).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from condaops.config.settings import AuthSettings


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class Viewer:
    """The reader of one request: which tokens it holds, in effect."""

    authenticated: bool = False
    everything: bool = False  # holds a global token
    granted: frozenset[str] = frozenset()  # namespaces its namespace token opens


ANONYMOUS = Viewer()
EVERYTHING = Viewer(authenticated=True, everything=True)


class AccessPolicy:
    """``web.auth`` as decisions. Tokens are compared as sha256 digests in constant time."""

    def __init__(self, auth: AuthSettings) -> None:
        self._global = [_digest(t) for t in auth.tokens]
        self._public = frozenset(ns for ns, who in auth.namespaces.items() if who is None)
        self._by_namespace: dict[str, list[bytes]] = {
            ns: [_digest(t) for t in who] for ns, who in auth.namespaces.items() if who is not None
        }

    @property
    def enabled(self) -> bool:
        """Whether any token is configured (the login link is shown only then)."""
        return bool(self._global or self._by_namespace)

    def viewer(self, token: str | None) -> Viewer | None:
        """The viewer holding ``token``; ANONYMOUS without one; None for an unknown token."""
        if not token:
            return ANONYMOUS
        digest = _digest(token)
        everything = _matches(digest, self._global)
        granted = frozenset(ns for ns, digests in self._by_namespace.items() if _matches(digest, digests))
        if not everything and not granted:
            return None
        return Viewer(authenticated=True, everything=everything, granted=granted)

    def can_see(self, viewer: Viewer, namespace: str) -> bool:
        if namespace in self._public or viewer.everything:
            return True
        if namespace in self._by_namespace:
            return namespace in viewer.granted
        return not self._global

    def hides_some(self, viewer: Viewer) -> bool:
        """Whether logging in (with another token) could show more."""
        return self.enabled and not viewer.everything


def _matches(digest: bytes, candidates: list[bytes]) -> bool:
    found = False
    for candidate in candidates:  # no early exit: the time taken does not tell which matched
        found |= hmac.compare_digest(digest, candidate)
    return found
