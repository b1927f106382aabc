"""Which registry operation a request is: pure parsing of ``/v2/<rest>`` and the method.

Litestar's ``{name:path}`` parameter only works at the end of a route, yet repository names
contain slashes and come first (``/v2/<ns>/<env>/manifests/<ref>``). So the app has one
catch-all route and this module reads the path from its end, where the keywords are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from condaops.registry.errors import BLOB_UPLOAD_UNKNOWN, NOT_FOUND, UNSUPPORTED, RegistryError
from condaops.registry.protocol import UPLOAD_ID_RE, check_name, check_tag, is_digest, parse_digest

# kind -> the path pattern after /v2/ (name first, keyword and argument last).
_PATTERNS = (
    ("tags", re.compile(r"(?P<name>.+)/tags/list")),
    ("manifest", re.compile(r"(?P<name>.+)/manifests/(?P<arg>[^/]+)")),
    ("uploads", re.compile(r"(?P<name>.+)/blobs/uploads")),
    ("upload", re.compile(r"(?P<name>.+)/blobs/uploads/(?P<arg>[^/]+)")),
    ("blob", re.compile(r"(?P<name>.+)/blobs/(?P<arg>[^/]+)")),
    ("referrers", re.compile(r"(?P<name>.+)/referrers/(?P<arg>[^/]+)")),
)

# (kind, method) -> operation. Pull operations are open; the others need a push token.
OPERATIONS: dict[tuple[str, str], str] = {
    ("base", "GET"): "base",
    ("base", "HEAD"): "base",
    ("catalog", "GET"): "catalog",
    ("tags", "GET"): "list_tags",
    ("manifest", "GET"): "get_manifest",
    ("manifest", "HEAD"): "get_manifest",
    ("manifest", "PUT"): "put_manifest",
    ("manifest", "DELETE"): "delete_manifest",
    ("blob", "GET"): "get_blob",
    ("blob", "HEAD"): "get_blob",
    ("blob", "DELETE"): "delete_blob",
    ("uploads", "POST"): "start_upload",
    ("upload", "GET"): "upload_status",
    ("upload", "PATCH"): "patch_upload",
    ("upload", "PUT"): "finish_upload",
    ("upload", "DELETE"): "cancel_upload",
    ("referrers", "GET"): "referrers",
}
PULL_OPERATIONS = frozenset({"base", "catalog", "list_tags", "get_manifest", "get_blob", "referrers"})
CATALOG = "_catalog"


@dataclass(frozen=True)
class Route:
    """One parsed request: the operation, the repository and its argument.

    ``argument`` is a tag or digest (manifests), a digest (blobs, referrers), an upload id,
    or empty. Everything in it has been validated, so it is safe in storage keys.
    """

    operation: str
    name: str = ""
    argument: str = ""

    @property
    def is_push(self) -> bool:
        return self.operation not in PULL_OPERATIONS


def parse_route(method: str, rest: str) -> Route:
    """The operation for ``METHOD /v2/<rest>``; NOT_FOUND, UNSUPPORTED (405) or the
    validation error of the name, tag, digest or upload id otherwise.

    ``rest`` is the path as the client sent it (not normalized): a name with an empty
    component (``a//b``, ``/a``, ``a/b/``) is refused, never rewritten. One trailing slash
    is allowed (``blobs/uploads/``)."""
    path = rest.removesuffix("/")
    kind, name, argument = _match(path)
    operation = OPERATIONS.get((kind, method.upper()))
    if operation is None:
        allowed = sorted(m for (k, m) in OPERATIONS if k == kind)
        raise RegistryError(
            UNSUPPORTED,
            f"{method.upper()} is not supported on this endpoint; use {', '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )
    if kind in ("base", "catalog"):
        return Route(operation)
    check_name(name)
    return Route(operation, name, _checked_argument(kind, argument))


def _match(path: str) -> tuple[str, str, str]:
    if path == "":
        return "base", "", ""
    if path == CATALOG:
        return "catalog", "", ""
    for kind, pattern in _PATTERNS:
        match = pattern.fullmatch(path)
        if match:
            return kind, match.group("name"), match.groupdict().get("arg") or ""
    raise RegistryError(NOT_FOUND, f"/v2/{path[:200]} is not an endpoint of the distribution API")


def _checked_argument(kind: str, argument: str) -> str:
    if kind == "manifest":
        return str(parse_digest(argument)) if is_digest(argument) else check_tag(argument)
    if kind in ("blob", "referrers"):
        return str(parse_digest(argument))
    if kind == "upload" and not UPLOAD_ID_RE.fullmatch(argument):
        raise RegistryError(BLOB_UPLOAD_UNKNOWN, f"there is no upload session '{argument[:100]}'")
    return argument
