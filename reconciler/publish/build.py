"""Publishing one build: conda-pack tarball, OCI image, push with tags and artifacts.

``publish_build`` is what the runner's ``publish`` step calls after ``link``. It returns
the files it wrote into the build's artifacts folder as ``(kind, path)`` pairs, which the
runner records like the lockfiles (so they show in ``condaops status --json``):

* ``conda-pack``   — ``<name>.tar.zst`` (or ``.tar.gz``), byte-identical for the same lock;
* ``image``        — ``image.json``: repository, manifest digest, config digest (the image
  ID), tags and layers with the packages each holds.

The image's ``org.opencontainers.image.created`` is the newest package timestamp of the
lock (what reproducible builds use as ``SOURCE_DATE_EPOCH``), not the wall clock: the
manifest digest is then a function of the lock, the source URL and revision, and the
config and layer digests of the lock alone.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from condaops.config.settings import PublishSettings, SourceSettings
from condaops.reconciler.build.lock import redact_url
from condaops.reconciler.errors import BuildError, TransientError
from condaops.reconciler.model import EnvRef
from condaops.reconciler.publish.image import (
    Image,
    copy_unowned,
    image_architecture,
    image_config,
    image_manifest,
    sha256_digest,
    stage_prefix,
    write_layers,
)
from condaops.reconciler.publish.naming import build_tags, image_annotations, repository_name
from condaops.reconciler.publish.pack import PACK_KIND, pack_file_name, pack_prefix
from condaops.reconciler.publish.push import LOCKFILES_ARTIFACT, PACK_ARTIFACT, Pushed, push_artifact, push_image
from condaops.registry.api import Registry

IMAGE_KIND, IMAGE_FILE = "image", "image.json"
RunAsync = Callable[[Callable[[], Coroutine[Any, Any, None]]], None]
_LOG = logging.getLogger("condaops.publish")


@dataclass(frozen=True)
class PublishRequest:
    """Everything publishing one build needs, as plain data."""

    ref: EnvRef
    build_id: int
    spec_hash: str
    prefix: Path
    artifacts_dir: Path
    work_dir: Path
    platform: str
    records: Sequence[Any]
    requested_specs: Sequence[str] = ()
    variables: Sequence[tuple[str, str]] = ()
    lockfiles: Sequence[Path] = ()
    linked: bool = False
    revision: str | None = None
    source_url: str | None = None
    cache_dir: Path = Path(".cache/pkgs")
    client: Any = None
    popularity: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BuiltImage:
    """An image written to the work folder, not yet pushed."""

    image: Image
    name: str
    tags: tuple[str, ...]


class PublishError(BuildError, TransientError):
    """Writing a tarball, layer or record failed on disk (full, permissions)."""

    reason = "PublishFailed"


def publish_build(
    req: PublishRequest, settings: PublishSettings, *, open_registry: Callable[[], Registry], run_async: RunAsync,
    log: logging.Logger = _LOG,
) -> list[tuple[str, Path]]:  # fmt: skip
    """Pack, build and push as ``settings`` ask; return the artifact files written.

    Raises ``CondaopsError`` subtypes only (disk errors become ``PublishError``)."""
    try:
        return _publish(req, settings, open_registry, run_async, log)
    except OSError as exc:
        raise PublishError(f"{req.ref}: publishing build {req.build_id} failed: {exc}") from exc


def _publish(
    req: PublishRequest, settings: PublishSettings, open_registry: Callable[[], Registry], run_async: RunAsync,
    log: logging.Logger,
) -> list[tuple[str, Path]]:  # fmt: skip
    files: list[tuple[str, Path]] = []
    pack = None
    if settings.pack:
        started = time.monotonic()
        pack = pack_prefix(req.prefix, req.artifacts_dir / pack_file_name(req.ref.name, settings.pack_format),
                           fmt=settings.pack_format)  # fmt: skip
        files.append((PACK_KIND, pack.path))
        log.info("packed file=%s bytes=%d seconds=%.3f", pack.path.name, pack.size, time.monotonic() - started)
    if not settings.image or image_architecture(req.platform) is None:
        return files
    try:
        started = time.monotonic()
        built = build_image(req, settings, run_async)
        log.info("image_built layers=%d bytes=%d seconds=%.3f", len(built.image.layers),
                 sum(layer.size for layer in built.image.layers), time.monotonic() - started)  # fmt: skip
        pushed = None
        if settings.push:
            started = time.monotonic()
            registry = open_registry()
            try:
                pushed = push_build(registry, built, req, pack.path if pack else None)
            finally:
                registry.close()
            log.info("pushed repository=%s tags=%s seconds=%.3f", built.name, ",".join(built.tags),
                     time.monotonic() - started)  # fmt: skip
        files.append((IMAGE_KIND, write_image_record(req.artifacts_dir / IMAGE_FILE, built, pushed)))
    finally:
        shutil.rmtree(req.work_dir, ignore_errors=True)
    return files


def build_image(req: PublishRequest, settings: PublishSettings, run_async: RunAsync) -> BuiltImage:
    """Stage the environment at ``settings.image_prefix`` and write its layers."""
    staging = req.work_dir / "root"
    run_async(lambda: stage_prefix(req.records, staging, settings.image_prefix, cache_dir=req.cache_dir,
                                   client=req.client, requested_specs=req.requested_specs))  # fmt: skip
    copy_unowned(req.prefix, staging, settings.image_prefix)
    layers = write_layers(staging, settings.image_prefix, req.work_dir / "layers", budget=settings.layer_budget,
                          popularity=req.popularity)  # fmt: skip
    config = image_config(layers, image_prefix=settings.image_prefix,
                          architecture=image_architecture(req.platform) or "", variables=req.variables)  # fmt: skip
    annotations = image_annotations(spec_hash=req.spec_hash, created=created_time(req.records),
                                    source_url=req.source_url, revision=req.revision)  # fmt: skip
    image = Image(tuple(layers), config, image_manifest(layers, config, annotations))
    tags = build_tags(build_id=req.build_id, spec_hash=req.spec_hash, revision=req.revision, linked=req.linked)
    return BuiltImage(image, repository_name(req.ref), tuple(tags))


def push_build(registry: Registry, built: BuiltImage, req: PublishRequest, pack: Path | None) -> Pushed:
    """Push the image with its tags, then the lockfiles and the tarball attached to it."""
    image = push_image(registry, built.name, built.image, built.tags)
    artifacts = []
    if req.lockfiles:
        artifacts.append(push_artifact(registry, built.name, list(req.lockfiles), artifact_type=LOCKFILES_ARTIFACT,
                                       subject=image))  # fmt: skip
    if pack is not None:
        artifacts.append(push_artifact(registry, built.name, [pack], artifact_type=PACK_ARTIFACT, subject=image))
    return Pushed(built.name, image, built.tags, tuple(artifacts))


def created_time(records: Sequence[Any]) -> str:
    """The newest package timestamp as RFC 3339 UTC (the epoch when none has one)."""
    stamps = [r.timestamp for r in records if getattr(r, "timestamp", None) is not None]
    newest = max(stamps, default=datetime.fromtimestamp(0, UTC))
    return newest.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_image_record(path: Path, built: BuiltImage, pushed: Pushed | None) -> Path:
    """``image.json`` in the artifacts folder: what was built and where it went."""
    record = {
        "repository": built.name,
        "manifest_digest": sha256_digest(built.image.manifest),
        "config_digest": sha256_digest(built.image.config),
        "tags": list(built.tags),
        "pushed": pushed is not None,
        "artifacts": [a.digest for a in pushed.artifacts] if pushed else [],
        "layers": [{"digest": layer.digest, "size": layer.size, "packages": list(layer.packages)}
                   for layer in built.image.layers],
    }  # fmt: skip
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def source_url(sources: Sequence[SourceSettings], name: str | None) -> str | None:
    """``org.opencontainers.image.source``: the Git URL without credentials, or the
    directory as a ``file://`` URL; None for an unknown source."""
    for source in sources:
        if source.name != name:
            continue
        if source.git:
            return redact_url(source.git) if "://" in source.git else Path(source.git).absolute().as_uri()
        if source.directory:
            return Path(source.directory).absolute().as_uri()
    return None
