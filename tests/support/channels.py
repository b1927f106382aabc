"""Real conda channels for tests: write packages, index them, serve them over HTTP.

py-rattler cannot write packages, so this module writes both formats itself:

* ``.tar.bz2`` — one bzip2 tar holding ``info/`` and the payload;
* ``.conda``   — an uncompressed zip of ``metadata.json``, ``info-<stem>.tar.zst`` and
  ``pkg-<stem>.tar.zst``.

Bytes are deterministic (sorted members, fixed mtimes, uid/gid 0), so writing the same
package twice gives the same sha256. Channels are indexed with rattler's own indexer
without sharded repodata (see FACTS: shards + naive HTTP caching give stale 304s).

``serve_directory`` is a loopback HTTP server with strong ETags and a request log, used
both for channels made here and for ``../shared/realdata/channel/*``.
"""

from __future__ import annotations

import asyncio
import bz2
import concurrent.futures
import contextlib
import email.utils
import hashlib
import http.server
import io
import json
import socket
import tarfile
import threading
import time
import urllib.parse
import zipfile
from collections.abc import Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import zstandard

from tests.support.loopback import serve_http

# The classic conda placeholder; files containing it are rewritten to the real prefix
# at link time when listed in info/has_prefix.
PREFIX_PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"
# Fixed times keep archives byte-identical between runs (2023-11-14T22:13:20Z).
FIXED_MTIME = 1_700_000_000
FIXED_TIMESTAMP_MS = FIXED_MTIME * 1000

T = TypeVar("T")
PackageFormat = Literal["tar.bz2", "conda"]
FileContent = bytes | str


@dataclass(frozen=True)
class PackageSpec:
    """Everything ``write_package`` needs, as data (for ``make_channel``).

    ``executables`` are names of ``bin/<name>`` shell scripts (mode 0755) that print
    ``<name> <version> <prefix>``; the prefix is written as the placeholder, so running
    the installed script shows whether prefix rewriting happened. Pass a mapping to give
    each script its own body instead.
    ``has_prefix`` lists text files holding ``PREFIX_PLACEHOLDER``; None = detect.
    """

    name: str
    version: str
    build: str = "0"
    depends: tuple[str, ...] = ()
    files: Mapping[str, FileContent] = field(default_factory=dict)
    fmt: PackageFormat = "tar.bz2"
    subdir: str = "linux-64"
    has_prefix: tuple[str, ...] | None = None
    executables: tuple[str, ...] | Mapping[str, str] = ()
    build_number: int = 0
    constrains: tuple[str, ...] = ()
    license: str = "BSD-3-Clause"

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}-{self.build}.{self.fmt}"


def write_package(
    channel_dir: Path,
    name: str,
    version: str,
    build: str = "0",
    depends: Iterable[str] = (),
    files: Mapping[str, FileContent] | None = None,
    fmt: PackageFormat = "tar.bz2",
    subdir: str = "linux-64",
    has_prefix: Iterable[str] | None = None,
    executables: Iterable[str] | Mapping[str, str] = (),
    build_number: int = 0,
    constrains: Iterable[str] = (),
    license: str = "BSD-3-Clause",
) -> Path:
    """Write one valid conda package into ``<channel_dir>/<subdir>/`` and return its path.

    The channel still needs indexing (``index_channel``) before clients can see it.
    """
    spec = PackageSpec(
        name=name,
        version=version,
        build=build,
        depends=tuple(depends),
        files=dict(files or {}),
        fmt=fmt,
        subdir=subdir,
        has_prefix=None if has_prefix is None else tuple(has_prefix),
        executables=executables if isinstance(executables, Mapping) else tuple(executables),
        build_number=build_number,
        constrains=tuple(constrains),
        license=license,
    )
    return write_package_spec(channel_dir, spec)


def write_package_spec(channel_dir: Path, spec: PackageSpec) -> Path:
    """``write_package`` taking a ``PackageSpec``."""
    if spec.name != spec.name.lower():
        # rattler rejects upper-case names in index.json; fail here with a clear message.
        raise ValueError(f"conda package names are lowercase: {spec.name!r}")
    payload = _payload(spec)
    info = _info_files(spec, payload)
    out_dir = Path(channel_dir) / spec.subdir
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / spec.file_name
    stem = target.name.removesuffix(f".{spec.fmt}")
    data = _tar_bz2(info | payload, payload) if spec.fmt == "tar.bz2" else _conda(stem, info, payload)
    target.write_bytes(data)
    return target


