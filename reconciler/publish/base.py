"""The base image of published and dynamic images (``publish.image_base``).

``image_base`` picks it: unset, the built-in base (``hostbase``: this host's C library,
nothing pulled); ``scratch``, none (the environment alone); otherwise an image in any
registry, which ``fetch_base`` fetches and caches by digest:

``fetch_base`` resolves the reference (a multi-platform index is narrowed to the build's
architecture), then downloads each blob the cache lacks. The cache lives under the store::

    <store>/.cache/base-images/blobs/sha256/<hex>   layers and configs (digest-checked)
    <store>/.cache/base-images/manifests/<hex>      manifests by digest

so a base is copied in once: later publishes cost one manifest request for a tag, none
for a reference by digest (``...@sha256:<hex>``), and no layer download either way.
Builds that share a base share its layers in every registry they are pushed to.

Whether the environment's programs can run on a fetched base is checked against the C
library found in its layers (``base_libc``: the glibc banner of ``libc.so.6`` and the
program loader), read once per base digest and cached beside its manifest.

The registry is reached with oras-py like a push target: with the credentials and
``insecure`` flag of the ``registry.push`` target on the same host if there is one, else
anonymously, over plain HTTP for loopback hosts and HTTPS otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import zstandard

from condaops.config.settings import PublishSettings, PushTargetSettings, Settings
from condaops.reconciler.errors import BuildError, StalledError
from condaops.reconciler.publish.glibc import LOADERS, BaseLibc, is_libc_name, libc_version
from condaops.reconciler.publish.hostbase import NoHostLibc, host_base
from condaops.reconciler.publish.image import LAYER_FORMATS, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, Layer, image_architecture
from condaops.reconciler.publish.targets import OrasTarget
from condaops.reconciler.reasons import Reason

DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
_LAYER_TYPES = {
    DOCKER_LAYER_GZIP: OCI_LAYER_GZIP,
    OCI_LAYER_GZIP: OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD: OCI_LAYER_ZSTD,
    OCI_LAYER_TAR: OCI_LAYER_TAR,
}
_INDEXES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
_REFERENCE = re.compile(r"(?P<host>[^/]+)/(?P<repo>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?")
_LOOPBACK = ("127.", "localhost", "[::1]")
SCRATCH = "scratch"
BASE_CACHE = Path(".cache/base-images")  # under the store
LIBC_SCAN_LIMIT = 64 * 1024 * 1024  # a libc.so.6 larger than this is not read


class BaseImageError(BuildError, StalledError):
    """The base image cannot be used (unknown, wrong architecture, unsupported layers)."""

    reason = Reason.BASE_IMAGE_UNUSABLE


@dataclass(frozen=True, slots=True)
class BaseImage:
    """A fetched base: its layers (files in the cache), its config JSON and where it came from."""

    reference: str  # the image reference, or "builtin"
    digest: str  # of the (platform) manifest; "" for the built-in base
    layers: tuple[Layer, ...]
    config: dict[str, Any]
    libc: BaseLibc | None = None  # what it offers conda programs (None: not known)
    description: str = ""  # for people: which base, from where
    packages: dict[str, str] = field(default_factory=dict)  # built-in: host package -> version


def base_for(settings: Settings, store_root: Path, platform: str) -> BaseImage | None:
    """The base of images of conda ``platform`` (published and dynamic alike), cached
    under ``<store>/.cache/base-images``."""
    architecture = image_architecture(platform) or ""
    return choose_base(settings.publish, store_root / BASE_CACHE, architecture, settings.registry.push)


def choose_base(
    publish: PublishSettings, cache: Path, architecture: str, targets: tuple[PushTargetSettings, ...] = ()
) -> BaseImage | None:
    """The base ``publish.image_base`` asks for (see module doc); None for ``scratch``.
    Without a built-in base for ``architecture`` on this host: an empty base whose
    ``libc.missing`` says why (the image is then reported as not runnable)."""
    if publish.image_base == SCRATCH:
        return None
    layer_format = LAYER_FORMATS[publish.layer_compression]
    if publish.image_base is None:
        try:
            found = host_base(cache, architecture, layer_format)
        except NoHostLibc as exc:  # the image is built without a base and reported as not runnable
            missing = f"there is no built-in base: {exc}; set publish.image_base to a {architecture} image with glibc"
            return BaseImage("builtin", "", (), {}, BaseLibc("builtin", None, False, missing), str(exc))
        return BaseImage("builtin", "", (found.layer,), found.config, found.libc, found.description, found.packages)
    base = fetch_base(publish.image_base, cache, architecture, targets)
    libc = base_libc(base, architecture, cache)
    return BaseImage(base.reference, base.digest, base.layers, base.config, libc, base.reference)


def fetch_base(
    reference: str, cache: Path, architecture: str, targets: tuple[PushTargetSettings, ...] = ()
) -> BaseImage:
    """The base image ``reference`` for ``architecture``, its blobs in ``cache``."""
    match = _REFERENCE.fullmatch(reference)
    if match is None:
        raise BaseImageError(f"publish.image_base '{reference}' is not a full image reference")
    host, repo = match["host"], match["repo"]
    source = OrasTarget(_settings_for(host, targets))
    try:
        body, digest = _manifest(source, cache, repo, match["digest"] or match["tag"] or "latest", reference)
        manifest = json.loads(body)
        if manifest.get("mediaType") in _INDEXES or "manifests" in manifest:
            body, digest = _manifest(
                source, cache, repo, _platform_digest(manifest, architecture, reference), reference
            )
            manifest = json.loads(body)
        config_file = _blob(source, cache, repo, manifest["config"]["digest"])
        config = json.loads(config_file.read_bytes())
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if config.get("architecture") not in (None, architecture):
            raise BaseImageError(
                f"publish.image_base '{reference}' is for {config.get('architecture')}, "
                f"not {architecture}; use a {architecture} or multi-platform image"
            )
        if len(diff_ids) != len(manifest.get("layers") or []):
            raise BaseImageError(
                f"publish.image_base '{reference}': its config lists {len(diff_ids)} layers, "
                f"its manifest {len(manifest.get('layers') or [])}"
            )
        layers = tuple(
            _layer(source, cache, repo, d, diff_id, reference)
            for d, diff_id in zip(manifest["layers"], diff_ids, strict=True)
        )
    finally:
        source.close()
    return BaseImage(reference, digest, layers, config)


def _settings_for(host: str, targets: tuple[PushTargetSettings, ...]) -> PushTargetSettings:
    for target in targets:
        if target.url and (target.url.split("://", 1)[-1].rstrip("/") == host):
            return target
    return PushTargetSettings(name="image_base", url=host, insecure=host.startswith(_LOOPBACK))


def _manifest(source: OrasTarget, cache: Path, repo: str, ref: str, reference: str) -> tuple[bytes, str]:
    """A manifest's bytes and digest; by digest from the cache when it is there."""
    if ref.startswith("sha256:"):
        cached = cache / "manifests" / ref.removeprefix("sha256:")
        if cached.is_file():
            return cached.read_bytes(), ref
    found = source.get_manifest(repo, ref)
    if found is None:
        raise BaseImageError(
            f"publish.image_base '{reference}' does not exist ({ref} is not in {repo}); fix the "
            "reference or push the base image"
        )
    body = found[0]
    digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
    if ref.startswith("sha256:") and digest != ref:
        raise BaseImageError(
            f"publish.image_base '{reference}': the registry sent a manifest whose digest is {digest}, not {ref}"
        )
    _write_atomic(cache / "manifests" / digest.removeprefix("sha256:"), body)
    return body, digest


