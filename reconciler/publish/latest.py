"""Moving the ``latest`` tag to an earlier build's image (``condaops rollback``).

The image is already in each target (it was pushed when the build was published), so
moving ``latest`` is one manifest put: the manifest is read back by digest and stored
again under ``latest``, unchanged (same bytes, same digest). Where the build went is read
from its ``image.json`` (``targets``: target name -> repository).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from condaops.config import Settings
from condaops.reconciler.errors import CondaopsError
from condaops.reconciler.publish.build import IMAGE_KIND, read_image_record
from condaops.reconciler.publish.targets import Target, open_targets
from condaops.reconciler.state.queries import BuildInfo
from condaops.reconciler.store import StoreLayout

LATEST = "latest"
log = logging.getLogger("condaops.publish")


def move_latest(
    settings: Settings, layout: StoreLayout, build: BuildInfo, *, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Point ``latest`` at ``build``'s image in every ``registry.push`` target; returns the
    problems, one line each (a target that fails does not stop the others)."""
    location = build.artifacts.get(IMAGE_KIND)
    record = read_image_record(layout.absolute(location)) if location else None
    if record is None:
        return [f"{build.ref}: build {build.build_id} has no published image; 'latest' was not moved"]
    pushed = _pushed_to(record)
    problems = []
    for target in open_targets(settings, environ):
        try:
            problem = _retag(target, pushed.get(target.name), record["manifest_digest"], build)
        except CondaopsError as exc:
            problem = f"{exc.reason}: {exc.message}"
        finally:
            target.close()
        if problem:
            log.warning(
                "latest_not_moved env=%s build=%s target=%s %s", build.ref, build.build_id, target.name, problem
            )
            problems.append(problem)
        else:
            log.info("latest_moved env=%s build=%s target=%s", build.ref, build.build_id, target.name)
    return problems


def _retag(target: Target, repository: str | None, digest: str, build: BuildInfo) -> str | None:
    if repository is None:
        return f"build {build.build_id} of {build.ref} was not pushed to '{target.name}'; 'latest' there is unchanged"
    found = target.get_manifest(repository, digest)
    if found is None:
        return f"{repository}@{digest} is no longer in '{target.name}'; 'latest' there is unchanged"
    body, media_type = found
    target.put_manifest(repository, body, media_type=media_type, tags=[LATEST])
    return None


def _pushed_to(record: dict[str, Any]) -> dict[str, str]:
    """Target name -> repository (records written before push targets: the built-in registry)."""
    targets = record.get("targets")
    if isinstance(targets, dict):
        return {name: str(entry["repository"]) for name, entry in targets.items()}
    return {"builtin": str(record["repository"])} if record.get("pushed") else {}
