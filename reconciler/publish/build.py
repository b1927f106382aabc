"""Publishing one build: conda-pack tarball, OCI image, pushes with tags and artifacts.

``publish_build`` is what the publish job (``job.PublishJob``) calls for a linked build: it
runs the build's outputs (``outputs.run_outputs``; ``default_outputs`` lists them) and
returns the files they wrote into the build's artifacts folder as ``(kind, path)`` pairs,
recorded like the lockfiles (so they show in ``condaops status --json``), and the problems
they met, one line each (a target that refused a push does not stop the others):

* ``conda-pack``   — ``<name>.tar.zst`` (or ``.tar.gz``), byte-identical for the same lock;
* ``squashfs``     — ``<name>.sqsh`` with ``publish.squashfs`` (``squashfs.py``), likewise;
* ``image``        — ``image.json``: repository, manifest digest, config digest (the image
  ID), tags, layers with the packages each holds, the base image, and per push target the
  repository and the attached artifacts.

The image's ``org.opencontainers.image.created`` is the newest package timestamp of the
lock (what reproducible builds use as ``SOURCE_DATE_EPOCH``), not the wall clock: the
manifest digest is then a function of the lock, the source URL and revision (and the base
image), and the config and layer digests of the lock alone.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from condaops.config.settings import PublishSettings, Settings, SourceSettings
from condaops.reconciler.build.lock import redact_url
from condaops.reconciler.errors import BuildError, CondaopsError, TransientError
from condaops.reconciler.model import EnvRef
from condaops.reconciler.publish.base import BaseImage, fetch_base
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
from condaops.reconciler.publish.outputs import (
    Attachment,
    Output,
    OutputContext,
    OutputResult,
    Published,
    RunAsync,
    run_outputs,
)
from condaops.reconciler.publish.pack import PACK_KIND, pack_file_name, pack_prefix
from condaops.reconciler.publish.push import LOCKFILES_ARTIFACT, PACK_ARTIFACT, Pushed, push_artifact, push_image
from condaops.reconciler.publish.squashfs import SquashfsOutput
from condaops.reconciler.publish.targets import Target

IMAGE_KIND, IMAGE_FILE = "image", "image.json"
BASE_NAME, BASE_DIGEST = "org.opencontainers.image.base.name", "org.opencontainers.image.base.digest"
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
    base_cache: Path = Path(".cache/base-images")


@dataclass(frozen=True)
class BuiltImage:
    """An image written to the work folder, not yet pushed."""

    image: Image
    name: str
    tags: tuple[str, ...]
    base: BaseImage | None = None


class PublishError(BuildError, TransientError):
    """Writing a tarball, layer or record failed on disk (full, permissions)."""

    reason = "PublishFailed"


def default_outputs() -> tuple[Output, ...]:
    """The outputs of every build, in the order they run: files first, then the image,
    which pushes them as its attachments."""
    return (PackOutput(), SquashfsOutput(), ImageOutput())


def publish_build(
    req: PublishRequest,
    settings: Settings,
    *,
    open_targets: Callable[[], Sequence[Target]],
    run_async: RunAsync,
    log: logging.Logger = _LOG,
    outputs: Sequence[Output] | None = None,
) -> Published:
    """Run the outputs ``settings.publish`` asks for, pushing to each target ``open_targets``
    gives. A failed output or target is a problem in the result; raises nothing but
    ``CondaopsError`` subtypes (disk errors become ``PublishError``)."""
    ctx = OutputContext(req, settings, run_async, open_targets, log)
    try:
        return run_outputs(default_outputs() if outputs is None else outputs, ctx)
    except OSError as exc:
        raise PublishError(f"{req.ref}: publishing build {req.build_id} failed: {exc}") from exc
    finally:
        shutil.rmtree(req.work_dir, ignore_errors=True)


class PackOutput:
    """The conda-pack tarball, attached to the image."""

    kind = PACK_KIND

    def wanted(self, settings: Settings) -> bool:
        return settings.publish.pack

    def run(self, ctx: OutputContext) -> OutputResult:
        req, fmt = ctx.req, ctx.settings.publish.pack_format
        started = time.monotonic()
        pack = pack_prefix(req.prefix, req.artifacts_dir / pack_file_name(req.ref.name, fmt), fmt=fmt)
        ctx.log.info("packed file=%s bytes=%d seconds=%.3f", pack.path.name, pack.size, time.monotonic() - started)
        return OutputResult(files=[(PACK_KIND, pack.path)], attachments=[Attachment(PACK_ARTIFACT, (pack.path,))])


class ImageOutput:
    """The OCI image (on the configured base), pushed to every target with the lockfiles
    and the earlier outputs' attachments as referrers; ``image.json`` records where."""

    kind = IMAGE_KIND

    def wanted(self, settings: Settings) -> bool:
        return settings.publish.image

    def run(self, ctx: OutputContext) -> OutputResult:
        req, publish = ctx.req, ctx.settings.publish
        architecture = image_architecture(req.platform)
        if architecture is None:
            return OutputResult()  # no OCI architecture for this platform: nothing to build
        started = time.monotonic()
        base = (
            fetch_base(publish.image_base, req.base_cache, architecture, ctx.settings.registry.push)
            if publish.image_base
            else None
        )
        built = build_image(req, publish, ctx.run_async, base)
        ctx.log.info(
            "image_built layers=%d bytes=%d base=%s seconds=%.3f",
            len(built.image.layers),
            sum(layer.size for layer in built.image.layers),
            publish.image_base or "none",
            time.monotonic() - started,
        )
        result = OutputResult()
        attachments = ([Attachment(LOCKFILES_ARTIFACT, tuple(req.lockfiles))] if req.lockfiles else []) + [
            a for a in ctx.attachments if a.files
        ]
        pushed = (
            push_to_targets(ctx.open_targets(), built, attachments, ctx.log, result.problems) if publish.push else []
        )
        result.files.append((IMAGE_KIND, write_image_record(req.artifacts_dir / IMAGE_FILE, built, pushed)))
        result.data.update(built=built, pushed=pushed)
        return result


