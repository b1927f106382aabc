"""Registry errors in the OCI distribution spec's vocabulary.

A ``RegistryError`` carries the spec's error code (``BLOB_UNKNOWN``...), the HTTP status the
code is answered with, a one-sentence message for people and an optional ``detail`` for
machines. The HTTP layer turns it into ``{"errors": [{"code", "message", "detail"}]}``; the
internal API (``condaops.registry.api``) lets it propagate as a ``CondaopsError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from condaops.reconciler.errors import CondaopsError, StalledError, TransientError
from condaops.reconciler.reasons import Reason


@dataclass(frozen=True)
class Code:
    """One error code of the spec and the status it is answered with."""

    name: str
    status: int


BLOB_UNKNOWN = Code("BLOB_UNKNOWN", 404)
BLOB_UPLOAD_INVALID = Code("BLOB_UPLOAD_INVALID", 400)
DENIED = Code("DENIED", 403)  # an access the registry refuses (e.g. a push into dynamic/)
BLOB_UPLOAD_UNKNOWN = Code("BLOB_UPLOAD_UNKNOWN", 404)
DIGEST_INVALID = Code("DIGEST_INVALID", 400)
MANIFEST_BLOB_UNKNOWN = Code("MANIFEST_BLOB_UNKNOWN", 400)
MANIFEST_INVALID = Code("MANIFEST_INVALID", 400)
MANIFEST_UNKNOWN = Code("MANIFEST_UNKNOWN", 404)
NAME_INVALID = Code("NAME_INVALID", 400)
NAME_UNKNOWN = Code("NAME_UNKNOWN", 404)
SIZE_INVALID = Code("SIZE_INVALID", 400)
TAG_INVALID = Code("TAG_INVALID", 400)
PAGINATION_NUMBER_INVALID = Code("PAGINATION_NUMBER_INVALID", 400)
RANGE_INVALID = Code("RANGE_INVALID", 416)
UNAUTHORIZED = Code("UNAUTHORIZED", 401)
UNSUPPORTED = Code("UNSUPPORTED", 405)
NOT_FOUND = Code("NOT_FOUND", 404)  # a path that is no endpoint of the API
UNAVAILABLE = Code("UNAVAILABLE", 503)  # the storage backend failed; try again
TOOMANYREQUESTS = Code("TOOMANYREQUESTS", 429)  # a quota or rate limit; try again later
INSUFFICIENT_STORAGE = 507  # the status of DENIED when the disk is below min_free_space


class RegistryError(CondaopsError):
    """A request the registry refuses, answered with ``code.status`` and the spec's JSON."""

    reason = Reason.REGISTRY_REQUEST_REFUSED

    def __init__(
        self,
        code: Code,
        message: str,
        *,
        detail: object = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail
        self.status = status or code.status
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        """The spec's error document."""
        entry: dict[str, object] = {"code": self.code.name, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return {"errors": [entry]}


class StorageError(TransientError):
    """The storage backend (disk, S3) failed; the operation may succeed later."""

    reason = Reason.STORAGE_UNAVAILABLE


class StorageFullError(StorageError):
    """The disk holding registry data is full (ENOSPC, or below ``min_free_space``)."""

    reason = Reason.DISK_FULL


class StorageConfigError(StalledError):
    """The storage cannot be opened as configured (missing bucket, bad endpoint...)."""

    reason = Reason.STORAGE_MISCONFIGURED
