"""Garbage collection of registry storage: abandoned uploads and surplus dynamic images.

Run by ``condaops gc`` and, every ``registry.gc_interval``, by the process serving the
registry. Safe to run at any time, on any host, several at once (each step is idempotent).

* **Uploads**: sessions started more than ``registry.upload_max_age`` ago are ended.
* **Dynamic images**: the ``dynamic.keep`` most recently pulled are kept
  (``choose_dynamic``); for each other one, its repositories (those still tagging it
  ``latest``) and its index record go, then the blobs it used that no remaining manifest
  references. Blobs are shared between repositories, so only those candidates are swept,
  after every remaining manifest in the registry has been read: a blob another image or
  an environment's image uses is never removed. Published environment images are never
  collected here (``condaops gc`` keeps every build's lockfiles, and images follow).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field

from condaops.config.settings import Settings
from condaops.registry import layout
from condaops.registry.api import Registry
from condaops.registry.dynamic import remove_alias
from condaops.registry.dynamic_index import DynamicImage, DynamicIndex
from condaops.registry.protocol import Digest, parse_digest
from condaops.registry.storage import Storage
from condaops.registry.store import RegistryStore

log = logging.getLogger("condaops.registry.collect")


@dataclass
class Collected:
    """What one collection removed (or, dry, would remove)."""

    uploads: int = 0
    images: list[str] = field(default_factory=list)  # solved keys
    repositories: list[str] = field(default_factory=list)
    blobs: int = 0
    bytes: int = 0


def choose_dynamic(images: list[DynamicImage], keep: int) -> list[DynamicImage]:
    """The images to remove: all but the ``keep`` most recently pulled (ties: most pulled,
    then newest). Pure."""
    ranked = sorted(images, key=lambda i: (i.used, i.uses, i.created), reverse=True)
    return ranked[keep:]


def collect_registry(settings: Settings, storage: Storage, *, dry_run: bool = False) -> Collected:
    """Purge abandoned uploads and collect dynamic images beyond ``dynamic.keep``."""
    store = RegistryStore(storage)
    done = Collected()
    done.uploads = len(store.uploads.purge(settings.registry.upload_max_age, dry_run=dry_run))
    index = DynamicIndex(storage)
    surplus = choose_dynamic(index.all(), settings.dynamic.keep)
    if surplus:
        _remove_images(store, index, surplus, done, dry_run=dry_run)
    if done.uploads or done.images:
        log.info(
            "registry_collected uploads=%d images=%d repositories=%d blobs=%d bytes=%d dry_run=%s",
            done.uploads,
            len(done.images),
            len(done.repositories),
            done.blobs,
            done.bytes,
            dry_run,
        )
    return done


def _remove_images(
    store: RegistryStore, index: DynamicIndex, surplus: list[DynamicImage], done: Collected, *, dry_run: bool
) -> None:
    registry = Registry(store.storage)
    candidates: set[Digest] = set()
    leaving: set[str] = set()
    for image in surplus:
        digest = parse_digest(image.digest)
        candidates |= {digest, *_blobs_of(store, digest)}
        for repository in sorted(image.aliases):
            current = registry.resolve(repository, "latest")
            if current is None or current.digest == image.digest:
                leaving.add(repository)
                if not dry_run:
                    remove_alias(registry, repository, image.digest)
        if not dry_run:
            index.remove(image)
        done.images.append(image.key)
    done.repositories = sorted(leaving)
    kept = referenced_blobs(store, excluding=leaving if dry_run else set())
    for digest in sorted(candidates - kept):
        size = store.blob_size(digest)
        if size is None:
            continue
        done.blobs += 1
        done.bytes += size
        if not dry_run:
            store.storage.delete(layout.blob_key(digest))


def referenced_blobs(store: RegistryStore, *, excluding: Collection[str] = ()) -> set[Digest]:
    """Every blob a manifest of a repository (but those ``excluding``) is or references."""
    found: set[Digest] = set()
    for name in store.repositories(limit=10**9):
        if name in excluding:
            continue
        for algorithm in ("sha256", "sha512"):
            for hex_digest in store.storage.list(layout.revisions_key(name, algorithm)):
                digest = Digest(algorithm, hex_digest)
                found.add(digest)
                found |= _blobs_of(store, digest)
    return found


def _blobs_of(store: RegistryStore, digest: Digest) -> set[Digest]:
    manifest = store.stored_manifest(digest)
    if manifest is None:
        return set()
    return {parse_digest(d.digest) for d in (*manifest.blobs, *manifest.children) if not d.urls}