def push_to_targets(
    targets: Sequence[Target],
    built: BuiltImage,
    attachments: Sequence[Attachment],
    log: logging.Logger,
    problems: list[str],
) -> list[Pushed]:
    """Push to each target in turn; one that fails is a problem, the others still get the build."""
    pushed = []
    for target in targets:
        started = time.monotonic()
        try:
            pushed.append(push_build(target, built, attachments))
            log.info(
                "pushed target=%s repository=%s tags=%s seconds=%.3f",
                target.name,
                target.repository(built.name),
                ",".join(built.tags),
                time.monotonic() - started,
            )
        except CondaopsError as exc:
            log.warning("push_failed target=%s reason=%s %s", target.name, exc.reason, exc.message)
            problems.append(f"{exc.reason}: {exc.message}")
        finally:
            target.close()
    return pushed


def build_image(
    req: PublishRequest, settings: PublishSettings, run_async: RunAsync, base: BaseImage | None = None
) -> BuiltImage:
    """Stage the environment at ``settings.image_prefix`` and write its layers (on ``base``)."""
    staging = req.work_dir / "root"
    run_async(
        lambda: stage_prefix(
            req.records,
            staging,
            settings.image_prefix,
            cache_dir=req.cache_dir,
            client=req.client,
            requested_specs=req.requested_specs,
        )
    )
    copy_unowned(req.prefix, staging, settings.image_prefix)
    layers = write_layers(
        staging, settings.image_prefix, req.work_dir / "layers", budget=settings.layer_budget, popularity=req.popularity
    )
    config = image_config(
        layers,
        image_prefix=settings.image_prefix,
        architecture=image_architecture(req.platform) or "",
        variables=req.variables,
        base=base.config if base else None,
    )
    annotations = dict(
        image_annotations(
            spec_hash=req.spec_hash, created=created_time(req.records), source_url=req.source_url, revision=req.revision
        )
    )
    if base is not None:
        annotations |= {BASE_NAME: base.reference, BASE_DIGEST: base.digest}
    every = (*base.layers, *layers) if base else tuple(layers)
    image = Image(every, config, image_manifest(every, config, annotations))
    tags = build_tags(build_id=req.build_id, spec_hash=req.spec_hash, revision=req.revision, linked=req.linked)
    return BuiltImage(image, repository_name(req.ref), tuple(tags), base)


def push_build(target: Target, built: BuiltImage, attachments: Sequence[Attachment]) -> Pushed:
    """Push the image with its tags, then each attachment as an artifact referring to it."""
    name = target.repository(built.name)
    image = push_image(target, name, built.image, built.tags)
    artifacts = tuple(
        push_artifact(
            target,
            name,
            list(a.files),
            artifact_type=a.artifact_type,
            subject=image,
            annotations=a.annotations or None,
        )
        for a in attachments
    )
    return Pushed(name, image, built.tags, artifacts, target.name)


def created_time(records: Sequence[Any]) -> str:
    """The newest package timestamp as RFC 3339 UTC (the epoch when none has one)."""
    stamps = [r.timestamp for r in records if getattr(r, "timestamp", None) is not None]
    newest = max(stamps, default=datetime.fromtimestamp(0, UTC))
    return newest.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_image_record(path: Path, built: BuiltImage, pushed: Sequence[Pushed]) -> Path:
    """``image.json`` in the artifacts folder: what was built and where it went
    (``targets``: per target name, the repository and the attached artifacts)."""
    first = pushed[0] if pushed else None
    record = {
        "repository": built.name,
        "manifest_digest": sha256_digest(built.image.manifest),
        "config_digest": sha256_digest(built.image.config),
        "tags": list(built.tags),
        "pushed": bool(pushed),
        "artifacts": [a.digest for a in first.artifacts] if first else [],
        "base": {"reference": built.base.reference, "digest": built.base.digest} if built.base else None,
        "targets": {p.target: {"repository": p.name, "artifacts": [a.digest for a in p.artifacts]} for p in pushed},
        "layers": [
            {"digest": layer.digest, "size": layer.size, "packages": list(layer.packages)}
            for layer in built.image.layers
        ],
    }
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def read_image_record(path: Path) -> dict[str, Any] | None:
    """``image.json`` as written by ``write_image_record``; None if missing or unreadable."""
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


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