def _platform_digest(index: dict[str, Any], architecture: str, reference: str) -> str:
    for entry in index.get("manifests") or []:
        platform = entry.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == architecture:
            return str(entry["digest"])
    raise BaseImageError(f"publish.image_base '{reference}' has no linux/{architecture} image")


def _layer(
    source: OrasTarget, cache: Path, repo: str, descriptor: dict[str, Any], diff_id: str, reference: str
) -> Layer:
    media_type = _LAYER_TYPES.get(descriptor.get("mediaType", ""))
    if media_type is None or descriptor.get("urls"):
        raise BaseImageError(
            f"publish.image_base '{reference}' has a layer of type {descriptor.get('mediaType')} "
            "that cannot be copied (foreign or unknown); use another base"
        )
    path = _blob(source, cache, repo, descriptor["digest"])
    return Layer(path, descriptor["digest"], path.stat().st_size, diff_id, (), media_type)


def _blob(source: OrasTarget, cache: Path, repo: str, digest: str) -> Path:
    """The cached blob, downloaded (and its digest checked) if the cache lacks it."""
    path = cache / "blobs" / "sha256" / digest.removeprefix("sha256:")
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out:
            got = source.fetch_blob(repo, digest, out)
        if got != digest:
            raise BaseImageError(f"publish.image_base: blob {digest} of {repo} arrived with digest {got}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def base_libc(base: BaseImage, architecture: str, cache: Path) -> BaseLibc:
    """The C library in ``base``'s layers (cached by its digest): the glibc version of the
    last ``libc.so.6`` found, and whether the program loader is there."""
    facts = cache / "libc" / f"{base.digest.removeprefix('sha256:')}-{architecture}.json"
    try:
        found = json.loads(facts.read_text())
        return BaseLibc(base.reference, found["glibc"], found["loader"])
    except (OSError, ValueError, KeyError):
        pass
    glibc, loader = None, False
    for layer in base.layers:
        for member, read in _members(layer):
            if member.name.lstrip("./") == LOADERS.get(architecture) and not member.isdir():
                loader = True
            elif is_libc_name(member.name) and member.isfile() and member.size <= LIBC_SCAN_LIMIT:
                glibc = libc_version(read()) or glibc
    _write_atomic(facts, json.dumps({"glibc": glibc, "loader": loader}).encode())
    return BaseLibc(base.reference, glibc, loader)


def _members(layer: Layer) -> Iterator[tuple[tarfile.TarInfo, Any]]:
    """The members of a layer blob (gzip, zstd or plain tar) with a reader for each."""
    with open(layer.file, "rb") as raw:
        stream: IO[bytes] | zstandard.ZstdDecompressionReader = raw
        if layer.media_type == OCI_LAYER_ZSTD:
            stream = zstandard.ZstdDecompressor().stream_reader(raw)
        mode: Literal["r|gz", "r|"] = "r|gz" if layer.media_type == OCI_LAYER_GZIP else "r|"
        with tarfile.open(fileobj=stream, mode=mode) as tar:
            for member in tar:
                yield member, lambda m=member: (tar.extractfile(m) or _EMPTY).read()


class _Empty:
    @staticmethod
    def read() -> bytes:
        return b""


_EMPTY = _Empty()
