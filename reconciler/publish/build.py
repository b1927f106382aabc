"""Publishing one build: conda-pack tarball, OCI image, pushes with tags and artifacts.

``publish_build`` is what the publish job (``job.PublishJob``) calls for a linked build: it
runs the build's outputs (``outputs.run_outputs``; ``default_outputs`` lists them) and
returns the files they wrote into the build's artifacts folder as ``(kind, path)`` pairs,
recorded like the lockfiles (so they show in ``condaops status --json``), and the problems
they met, one line each (a target that refused a push does not stop the others):

* ``conda-pack``   — ``<name>.tar.zst`` (or ``.tar.gz``), byte-identical for the same lock;
* ``squashfs``     — ``<name>.sqsh`` with ``publish.squashfs`` (``squashfs.py``), likewise;
* ``sbom``         — ``sbom.cdx.json``: a CycloneDX SBOM, attached to the image (``sbom.py``);
* ``image``        — ``image.json``: repository, manifest digest, config digest (the image
  ID), tags, layers with the packages each holds, the base image, whether the image's
  programs can run on it (``runnable``, and why not), and per push target the repository
  and the attached artifacts by type;
* ``signatures``   — ``signatures.json``: the cosign signatures of every pushed manifest
  (``signing.py``), when ``publish.signing.key_file`` is set.

The image itself is assembled by ``assemble.build_image`` (also used by dynamic images);
an image that cannot run is still pushed (it holds the environment) but recorded as
such, and the publish outcome names it (``ImageNotRunnable``).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from condaops.config.settings import Settings, SourceSettings
from condaops.reconciler.build.disk import DiskFullError, is_disk_full
from condaops.reconciler.errors import BuildError, CondaopsError, TransientError
from condaops.reconciler.lockread import redact_url
from condaops.reconciler.model import EnvRef
from condaops.reconciler.publish.assemble import IMAGE_NOT_RUNNABLE, BuiltImage, build_image, created_time
from condaops.reconciler.publish.base import SCRATCH, choose_base
from condaops.reconciler.publish.image import image_architecture, sha256_digest
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
from condaops.reconciler.publish.targets import BuiltinTarget, Target
from condaops.reconciler.reasons import Reason

IMAGE_KIND, IMAGE_FILE = "image", "image.json"
__all__ = ["BuiltImage", "PublishRequest", "build_image", "created_time", "publish_build"]
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
    popularity: Mapping[str, int] = field(default_factory=dict)
    base_cache: Path = Path(".cache/base-images")
    version: str = ""  # org.opencontainers.image.version; default build-<build_id>


class PublishError(BuildError, TransientError):
    """Writing a tarball, layer or record failed on disk (full, permissions)."""

    reason = Reason.PUBLISH_FAILED


def default_outputs() -> tuple[Output, ...]:
    """The outputs of every build, in the order they run: files first, then the image,
    which pushes them as its attachments, then the signatures of what it pushed."""
    from condaops.reconciler.publish.sbom import SbomOutput  # cyclonedx: only where builds are published
    from condaops.reconciler.publish.signing import SignatureOutput

    return (PackOutput(), SquashfsOutput(), SbomOutput(), ImageOutput(), SignatureOutput())


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
        error = DiskFullError if is_disk_full(exc) else PublishError
        raise error(f"{req.ref}: publishing build {req.build_id} failed: {exc}") from exc
    finally:
        shutil.rmtree(req.work_dir, ignore_errors=True)


class PackOutput:
    """The conda-pack tarball, attached to the image."""

    kind = PACK_KIND

    def wanted(self, settings: Settings) -> bool:
        return settings.publish.pack

    def run(self, ctx: OutputContext) -> OutputResult:
        """Written in the background: the image's layers are written meanwhile."""
        req, fmt = ctx.req, ctx.settings.publish.pack_format
        path = req.artifacts_dir / pack_file_name(req.ref.name, fmt)

        def write() -> None:
            started = time.monotonic()
            pack = pack_prefix(req.prefix, path, fmt=fmt)
            ctx.log.info("packed file=%s bytes=%d seconds=%.3f", path.name, pack.size, time.monotonic() - started)

        return OutputResult(
            files=[(PACK_KIND, path)], attachments=[Attachment(PACK_ARTIFACT, (path,))], pending=ctx.background(write)
        )


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
        base = choose_base(publish, req.base_cache, architecture, ctx.settings.registry.push)
        built = build_image(req, publish, base)
        ctx.log.info(
            "image_built layers=%d bytes=%d base=%s runnable=%s seconds=%.3f",
            len(built.image.layers),
            sum(layer.size for layer in built.image.layers),
            base.reference if base else SCRATCH,
            built.not_runnable is None,
            time.monotonic() - started,
        )
        result = OutputResult()
        if built.not_runnable and publish.image_base != SCRATCH:
            result.problems.append(
                f"{IMAGE_NOT_RUNNABLE}: {req.ref}: {built.not_runnable}; choose a base that has the C library the "
                "packages need with publish.image_base (see docs/images.md)"
            )
        for script in built.skipped_scripts:
            ctx.log.warning("activation_script_skipped script=%s", script)
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
    types = tuple(a.artifact_type for a in attachments)
    return Pushed(name, image, built.tags, artifacts, target.name, types, isinstance(target, BuiltinTarget))


def write_image_record(path: Path, built: BuiltImage, pushed: Sequence[Pushed]) -> Path:
    """``image.json`` in the artifacts folder: what was built and where it went
    (``targets``: per target name, the repository, the attached artifacts and the same by
    artifact type), and whether it can run (``runnable``, ``not_runnable``: why not)."""
    first = pushed[0] if pushed else None
    base = built.base
    record = {
        "repository": built.name,
        "manifest_digest": sha256_digest(built.image.manifest),
        "config_digest": sha256_digest(built.image.config),
        "tags": list(built.tags),
        "pushed": bool(pushed),
        "runnable": built.not_runnable is None,
        "not_runnable": built.not_runnable,
        "activation_skipped": list(built.skipped_scripts),
        "artifacts": [a.digest for a in first.artifacts] if first else [],
        "base": {
            "reference": base.reference,
            "digest": base.digest or None,
            "description": base.description,
            "glibc": base.libc.glibc if base.libc else None,
            "packages": base.packages,
        }
        if base
        else None,
        "targets": {
            p.target: {
                "repository": p.name,
                "artifacts": [a.digest for a in p.artifacts],
                "by_type": dict(zip(p.artifact_types, (a.digest for a in p.artifacts), strict=True)),
                "builtin": p.builtin,
            }
            for p in pushed
        },
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
