"""Repository names, tags and annotations of published builds. Pure: no IO.

Repository: ``<namespace>/<name>`` lowercased. condaops names allow what the OCI name
grammar refuses (upper case, ``._``, ``.-``, ``___``, a trailing ``.``/``_``/``-``), so
``repository_name`` maps them: lowercase, every run of separators that is not one of
``.``, ``_``, ``__`` or ``-…`` becomes ``-``, separators at either end are dropped.
Two environments differing only in case share a repository (their tags stay apart by
build id and spec hash; ``latest`` goes to whichever was linked last).

Tags (all within the OCI tag grammar):

=====================  ===============================================================
``latest``             the linked (current) build only
``build-<id>``         every build, e.g. ``build-42``
``spec-<12 hex>``      the first 12 characters of the spec hash (as the store shows them)
``git-<12 hex>``       the source commit, when the revision is a Git SHA (40/64 hex)
=====================  ===============================================================

Prefixes keep the kinds apart: a bare 12-hex tag could be a spec hash or a commit.

Labels (config) and annotations (manifest) carry the same OCI keys (``image_labels``):
``title`` ``<ns>/<name>``, ``description`` (the requested packages and their versions),
``version`` (``build-<id>`` of the build that first published this lock, so a rebuild of
the same lock keeps the digest), ``source`` (Git URL or directory), ``revision`` (the
commit), ``created`` (the lock's newest package timestamp, not the wall clock).
"""

from __future__ import annotations

import re

from condaops.reconciler.model import EnvRef

SHORT = 12
SPEC_HASH_ANNOTATION = "io.condaops.spec-hash"
OCI = "org.opencontainers.image."
_SEPARATORS = re.compile(r"[._-]+")
_GIT_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def _component(text: str) -> str:
    def fix(match: re.Match[str]) -> str:
        run = match.group(0)
        return run if run in (".", "_", "__") or set(run) == {"-"} else "-"

    cleaned = _SEPARATORS.sub(fix, text.lower()).strip("._-")
    return cleaned or "env"


def repository_name(ref: EnvRef) -> str:
    """The registry repository of environment ``ref`` (see module doc)."""
    return f"{_component(ref.namespace)}/{_component(ref.name)}"


def is_git_sha(revision: str | None) -> bool:
    return bool(revision) and _GIT_SHA.fullmatch(revision or "") is not None


def build_tags(*, build_id: int, spec_hash: str, revision: str | None, linked: bool) -> list[str]:
    """The tags one build's image gets (see module doc)."""
    tags = ["latest"] if linked else []
    tags += [f"build-{build_id}", f"spec-{spec_hash[:SHORT]}"]
    if is_git_sha(revision):
        tags.append(f"git-{(revision or '')[:SHORT]}")
    return tags


def image_labels(
    *,
    ref: EnvRef,
    spec_hash: str,
    version: str,
    created: str,
    source_url: str | None,
    revision: str | None,
    description: str,
) -> dict[str, str]:
    """OCI labels of the image config, also its manifest annotations (see module doc);
    every value is a function of the lock and the source, so rebuilding the same lock
    keeps the digest."""
    out = {
        OCI + "title": f"{ref.namespace}/{ref.name}",
        OCI + "description": description,
        OCI + "version": version,
        OCI + "created": created,
        SPEC_HASH_ANNOTATION: spec_hash,
    }
    if source_url:
        out[OCI + "source"] = source_url
    if revision:
        out[OCI + "revision"] = revision
    return dict(sorted(out.items()))
