"""Pure decisions of the distribution protocol: digests, names, ranges, negotiation, paging.

No IO here: every function takes header or query text and returns a value or raises a
``RegistryError`` whose code the client expects (the spec's grammar is quoted where it
matters). The HTTP layer and the storage layout rely on the validation done here: a name,
tag, digest or upload id that passed it is safe to use in a storage key.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import quote

from condaops.registry.errors import (
    BLOB_UPLOAD_INVALID,
    DIGEST_INVALID,
    NAME_INVALID,
    PAGINATION_NUMBER_INVALID,
    RANGE_INVALID,
    TAG_INVALID,
    RegistryError,
)

# The spec's repository name grammar: lowercase path components joined by single slashes.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
NAME_MAX = 255
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
UPLOAD_ID_RE = re.compile(r"[0-9a-f]{32}")
# Algorithms we can verify, with the length of their lowercase hex encoding.
ALGORITHMS = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")


@dataclass(frozen=True, order=True)
class Digest:
    """A verified ``algorithm:hex`` content digest."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)


def parse_digest(text: str) -> Digest:
    """``sha256:<64 hex>`` (or sha512) -> Digest; DIGEST_INVALID otherwise."""
    match = _DIGEST_RE.fullmatch(text)
    if match is None:
        raise RegistryError(DIGEST_INVALID, f"'{text[:200]}' is not a digest such as sha256:<hex>")
    algorithm, encoded = match.groups()
    if algorithm not in ALGORITHMS:
        raise RegistryError(DIGEST_INVALID, f"digest algorithm '{algorithm}' is not supported; use sha256")
    if len(encoded) != ALGORITHMS[algorithm] or not re.fullmatch(r"[0-9a-f]+", encoded):
        raise RegistryError(
            DIGEST_INVALID, f"'{text[:200]}' is not a {algorithm} digest ({ALGORITHMS[algorithm]} lowercase hex digits)"
        )
    return Digest(algorithm, encoded)


def is_digest(reference: str) -> bool:
    """A manifest reference is a digest when it has a colon (tags cannot)."""
    return ":" in reference


def digest_of(data: bytes, algorithm: str = "sha256") -> Digest:
    return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())


def check_name(name: str) -> str:
    """The repository name, or NAME_INVALID."""
    if len(name) > NAME_MAX or not NAME_RE.fullmatch(name):
        raise RegistryError(
            NAME_INVALID,
            f"'{name[:300]}' is not a repository name: use lowercase path components such as ns/env",
            detail={"name": name[:300]},
        )
    return name


def check_tag(tag: str) -> str:
    """The tag, or TAG_INVALID."""
    if not TAG_RE.fullmatch(tag):
        raise RegistryError(TAG_INVALID, f"'{tag[:200]}' is not a tag: letters, digits, '_', '.', '-', at most 128")
    return tag


# --- ranges -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ByteRange:
    """Inclusive byte range ``start..end`` of a blob of ``total`` bytes."""

    start: int
    end: int
    total: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.total}"


_RANGE_RE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single byte range a ``Range`` header asks for; None means "send it all".

    Several ranges and units other than bytes are ignored (RFC 9110 lets a server send the
    whole representation instead). A range beyond the end raises RANGE_INVALID (416).
    """
    if not header:
        return None
    match = _RANGE_RE.fullmatch(header)
    if match is None or "," in header:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise _unsatisfiable(size)
        return ByteRange(max(size - length, 0), size - 1, size)
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None  # syntactically invalid: ignored, per RFC 9110
    if start >= size:
        raise _unsatisfiable(size)
    return ByteRange(start, end, size)


def _unsatisfiable(size: int) -> RegistryError:
    return RegistryError(
        RANGE_INVALID,
        f"the requested range is outside the blob of {size} bytes",
        headers={"Content-Range": f"bytes */{size}"},
    )


def parse_content_range(header: str) -> tuple[int, int]:
    """``<start>-<end>`` of a PATCH chunk (inclusive); the spec has no unit, some clients do."""
    match = re.fullmatch(r"\s*(?:bytes[ =])?\s*(\d+)-(\d+)(?:/(?:\d+|\*))?\s*", header)
    if match is None or int(match.group(2)) < int(match.group(1)):
        raise RegistryError(BLOB_UPLOAD_INVALID, f"Content-Range '{header[:100]}' is not <start>-<end>")
    return int(match.group(1)), int(match.group(2))


def upload_range(size: int) -> str:
    """The ``Range`` header of an upload session holding ``size`` bytes (``0-0`` when empty,
    as clients expect it even then)."""
    return f"0-{max(size - 1, 0)}"


# --- content negotiation ------------------------------------------------------------------


def accepts(accept_headers: list[str], media_type: str) -> bool:
    """Whether a client sending these ``Accept`` headers takes a manifest of ``media_type``.

    No header, ``*/*`` or ``application/*`` accept anything; an entry with ``q=0`` refuses.
    The registry never converts manifests, so "not accepted" becomes MANIFEST_UNKNOWN.
    """
    entries = [_accept_entry(part) for header in accept_headers for part in header.split(",") if part.strip()]
    if not entries:
        return True
    wanted = (media_type, "*/*", f"{media_type.split('/', 1)[0]}/*")
    return any(quality > 0 and kind in wanted for kind, quality in entries)


def _accept_entry(part: str) -> tuple[str, float]:
    kind, *params = (p.strip() for p in part.split(";"))
    quality = 1.0
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 1.0
    return kind.lower(), quality


# --- tag listing --------------------------------------------------------------------------


@dataclass(frozen=True)
class TagPage:
    tags: list[str]
    next_last: str | None  # the ``last`` of the next page, None when this one is the end


def parse_page_size(text: str | None) -> int | None:
    """The ``n`` query parameter: a count >= 0, or None when absent."""
    if text is None or text == "":
        return None
    if not re.fullmatch(r"\d{1,9}", text):
        raise RegistryError(PAGINATION_NUMBER_INVALID, f"n='{text[:50]}' must be a whole number >= 0")
    return int(text)


def page_tags(tags: list[str], n: int | None, last: str | None) -> TagPage:
    """Tags in lexical order after ``last``, at most ``n`` of them."""
    ordered = sorted(t for t in tags if last is None or t > last)
    if n is None or len(ordered) <= n:
        return TagPage(ordered, None)
    page = ordered[:n]
    return TagPage(page, page[-1] if page else None)


def tags_link(name: str, n: int, last: str) -> str:
    """The ``Link`` header that points at the next page of tags."""
    return f'</v2/{name}/tags/list?n={n}&last={quote(last, safe="")}>; rel="next"'


def catalog_link(n: int, last: str) -> str:
    """The ``Link`` header that points at the next page of the catalog."""
    return f'</v2/_catalog?n={n}&last={quote(last, safe="")}>; rel="next"'
