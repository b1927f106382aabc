"""The registry on Litestar: one catch-all route under ``/v2/`` (plus ``/v2/`` itself).

``registry_router(settings, storage)`` is what the main web app mounts;
``create_registry_app(settings)`` is a standalone app for tests and benchmarks. The route
handler parses the path (``routes``), checks the push token, lets the ``dynamic`` gate
build a dynamic image the request asks for, receives any body into a
local file without holding it in memory, runs the operation (``handlers``) in a worker
thread, and sends the reply, streaming blobs chunk by chunk.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import anyio
import anyio.to_thread
from litestar import HttpMethod, Litestar, Request, Response, Router, route
from litestar.logging.config import LoggingConfig
from litestar.params import FromPath
from litestar.response import Stream

from condaops.config.access import AccessPolicy
from condaops.config.settings import Settings
from condaops.registry.access import Reader, RegistryAccess
from condaops.registry.auth import PushTokens
from condaops.registry.backends import open_storage
from condaops.registry.dynamic import Caller, DynamicBuilder, DynamicImages, DynamicOff, dynamic_gate
from condaops.registry.errors import (
    BLOB_UNKNOWN,
    DENIED,
    INSUFFICIENT_STORAGE,
    NAME_INVALID,
    SIZE_INVALID,
    UNAVAILABLE,
    RegistryError,
    StorageError,
    StorageFullError,
)
from condaops.registry.handlers import API_VERSION, HANDLERS, JSON, Incoming, Reply
from condaops.registry.manifests import MANIFEST_MAX_BYTES
from condaops.registry.protocol import parse_digest
from condaops.registry.quota import Quota, check_blob_size, check_free_space, check_open_uploads
from condaops.registry.routes import Route, parse_route
from condaops.registry.storage import Storage
from condaops.registry.store import RegistryStore
from condaops.registry.uploads import Spooled, SpoolWriter

log = logging.getLogger("condaops.registry")

SPOOL_BATCH = 1024 * 1024  # bytes gathered from the socket before one write in a thread
_BODY_OPERATIONS = frozenset({"patch_upload", "finish_upload", "start_upload"})
_ALL_METHODS = [HttpMethod.GET, HttpMethod.HEAD, HttpMethod.POST, HttpMethod.PUT, HttpMethod.PATCH, HttpMethod.DELETE]


# (method, status, bytes received, bytes sent) for each reply: how metrics learn of traffic
Observer = Callable[[str, int, int, int], None]


@dataclass(frozen=True)
class _Registry:
    store: RegistryStore
    access: RegistryAccess
    dynamic: DynamicImages | DynamicOff  # the dynamic/ namespace (dynamic.enabled)
    quota: Quota
    observe: Observer | None = None


def registry_router(
    settings: Settings,
    storage: Storage,
    *,
    observe: Observer | None = None,
    dynamic_builder: DynamicBuilder | None = None,
) -> Router:
    """Route handlers for ``/v2/`` and ``/v2/...``, to mount at the root of the main app.

    Pulling follows the site's visibility (``web.auth``; see ``registry.access``); pushing
    needs one of ``registry.push_tokens`` or a token from ``registry.push_token_file``.
    Errors are answered in the spec's JSON form. ``observe`` hears about every reply (the
    service's metrics). ``dynamic_builder`` builds dynamic images (``dynamic.enabled``); the
    registry itself never builds (``registry.dynamic``).
    """
    tokens = PushTokens(settings.registry.push_tokens, settings.registry.push_token_file)
    registry = _Registry(
        RegistryStore(storage),
        RegistryAccess(AccessPolicy(settings.web.auth), tokens),
        dynamic_gate(settings, storage, dynamic_builder),
        Quota.of(settings),
        observe,
    )

    @route("/v2/", http_method=[HttpMethod.GET, HttpMethod.HEAD], include_in_schema=False)
    async def registry_base(request: Request) -> Response[bytes]:
        return await _serve(registry, request, "")

    @route("/v2/{rest:path}", http_method=_ALL_METHODS, include_in_schema=False, request_max_body_size=None)
    async def registry_api(request: Request, rest: FromPath[str]) -> Response[bytes]:
        return await _serve(registry, request, rest)

    return Router(path="/", route_handlers=[registry_base, registry_api])


def create_registry_app(
    settings: Settings, storage: Storage | None = None, *, dynamic_builder: DynamicBuilder | None = None
) -> Litestar:
    """A Litestar app serving only the registry (tests, benchmarks, a registry-only host)."""
    storage = storage or open_storage(settings)
    return Litestar(
        route_handlers=[registry_router(settings, storage, dynamic_builder=dynamic_builder)],
        openapi_config=None,
        logging_config=LoggingConfig(configure_root_logger=False),  # keep condaops' log format
        on_startup=[storage.check],  # an unreachable bucket fails the start, not the first push
        on_shutdown=[storage.close],
    )


async def _serve(registry: _Registry, request: Request, rest: str) -> Response[bytes]:
    head = request.method == HttpMethod.HEAD
    incoming: Incoming | None = None
    try:
        parsed = parse_route(request.method, sent_path(request.scope.get("raw_path"), rest))
        reader = registry.access.reader(request.headers.get("authorization"))
        await _authorize(registry, reader, parsed)
        caller = Caller(reader, request.client.host if request.client else "-")
        await registry.dynamic.prepare(parsed, caller)  # may build a dynamic image first
        incoming = await _incoming(registry, request, parsed, reader)
        reply = await anyio.to_thread.run_sync(HANDLERS[parsed.operation], registry.store, incoming)
    except RegistryError as exc:
        reply = _error_reply(exc)
    except StorageFullError as exc:
        log.warning("registry_storage_full method=%s path=%s error=%s", request.method, request.url.path, exc)
        reply = _error_reply(RegistryError(DENIED, str(exc), status=INSUFFICIENT_STORAGE))
    except StorageError as exc:
        log.warning("registry_storage_failed method=%s path=%s error=%s", request.method, request.url.path, exc)
        reply = _error_reply(RegistryError(UNAVAILABLE, str(exc)))
    finally:
        if incoming is not None and incoming.body is not None:
            incoming.body.path.unlink(missing_ok=True)  # stored data was moved away; refused data goes
    if registry.observe is not None:
        registry.observe(request.method, reply.status, _bytes_in(incoming), 0 if head else _bytes_out(reply))
    return _response(reply, head)


def sent_path(raw_path: bytes | None, rest: str) -> str:
    """What follows ``/v2/`` exactly as the client sent it.

    The framework hands over a normalized path (``a//b`` → ``a/b``, ``%2f`` → ``/``, no
    trailing slash), which would accept names the distribution grammar refuses. Names,
    tags and digests never need percent-encoding; only an encoded ``:`` (of a digest) is
    read, any other ``%`` is refused."""
    if not raw_path:
        return rest.removeprefix("/")
    text = raw_path.decode("latin-1").split("?", 1)[0]  # some servers leave the query in it
    start = text.find("/v2")
    text = text[start + 3 :] if start >= 0 else text
    text = text.removeprefix("/").replace("%3A", ":").replace("%3a", ":")
    if "%" in text:
        raise RegistryError(
            NAME_INVALID,
            f"'{text[:200]}' holds percent-encoded characters, which no repository name, tag or digest "
            "has; send them as they are",
        )
    return text


async def _authorize(registry: _Registry, reader: Reader, parsed: Route) -> None:
    """Refuse what ``reader`` may not do (see ``registry.access``)."""
    if parsed.is_push:
        registry.access.require_push(reader)
        return
    if not parsed.name:
        return
    registry.access.require_read(reader, parsed.name)
    if parsed.operation == "get_blob" and registry.access.checks_blob_links(reader):
        digest = parse_digest(parsed.argument)
        if not await anyio.to_thread.run_sync(registry.store.repository_has_blob, parsed.name, digest):
            raise RegistryError(
                BLOB_UNKNOWN, f"blob {digest} is not in repository '{parsed.name}'", detail={"digest": str(digest)}
            )


def _bytes_in(incoming: Incoming | None) -> int:
    if incoming is None:
        return 0
    return incoming.body.size if incoming.body is not None else len(incoming.manifest or b"")


def _bytes_out(reply: Reply) -> int:
    length = reply.headers.get("Content-Length") or reply.headers.get("content-length")
    return int(length) if length and length.isdigit() else len(reply.body)


async def _incoming(registry: _Registry, request: Request, parsed: Route, reader: Reader) -> Incoming:
    """The request for the handlers, its body received as the operation needs it."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    query = {k: v for k, v in request.query_params.items()}
    body: Spooled | None = None
    manifest: bytes | None = None
    if parsed.operation == "put_manifest":
        await anyio.to_thread.run_sync(check_free_space, registry.quota, registry.store.storage, _announced(headers))
        manifest = await _read_limited(request, MANIFEST_MAX_BYTES)
    elif parsed.operation in _BODY_OPERATIONS:
        body = await _receive_blob(registry, request, parsed, headers, query)
    accept = tuple(request.headers.getall("accept", []))
    readable = functools.partial(registry.access.may_read, reader)
    return Incoming(parsed, request.method, query, headers, accept, body, manifest, readable)