def _payload(spec: PackageSpec) -> dict[str, bytes]:
    files = {path: _as_bytes(content) for path, content in spec.files.items()}
    scripts = (
        spec.executables
        if isinstance(spec.executables, Mapping)
        else {tool: _default_script(tool, spec.version) for tool in spec.executables}
    )
    for tool, body in scripts.items():
        files[f"bin/{tool}"] = _as_bytes(body)
    for path in files:
        if path.startswith(("/", "info/")) or ".." in Path(path).parts:
            raise ValueError(f"payload path must be relative and outside info/: {path!r}")
    return dict(sorted(files.items()))


def _default_script(tool: str, version: str) -> str:
    return f'#!/bin/sh\necho "{tool} {version} {PREFIX_PLACEHOLDER}"\n'


def _as_bytes(content: FileContent) -> bytes:
    return content.encode() if isinstance(content, str) else content


def _prefix_files(spec: PackageSpec, payload: Mapping[str, bytes]) -> list[str]:
    if spec.has_prefix is not None:
        return sorted(spec.has_prefix)
    marker = PREFIX_PLACEHOLDER.encode()
    return sorted(path for path, data in payload.items() if marker in data)


def _info_files(spec: PackageSpec, payload: Mapping[str, bytes]) -> dict[str, bytes]:
    prefixed = set(_prefix_files(spec, payload))
    index = {
        "arch": None if spec.subdir == "noarch" else _arch(spec.subdir),
        "build": spec.build,
        "build_number": spec.build_number,
        "constrains": list(spec.constrains),
        "depends": list(spec.depends),
        "license": spec.license,
        "name": spec.name,
        "platform": None if spec.subdir == "noarch" else spec.subdir.split("-")[0],
        "subdir": spec.subdir,
        "timestamp": FIXED_TIMESTAMP_MS,
        "version": spec.version,
    }
    if spec.subdir == "noarch":
        index["noarch"] = "generic"
    paths = []
    for path, data in payload.items():
        entry: dict[str, object] = {
            "_path": path,
            "path_type": "hardlink",
            "sha256": hashlib.sha256(data).hexdigest(),
            "size_in_bytes": len(data),
        }
        if path in prefixed:
            entry |= {"file_mode": "text", "prefix_placeholder": PREFIX_PLACEHOLDER}
        paths.append(entry)
    info = {
        "info/index.json": _json(index),
        "info/paths.json": _json({"paths": paths, "paths_version": 1}),
        "info/files": "".join(f"{p}\n" for p in payload).encode(),
    }
    if prefixed:
        lines = "".join(f"{PREFIX_PLACEHOLDER} text {p}\n" for p in sorted(prefixed))
        info["info/has_prefix"] = lines.encode()
    return info


def _arch(subdir: str) -> str:
    arch = subdir.split("-", 1)[1]
    return {"64": "x86_64", "32": "x86"}.get(arch, arch)


def _json(data: object) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True).encode()


def _tar(members: Mapping[str, bytes], executable: Iterable[str] = ()) -> bytes:
    """An uncompressed, deterministic tar of ``members``."""
    modes = {p: 0o755 for p in executable if p.startswith("bin/")}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(members):
            data = members[path]
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = FIXED_MTIME
            info.mode = modes.get(path, 0o644)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _tar_bz2(members: Mapping[str, bytes], payload: Mapping[str, bytes]) -> bytes:
    return bz2.compress(_tar(members, payload), compresslevel=9)


