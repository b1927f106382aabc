"""The files of builds the site serves: store-relative locations from the state DB turned
into paths that stay inside the store, presigned object-storage URLs for published
artifacts, the build log and the publish record (``image.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from condaops.config import Settings
from condaops.reconciler.buildlog import LOG_KIND
from condaops.reconciler.state.queries import ArtifactInfo, BuildInfo
from condaops.reconciler.store import StoreLayout
from condaops.registry.backends import open_storage
from condaops.registry.layout import blob_key
from condaops.registry.protocol import Digest
from condaops.registry.storage import Storage


class StoreFiles:
    """Files of builds in the store (and in the registry's object storage)."""

    def __init__(self, settings: Settings, layout: StoreLayout) -> None:
        self.settings = settings
        self.layout = layout
        self._storage: Storage | None = None  # registry object storage, opened on first use

    def store_file(self, location: str) -> Path | None:
        """The file at a store-relative location from the state DB, if it is a regular
        file inside the store (a recorded location never leads elsewhere)."""
        root = self.layout.root.resolve()
        path = (root / location).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path

    def artifact_file(self, artifact: ArtifactInfo) -> Path | None:
        return self.store_file(artifact.location)

    def artifact_url(self, artifact: ArtifactInfo) -> str | None:
        """A presigned object-storage URL for an artifact the publish job pushed (tarball,
        lockfiles: registry blobs named by their sha256), when the registry keeps its blobs
        in S3 with redirects on; None means serve the file from the store."""
        storage = self._object_storage()
        if storage is None or not artifact.sha256:
            return None
        key = blob_key(Digest("sha256", artifact.sha256))
        if storage.size(key) != artifact.size:
            return None
        return storage.download_url(key)

    def _object_storage(self) -> Storage | None:
        settings = self.settings.storage
        if settings.backend != "s3" or not settings.s3_redirect:
            return None
        if self._storage is None:
            self._storage = open_storage(self.settings)
        return self._storage

    def image_record(self, build: BuildInfo) -> dict[str, Any] | None:
        """The build's ``image.json`` (what publishing pushed where), or None."""
        location = build.artifacts.get("image")
        path = self.store_file(location) if location else None
        try:
            found = json.loads(path.read_text(encoding="utf-8")) if path else None
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    def log_file(self, build: BuildInfo) -> Path | None:
        """The build's log: recorded as an artifact once finished; while it runs, where the
        runner writes it."""
        location = build.artifacts.get(LOG_KIND)
        if location is None:
            location = self.layout.relative(self.layout.build_log(build.ref, build.build_id))
        return self.store_file(location)