async def _receive_blob(
    registry: _Registry, request: Request, parsed: Route, headers: dict[str, str], query: dict[str, str]
) -> Spooled | None:
    """The blob data of an upload request, after the quotas allow it (refused at the
    headers when they can tell, else while it streams in)."""
    quota, store = registry.quota, registry.store
    held = 0
    if parsed.operation != "start_upload":  # refuse before receiving, not after
        held = await anyio.to_thread.run_sync(store.uploads.size, parsed.name, parsed.argument)
    elif "digest" not in query:
        await anyio.to_thread.run_sync(check_open_uploads, quota, store)
    if not _has_body(headers) or (parsed.operation == "start_upload" and "digest" not in query):
        return None
    check_blob_size(quota, held + _announced(headers))
    await anyio.to_thread.run_sync(check_free_space, quota, store.storage, _announced(headers))
    return await _spool(request, store.storage, limit=quota.max_blob_size - held)


def _announced(headers: dict[str, str]) -> int:
    length = headers.get("content-length", "")
    return int(length) if length.isdigit() else 0


def _has_body(headers: dict[str, str]) -> bool:
    return headers.get("content-length", "0") not in ("", "0") or "chunked" in headers.get("transfer-encoding", "")


async def _spool(request: Request, storage: Storage, *, limit: int) -> Spooled:
    """Receive the body into a scratch file; disk writes happen in a worker thread, in
    batches, so the event loop never blocks on the disk. More than ``limit`` bytes (a
    body that did not announce its length) is refused as it arrives."""
    writer = await anyio.to_thread.run_sync(SpoolWriter, storage.scratch)
    try:
        batch: list[bytes] = []
        pending = received = 0
        async for chunk in request.stream():
            batch.append(chunk)
            pending += len(chunk)
            received += len(chunk)
            if received > limit:
                raise RegistryError(
                    SIZE_INVALID,
                    f"the blob is larger than this registry accepts (registry.max_blob_size); "
                    f"stopped after {received} bytes",
                    status=413,
                )
            if pending >= SPOOL_BATCH:
                await anyio.to_thread.run_sync(writer.write_all, batch)
                batch, pending = [], 0
        await anyio.to_thread.run_sync(writer.write_all, batch)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise


