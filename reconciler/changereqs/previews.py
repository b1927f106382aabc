"""Previews of a change request: which environments to build, which builds to reuse, and
which preview areas on disk are still needed. Pure decisions (``exists`` is the one look
at the disk, passed in).

A preview whose spec hash equals a finished production build, or an earlier preview of the
same change request, reuses that build's prefix and files: nothing is rebuilt, and no
prefix is ever built twice in one area (which the build runner refuses: ``PrefixInUse``).
Previews of *other* change requests are not reused: their areas are removed with them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import PurePosixPath

from condaops.reconciler.model import DesiredEnv
from condaops.reconciler.state.review_queries import BuiltSpec, PreviewInfo
from condaops.reconciler.state.review_recorder import PreviewRequest, Reuse


def preview_requests(
    envs: Sequence[DesiredEnv],
    built: Mapping[str, list[BuiltSpec]],
    *,
    change_request: tuple[str, str],
    exists: Callable[[str], bool],
) -> list[PreviewRequest]:
    """One request per environment to preview; ``built`` are finished builds by spec hash
    (newest first) and ``exists(prefix)`` tells whether a store-relative prefix is there."""
    out = []
    for env in envs:
        spec_hash = env.spec.spec_hash
        candidates = [b for b in built.get(spec_hash, ()) if b.change_request in (None, change_request)]
        candidates.sort(key=lambda b: b.ref != env.ref)  # the same environment's build first (stable)
        chosen = next((b for b in candidates if exists(b.prefix)), None)
        reuse = None if chosen is None else Reuse(chosen.origin, chosen.prefix, chosen.artifacts, _told(chosen))
        out.append(PreviewRequest(env.ref, env.path, spec_hash, env.spec.canonical_json(), reuse, env.lock))
    return out


def _told(b: BuiltSpec) -> str:
    kind, _, number = b.origin.partition(":")
    what = f"production build {number} of {b.ref}" if kind == "build" else f"preview {number} of {b.ref}"
    return f"same specification as {what}: reused, not rebuilt"


def areas_to_keep(head: str, previews: Iterable[PreviewInfo], folder: PurePosixPath) -> set[str]:
    """Names of the preview areas (``<head12>`` folders under ``folder``, store-relative)
    still needed: the head's own, those with a preview building, and those holding a
    prefix a current preview reuses."""
    keep = {head[:12]}
    for p in previews:
        if p.state == "building":
            keep.add(p.head_revision[:12])
        if p.head_revision == head and p.prefix:
            prefix = PurePosixPath(p.prefix)
            if prefix.is_relative_to(folder):
                keep.add(prefix.relative_to(folder).parts[0])
    return keep