def _conda(stem: str, info: Mapping[str, bytes], payload: Mapping[str, bytes]) -> bytes:
    zstd = zstandard.ZstdCompressor(level=3)
    entries = {
        "metadata.json": _json({"conda_pkg_format_version": 2}),
        f"info-{stem}.tar.zst": zstd.compress(_tar(info)),
        f"pkg-{stem}.tar.zst": zstd.compress(_tar(payload, payload)),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            zinfo = zipfile.ZipInfo(name, date_time=(2023, 11, 14, 22, 13, 20))
            zinfo.external_attr = 0o644 << 16
            zf.writestr(zinfo, data)
    return buf.getvalue()


async def index_channel_async(root: Path) -> Path:
    """(Re)write ``repodata.json`` for every subdir of ``root``; ``noarch/`` always exists."""
    from rattler.index import index_fs  # local: keep importing this module cheap

    root = Path(root)
    (root / "noarch").mkdir(parents=True, exist_ok=True)
    # force: re-read every package, so a rewritten file never keeps a stale record.
    await index_fs(root, write_zst=False, write_shards=False, force=True)
    with contextlib.suppress(OSError):
        (root / ".tmp").rmdir()  # the indexer's empty scratch folder; not part of a channel
    return root


def index_channel(root: Path) -> Path:
    """``index_channel_async`` for synchronous callers (also inside a running loop)."""
    return _run_sync(index_channel_async(root))


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from async code (an async test): a nested asyncio.run is refused, so run
    # the coroutine on a private loop in a helper thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def make_channel(root: Path, packages: Iterable[PackageSpec | Mapping[str, Any]] = ()) -> Path:
    """Write ``packages`` (specs or ``write_package`` keyword dicts) and index ``root``."""
    root = Path(root)
    for pkg in packages:
        if isinstance(pkg, PackageSpec):
            write_package_spec(root, pkg)
        else:
            write_package(root, **pkg)
    return index_channel(root)


# --- HTTP ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    method: str
    path: str
    status: int


class RequestLog:
    """Thread-safe record of what a server answered, to assert mirrors were used."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []

    def add(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    @property
    def entries(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._entries)

    def count(self, path_prefix: str = "/", *, status: int | None = None) -> int:
        return sum(1 for e in self.entries if e.path.startswith(path_prefix) and (status is None or e.status == status))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class ServedURL(str):
    """The base URL of a served folder (no trailing slash), carrying its request log."""

    requests: RequestLog
    delays: dict[str, float]  # part of a file name → seconds to wait before answering it (slow downloads)

    def __new__(cls, url: str, requests: RequestLog, delays: dict[str, float] | None = None) -> ServedURL:
        obj = super().__new__(cls, url)
        obj.requests = requests
        obj.delays = {} if delays is None else delays
        return obj

    def request_count(self, path_prefix: str = "/", *, status: int | None = None) -> int:
        return self.requests.count(path_prefix, status=status)


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET/HEAD of static files with strong ETags.

    Why not SimpleHTTPRequestHandler: it validates with If-Modified-Since at one-second
    resolution, so a channel re-indexed within the same second is answered 304 with
    stale content. Here the ETag is the content's sha256 and If-Modified-Since is
    ignored (servers may ignore it; clients that cache send If-None-Match too).
    """

    root: Path
    log: RequestLog
    delays: dict[str, float]
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _serve(self, *, body: bool) -> None:
        path = self._resolve()
        if path is None or not path.is_file():
            self._answer(404, b"not found\n", body=body)
            return
        # Hash on every request: a (size, mtime) cache key goes stale when a file is
        # rewritten within the kernel's timestamp granularity. Test files are small.
        for part, seconds in list(self.delays.items()):
            if part in path.name:
                time.sleep(seconds)
        data = path.read_bytes()
        etag = f'"{hashlib.sha256(data).hexdigest()}"'
        mtime = path.stat().st_mtime
        if etag in _parse_if_none_match(self.headers.get("If-None-Match")):
            self._answer(304, b"", body=False, etag=etag, mtime=mtime)
            return
        self._answer(200, data, body=body, etag=etag, mtime=mtime)

    def _resolve(self) -> Path | None:
        rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        candidate = (self.root / rel).resolve()
        return candidate if candidate.is_relative_to(self.root) else None

    def _answer(
        self,
        status: int,
        data: bytes,
        *,
        body: bool,
        etag: str | None = None,
        mtime: float | None = None,
    ) -> None:
        self.log.add(LoggedRequest(self.command, self.path, status))
        self.send_response(status)
        if etag:
            self.send_header("ETag", etag)
            self.send_header("Cache-Control", "no-cache")
        if mtime is not None:
            self.send_header("Last-Modified", email.utils.formatdate(mtime, usegmt=True))
        content_type = "application/json" if self.path.endswith(".json") else "application/octet-stream"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the RequestLog is the record; stderr noise helps nobody


def _parse_if_none_match(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


@contextlib.contextmanager
def serve_directory(path: Path) -> Iterator[ServedURL]:
    """Serve ``path`` on ``127.0.0.1:<free port>`` until the block exits.

    Yields the base URL without trailing slash (a ``ServedURL``: a ``str`` whose
    ``.requests`` log records every answered request).
    """
    root = Path(path).resolve()
    log = RequestLog()
    delays: dict[str, float] = {}
    handler = type("ChannelHandler", (_Handler,), {"root": root, "log": log, "delays": delays})
    with serve_http(handler, name=f"serve:{root.name}") as url:
        yield ServedURL(url, log, delays)


def closed_port_url() -> str:
    """An http URL on loopback where nothing listens (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
