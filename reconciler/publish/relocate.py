"""Moving a built prefix to another path while its files are archived. Pure: bytes in, bytes out.

An image holds the environment at ``publish.image_prefix`` (``/opt/env``), not at its store
path. Instead of installing the packages a second time for that path, the built prefix's
files are copied into the layers and the few that name the build prefix are rewritten on
the way, by the rules conda itself applies when it installs a package:

* **text** files (a text placeholder, an entry-point script, any file without NUL bytes
  that no package owns) — every occurrence of the build prefix is replaced; the length may
  change;
* **binary** files with a binary placeholder — each NUL-terminated string that starts with
  the build prefix is rewritten in place and padded with NULs, so the file keeps its length
  and every offset in it. The build prefix was itself padded into the package's placeholder
  at install time, so the new path only has to be no longer than the build prefix;
* other binary files are copied unchanged (compiled ``.pyc`` files store paths in a
  length-prefixed form that a byte replacement would corrupt; they name no prefix here,
  rattler compiles them with relative names).

A script whose interpreter path was too long for a ``#!`` line (Linux reads 127 bytes)
was written by the installer as a ``/bin/sh`` trampoline (``'''exec' "<path>" "$0" "$@"``);
when the new path fits, it gets its direct ``#!<path>`` line back: images need no shell.

The result is byte-identical to installing the same packages for the new path directly.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator

TEXT, BINARY = "text", "binary"
Rewrite = Callable[[bytes], bytes]
ENTRY_POINT = "unix_python_entry_point"  # scripts rattler writes, with the prefix in their shebang
SHEBANG_MAX = 127  # bytes of a "#!" line the Linux kernel reads
_TRAMPOLINE = re.compile(rb"#!/bin/sh\n\x27{3}exec\x27 \"([^\"\n]+)\" \"\$0\" \"\$@\" #\x27{3}\n")


class RelocationError(ValueError):
    """The new prefix is longer than the build prefix: binary strings cannot hold it."""


def relocate_text(data: bytes, old: bytes, new: bytes) -> bytes:
    """Every occurrence of ``old`` replaced by ``new`` (and a trampoline made a direct
    ``#!`` line again when it fits)."""
    return direct_shebang(data.replace(old, new))


def direct_shebang(data: bytes) -> bytes:
    """``#!<path>`` for a script starting with the ``/bin/sh`` trampoline, if it fits."""
    match = _TRAMPOLINE.match(data)
    if match is None or len(match.group(1)) + 2 > SHEBANG_MAX:
        return data
    return b"#!" + match.group(1) + b"\n" + data[match.end() :]


def relocate_binary(data: bytes, old: bytes, new: bytes) -> bytes:
    """Each C string (up to its NUL) holding ``old`` rewritten with ``new`` and padded
    with NULs to its former length. Raises ``RelocationError`` if ``new`` is longer."""
    if old not in data:
        return data
    if len(new) > len(old):
        raise RelocationError(f"cannot put the {len(new)}-byte path {new!r} where the {len(old)}-byte {old!r} was")
    pattern = re.compile(re.escape(old) + rb"[^\0]*\0")

    def padded(match: re.Match[bytes]) -> bytes:
        string = match.group(0)
        rewritten = string.replace(old, new)
        return rewritten + b"\0" * (len(string) - len(rewritten))

    return pattern.sub(padded, data)


def relocate_binary_chunks(chunks: Iterable[bytes], old: bytes, new: bytes) -> Iterator[bytes]:
    """``relocate_binary`` over a file read in pieces, giving the same bytes with a bounded
    buffer: the input is cut just after a NUL byte, and no rewritten string can straddle
    such a cut (it ends at the first NUL after ``old``, and ``old`` holds none). A run
    without NUL bytes is held back only while it contains ``old``; otherwise all but its
    last ``len(old) - 1`` bytes (where an ``old`` could begin) go out unchanged."""
    keep = max(len(old) - 1, 0)
    pending = b""
    for chunk in chunks:
        buf = pending + chunk if pending else chunk
        cut = buf.rfind(b"\0") + 1
        if cut:
            yield relocate_binary(buf[:cut], old, new)
            pending = buf[cut:]
        elif old in buf:
            pending = buf  # a string to rewrite whose NUL is still to come
        else:
            split = len(buf) - keep
            if split > 0:
                yield buf[:split]
            pending = buf[max(split, 0) :]
    if pending:
        yield relocate_binary(pending, old, new)


def relocate_if_text(data: bytes, old: bytes, new: bytes) -> bytes:
    """``relocate_text`` for files without NUL bytes; binary files are left alone."""
    if old not in data or b"\0" in data:
        return data
    return relocate_text(data, old, new)


def rewriter(mode: str | None, old: str, new: str) -> Rewrite:
    """The rewrite for a file of ``mode`` (``text``, ``binary``, or None when unknown)."""
    old_b, new_b = old.encode(), new.encode()
    if mode == TEXT:
        return lambda data: relocate_text(data, old_b, new_b)
    if mode == BINARY:
        return lambda data: relocate_binary(data, old_b, new_b)
    return lambda data: relocate_if_text(data, old_b, new_b)


class _Rewriter:
    """A relocation of one file: called with its bytes; ``same_size_chunks`` is set for
    binary relocation, which keeps the length, so an archive can stream a large file
    through it in pieces (``archive.add_entry``) instead of holding it and its copy whole."""

    def __init__(self, whole: Rewrite, chunked: Callable[[Iterable[bytes]], Iterator[bytes]] | None) -> None:
        self.whole = whole
        self.same_size_chunks = chunked

    def __call__(self, data: bytes) -> bytes:
        return self.whole(data)


class Relocation:
    """The rewrites of one layer, which remember what they wrote: a package's record
    (``conda-meta/<pkg>.json``) lists each file's ``sha256_in_prefix`` and ``size_in_bytes``
    as installed, and for a relocated file those must describe the image's bytes, not the
    build prefix's (or every layer holding one would change with the store path). The
    layer writes the records after the files (``patch_record``)."""

    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new
        self.written: dict[str, tuple[str, int]] = {}  # path in the prefix -> (sha256, size)

    def rewrite(self, path: str, mode: str | None) -> Rewrite:
        """The rewrite of ``path`` (``mode`` as for ``rewriter``), remembering its result."""
        relocate = rewriter(mode, self.old, self.new)

        def run(data: bytes) -> bytes:
            out = relocate(data)
            self.written[path] = (hashlib.sha256(out).hexdigest(), len(out))
            return out

        if mode != BINARY:
            return _Rewriter(run, None)
        old_b, new_b = self.old.encode(), self.new.encode()

        def chunked(chunks: Iterable[bytes]) -> Iterator[bytes]:
            sha, size = hashlib.sha256(), 0
            for piece in relocate_binary_chunks(chunks, old_b, new_b):
                sha.update(piece)
                size += len(piece)
                yield piece
            self.written[path] = (sha.hexdigest(), size)

        return _Rewriter(run, chunked)

    def patch_record(self, data: bytes) -> bytes:
        """A ``conda-meta`` record with the digests and sizes of the files written so far."""
        if not self.written:  # most layers relocate nothing: no need to read the record
            return data
        record = json.loads(data)
        changed = False
        for entry in (record.get("paths_data") or {}).get("paths") or []:
            found = self.written.get(entry.get("_path"))
            if found is None:
                continue
            sha256, size = found
            # Entry points are written by the installer: their "sha256" is of what it wrote.
            key = "sha256" if entry.get("path_type") == ENTRY_POINT else "sha256_in_prefix"
            if key in entry and entry[key] != sha256:
                entry[key], changed = sha256, True
            if "size_in_bytes" in entry and entry["size_in_bytes"] != size:
                entry["size_in_bytes"], changed = size, True
        return (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode() if changed else data