async def _read_limited(request: Request, limit: int) -> bytes:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise RegistryError(SIZE_INVALID, f"the manifest is larger than {limit} bytes", status=413)
    return bytes(data)


def _error_reply(exc: RegistryError) -> Reply:
    return Reply(exc.status, dict(exc.headers), json.dumps(exc.body()).encode(), JSON)


def _response(reply: Reply, head: bool) -> Response[bytes]:
    headers = {k.lower(): v for k, v in {**API_VERSION, **reply.headers}.items()}
    if reply.media_type:
        headers["content-type"] = reply.media_type  # also on HEAD, where Litestar sets none
    if reply.stream is not None:
        stream = Stream(_chunks(reply.stream), status_code=reply.status, headers=headers)
        return stream  # type: ignore[return-value]  # a Stream is a Response; routes keep Response[bytes] for Litestar
    if not head and reply.status not in (204, 304):
        headers["content-length"] = str(len(reply.body))
    body = b"" if head else reply.body
    return Response(body, status_code=reply.status, headers=headers, media_type=reply.media_type)


async def _chunks(stream: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The stream's chunks, each read in a worker thread while the one before is being
    sent (disk and socket overlap). The stream is closed however sending ends: a client
    that disconnects must not leave a file or an S3 connection open."""
    loop = asyncio.get_running_loop()
    pending = loop.run_in_executor(None, next, stream, None)
    try:
        while (chunk := await pending) is not None:
            pending = loop.run_in_executor(None, next, stream, None)
            yield chunk
    finally:
        with anyio.CancelScope(shield=True):
            await asyncio.wait([pending])  # a generator cannot be closed while a thread runs it
        close = getattr(stream, "close", None)
        if close is not None:
            close()
