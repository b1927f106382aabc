"""What each registry operation answers, independent of the web framework.

A handler takes an ``Incoming`` (the parsed route, query, headers and any received body)
and returns a ``Reply`` (status, headers, and bytes or a stream of chunks). Handlers block
on storage: the app runs them in worker threads. Refusals are ``RegistryError``s.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from condaops.registry.auth import CHALLENGE
from condaops.registry.errors import BLOB_UNKNOWN, DIGEST_INVALID, MANIFEST_UNKNOWN, UNSUPPORTED, RegistryError
from condaops.registry.layout import blob_key
from condaops.registry.manifests import OCI_INDEX, referrers_index
from condaops.registry.protocol import (
    accepts,
    catalog_link,
    page_tags,
    parse_content_range,
    parse_digest,
    parse_page_size,
    parse_range,
    tags_link,
    upload_range,
)
from condaops.registry.routes import Route
from condaops.registry.store import RegistryStore
from condaops.registry.uploads import Spooled, spool_chunks, store_spooled

log = logging.getLogger("condaops.registry")

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
JSON = "application/json"


@dataclass(frozen=True)
class Incoming:
    """A request as the handlers see it. Header names are lowercase."""

    route: Route
    method: str = "GET"
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    accept: tuple[str, ...] = ()
    body: Spooled | None = None  # blob data, received into a local file
    manifest: bytes | None = None  # a manifest body, read into memory (small)
    readable: Callable[[str], bool] = field(default=lambda name: True)  # repositories the client may read

    @property
    def head(self) -> bool:
        return self.method == "HEAD"


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    media_type: str | None = None
    stream: Iterator[bytes] | None = None  # the body in chunks, with Content-Length set


def _json(status: int, data: object, headers: dict[str, str] | None = None, media_type: str = JSON) -> Reply:
    return Reply(status, dict(headers or {}), json.dumps(data).encode(), media_type)


# --- pull ---------------------------------------------------------------------------------


def base(store: RegistryStore, req: Incoming) -> Reply:
    # Open to everyone (public namespaces pull anonymously), yet with a challenge:
    # containers/image (skopeo, podman) sends the credentials it was given only to
    # registries whose ping announced one. Unknown credentials never get here (401).
    return _json(200, {}, {"WWW-Authenticate": CHALLENGE})


def catalog(store: RegistryStore, req: Incoming) -> Reply:
    """The repositories the client may read, in pages like tags (``n``, ``last``)."""
    n = parse_page_size(req.query.get("n"))
    page = page_tags([r for r in store.repositories() if req.readable(r)], n, req.query.get("last"))
    headers = {"Link": catalog_link(n, page.next_last)} if page.next_last and n else {}
    return _json(200, {"repositories": page.tags}, headers)


def list_tags(store: RegistryStore, req: Incoming) -> Reply:
    n = parse_page_size(req.query.get("n"))
    page = page_tags(store.tags(req.route.name), n, req.query.get("last"))
    headers = {"Link": tags_link(req.route.name, n, page.next_last)} if page.next_last and n else {}
    return _json(200, {"name": req.route.name, "tags": page.tags}, headers)


def get_manifest(store: RegistryStore, req: Incoming) -> Reply:
    found = store.manifest(req.route.name, req.route.argument)
    if not accepts(list(req.accept), found.media_type):
        raise RegistryError(
            MANIFEST_UNKNOWN,
            f"manifest '{req.route.argument}' is a {found.media_type}, which the Accept header does not list",
            detail={"mediaType": found.media_type},
        )
    headers = {"Docker-Content-Digest": str(found.digest), "Content-Length": str(len(found.body))}
    return Reply(200, headers, b"" if req.head else found.body, found.media_type)


def get_blob(store: RegistryStore, req: Incoming) -> Reply:
    digest = parse_digest(req.route.argument)
    size = store.blob_size(digest)
    if size is None:
        raise RegistryError(BLOB_UNKNOWN, f"blob {digest} is not in the registry", detail={"digest": str(digest)})
    headers = {"Docker-Content-Digest": str(digest), "Accept-Ranges": "bytes", "ETag": f'"{digest}"'}
    if not req.head and (url := store.storage.download_url(blob_key(digest))):
        return Reply(307, {**headers, "Location": url})
    wanted = parse_range(req.headers.get("range"), size)
    if wanted is None:
        status, start, length = 200, 0, size
    else:
        status, start, length = 206, wanted.start, wanted.length
        headers["Content-Range"] = wanted.content_range()
    headers["Content-Length"] = str(length)
    stream = None if req.head or length == 0 else store.storage.stream(blob_key(digest), start, length)
    return Reply(status, headers, media_type="application/octet-stream", stream=stream)


def referrers(store: RegistryStore, req: Incoming) -> Reply:
    artifact_type = req.query.get("artifactType") or None
    index = referrers_index(store.referrers(req.route.name, parse_digest(req.route.argument)), artifact_type)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    return _json(200, index, headers, OCI_INDEX)


# --- push ---------------------------------------------------------------------------------


def start_upload(store: RegistryStore, req: Incoming) -> Reply:
    name = req.route.name
    if mount := req.query.get("mount"):
        digest = parse_digest(mount)
        # Blobs are shared by all repositories (see layout), so a known blob mounts from
        # anywhere; an unknown one falls back to a new session, as the spec asks.
        if store.blob_size(digest) is not None:
            return _blob_created(name, str(digest))
    if "digest" in req.query:
        digest = parse_digest(req.query["digest"])
        store_spooled(store.storage, req.body or _empty(store), digest)
        return _blob_created(name, str(digest))
    upload_id = store.uploads.start(name)
    return _upload_reply(202, name, upload_id, 0)


def upload_status(store: RegistryStore, req: Incoming) -> Reply:
    size = store.uploads.size(req.route.name, req.route.argument)
    return _upload_reply(204, req.route.name, req.route.argument, size)


def patch_upload(store: RegistryStore, req: Incoming) -> Reply:
    content_range = req.headers.get("content-range")
    start = parse_content_range(content_range)[0] if content_range else None
    size = store.uploads.append(req.route.name, req.route.argument, req.body or _empty(store), start)
    return _upload_reply(202, req.route.name, req.route.argument, size)


def finish_upload(store: RegistryStore, req: Incoming) -> Reply:
    if not req.query.get("digest"):
        raise RegistryError(DIGEST_INVALID, "finishing an upload needs ?digest=<digest> of the whole blob")
    digest = parse_digest(req.query["digest"])
    store.uploads.finish(req.route.name, req.route.argument, digest, req.body)
    return _blob_created(req.route.name, str(digest))


def cancel_upload(store: RegistryStore, req: Incoming) -> Reply:
    store.uploads.cancel(req.route.name, req.route.argument)
    return Reply(204)


def put_manifest(store: RegistryStore, req: Incoming) -> Reply:
    name, reference = req.route.name, req.route.argument
    pushed = store.put_manifest(name, reference, req.manifest or b"", req.headers.get("content-type"))
    log.info(
        "manifest_pushed name=%s reference=%s digest=%s media_type=%s",
        name,
        reference,
        pushed.digest,
        pushed.media_type,
    )
    headers = {"Location": f"/v2/{name}/manifests/{pushed.digest}", "Docker-Content-Digest": str(pushed.digest)}
    if pushed.subject:
        headers["OCI-Subject"] = pushed.subject
    return Reply(201, headers)


def refuse_delete(store: RegistryStore, req: Incoming) -> Reply:
    raise RegistryError(
        UNSUPPORTED, "deleting through the API is not supported; condaops removes old builds by garbage collection"
    )


def _blob_created(name: str, digest: str) -> Reply:
    return Reply(201, {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})


def _upload_reply(status: int, name: str, upload_id: str, size: int) -> Reply:
    return Reply(
        status,
        {
            "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
            "Docker-Upload-UUID": upload_id,
            "Range": upload_range(size),
        },
    )


def _empty(store: RegistryStore) -> Spooled:
    """An empty body (a request that sent none) as received data."""
    return spool_chunks((), store.storage.scratch)


HANDLERS: dict[str, Callable[[RegistryStore, Incoming], Reply]] = {
    "base": base,
    "catalog": catalog,
    "list_tags": list_tags,
    "get_manifest": get_manifest,
    "get_blob": get_blob,
    "referrers": referrers,
    "start_upload": start_upload,
    "upload_status": upload_status,
    "patch_upload": patch_upload,
    "finish_upload": finish_upload,
    "cancel_upload": cancel_upload,
    "put_manifest": put_manifest,
    "delete_manifest": refuse_delete,
    "delete_blob": refuse_delete,
}
