"""Who may read what (``web.auth``) on the site: the token of a request, and the policy.

The decisions themselves are ``condaops.config.access`` (shared with the registry):

* No tokens configured anywhere: everything is public.
* ``web.auth.tokens``: each may read every namespace; namespaces not listed in
  ``web.auth.namespaces`` then need one of them.
* ``web.auth.namespaces``: ``public`` (readable by anyone) or a list of tokens that may
  read that namespace (in addition to the global tokens).

A token comes in ``Authorization: Bearer <token>`` or in the cookie the login form sets.
Something not visible is answered like something that does not exist (404), so names
do not leak. Health, readiness, metrics and static files are always open.
"""

from __future__ import annotations

from litestar import Request
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException

from condaops.config.access import ANONYMOUS, AccessPolicy, Viewer

__all__ = [
    "ANONYMOUS",
    "COOKIE",
    "COOKIE_MAX_AGE",
    "AccessPolicy",
    "Viewer",
    "ViewerDep",
    "bearer_token",
    "resolve_viewer",
    "safe_next",
]

COOKIE = "condaops_token"
COOKIE_MAX_AGE = 7 * 24 * 3600
ViewerDep = NamedDependency[Viewer]  # a handler parameter named ``viewer`` receives the reader


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``; '' for another Authorization scheme."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def resolve_viewer(request: Request, policy: AccessPolicy) -> Viewer:
    """The request's viewer. A wrong bearer token is refused (401) so API clients notice;
    a stale cookie just means anonymous."""
    header = bearer_token(request)
    if header is not None:
        viewer = policy.viewer(header)
        if viewer is None:
            raise NotAuthorizedException("unknown token", headers={"WWW-Authenticate": 'Bearer realm="condaops"'})
        return viewer
    return policy.viewer(request.cookies.get(COOKIE)) or ANONYMOUS


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site, never another host."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
