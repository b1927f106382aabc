"""Assembling one build's image: its base, its relocated layers, the activated environment,
the OCI labels and annotations, and whether its programs can run.

Shared by published builds (``build.ImageOutput``) and dynamic images, so that both get the
same base (``base.choose_base``) and the same checks. The image's identity:

* layers — functions of the installed prefix (``image.write_layers``);
* config — the base's config, the activated environment (``activation``) and the labels;
* labels and manifest annotations — ``naming.image_labels``: title, description, version,
  source, revision and ``created``, which is the newest package timestamp of the lock (what
  reproducible builds use as ``SOURCE_DATE_EPOCH``), not the wall clock.

So the same lock, base and labels give the same image digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from condaops.config.settings import PublishSettings
from condaops.reconciler.publish.activation import activation
from condaops.reconciler.publish.base import BaseImage
from condaops.reconciler.publish.glibc import glibc_requirements, image_problem
from condaops.reconciler.publish.image import (
    LAYER_FORMATS,
    Image,
    activated_environment,
    image_architecture,
    image_config,
    image_manifest,
    write_layers,
)
from condaops.reconciler.publish.naming import build_tags, image_labels, repository_name
from condaops.reconciler.reasons import Reason

if TYPE_CHECKING:
    from condaops.reconciler.publish.build import PublishRequest

IMAGE_NOT_RUNNABLE = Reason.IMAGE_NOT_RUNNABLE  # published, but its programs cannot start on its base (C library)
BASE_NAME, BASE_DIGEST = "org.opencontainers.image.base.name", "org.opencontainers.image.base.digest"


@dataclass(frozen=True)
class BuiltImage:
    """An image written to the work folder, not yet pushed, and what is known about it:
    why its programs cannot run (None: they can) and activation scripts not applied."""

    image: Image
    name: str
    tags: tuple[str, ...]
    base: BaseImage | None = None
    not_runnable: str | None = None
    skipped_scripts: tuple[str, ...] = field(default_factory=tuple)


def build_image(req: PublishRequest, settings: PublishSettings, base: BaseImage | None = None) -> BuiltImage:
    """Write the layers of ``req.prefix`` at ``settings.image_prefix`` on ``base`` (None:
    no base) and make the config and manifest."""
    prefix = settings.image_prefix
    layers = write_layers(
        req.prefix,
        prefix,
        req.work_dir / "layers",
        budget=settings.layer_budget,
        popularity=req.popularity,
        layer_format=LAYER_FORMATS[settings.layer_compression],
    )
    start = activated_environment(prefix, base.config if base else None)
    activated = activation(req.prefix, prefix, {**start, **dict(req.variables)})
    labels = image_labels(
        ref=req.ref,
        spec_hash=req.spec_hash,
        version=req.version or f"build-{req.build_id}",
        created=created_time(req.records),
        source_url=req.source_url,
        revision=req.revision,
        description=describe(req.records, req.requested_specs),
    )
    config = image_config(
        layers,
        image_prefix=prefix,
        architecture=image_architecture(req.platform) or "",
        variables=[*req.variables, *activated.variables],
        base=base.config if base else None,
        labels=labels,
    )
    annotations = dict(labels)
    if base is not None and base.digest:
        annotations |= {BASE_NAME: base.reference, BASE_DIGEST: base.digest}
    every = (*base.layers, *layers) if base else tuple(layers)
    image = Image(every, config, image_manifest(every, config, annotations))
    tags = build_tags(build_id=req.build_id, spec_hash=req.spec_hash, revision=req.revision, linked=req.linked)
    problem = image_problem(glibc_requirements(req.records), base.libc if base else None)
    return BuiltImage(image, repository_name(req.ref), tuple(tags), base, problem, tuple(activated.skipped))


def created_time(records: Sequence[Any]) -> str:
    """The newest package timestamp as RFC 3339 UTC (the epoch when none has one)."""
    stamps = [r.timestamp for r in records if getattr(r, "timestamp", None) is not None]
    newest = max(stamps, default=datetime.fromtimestamp(0, UTC))
    return newest.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(records: Sequence[Any], requested: Sequence[str], limit: int = 8) -> str:
    """``conda environment: flask 1.1.2, python 2.7.18 (+16 dependencies)``: the requested
    packages with their locked versions."""
    versions = {_name(r): str(getattr(r, "version", "")) for r in records}
    shown = [f"{name} {versions[name]}" for name in sorted({_spec_name(s) for s in requested}) if name in versions]
    shown = shown[:limit]
    if not shown:
        return f"conda environment: {len(versions)} packages"
    rest = len(versions) - len(shown)
    return f"conda environment: {', '.join(shown)}" + (f" (+{rest} dependencies)" if rest > 0 else "")


def _spec_name(spec: str) -> str:
    from rattler import MatchSpec
    from rattler.exceptions import InvalidMatchSpecError

    try:
        return str(MatchSpec(spec).name.normalized)
    except (InvalidMatchSpecError, ValueError):
        return spec.split()[0].lower() if spec.split() else spec


def _name(record: Any) -> str:
    name = record.name
    return str(getattr(name, "normalized", name))
