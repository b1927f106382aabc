"""Relocating file contents to another prefix (pure): conda's text and binary rules."""

from __future__ import annotations

import hashlib
import random
import tarfile
from pathlib import Path

import pytest

from condaops.reconciler.publish.archive import Entry, write_archive
from condaops.reconciler.publish.relocate import (
    Relocation,
    RelocationError,
    relocate_binary,
    relocate_binary_chunks,
    relocate_if_text,
    relocate_text,
    rewriter,
)

OLD, NEW = b"/store/team/0123456789-env", b"/opt/env"
PAD = len(OLD) - len(NEW)


@pytest.mark.parametrize(
    "data, expected",
    [
        (OLD + b"/lib\0rest", NEW + b"/lib\0" + b"\0" * PAD + b"rest"),
        (b"x" + OLD + b":" + OLD + b"/bin\0", b"x" + NEW + b":" + NEW + b"/bin\0" + b"\0" * (2 * PAD)),
        (OLD + b"\0" + OLD + b"/a\0", NEW + b"\0" + b"\0" * PAD + NEW + b"/a\0" + b"\0" * PAD),
        (b"no prefix here\0", b"no prefix here\0"),
    ],
    ids=["one-string", "two-in-one-string", "two-strings", "none"],
)
def test_binary_strings_are_rewritten_in_place_and_padded(data: bytes, expected: bytes) -> None:
    out = relocate_binary(data, OLD, NEW)
    assert out == expected and len(out) == len(data)


def test_a_longer_binary_path_is_refused() -> None:
    with pytest.raises(RelocationError, match="cannot put"):
        relocate_binary(NEW + b"/lib\0", NEW, OLD)


def test_text_changes_length_and_unknown_files_only_when_they_are_text() -> None:
    assert relocate_text(b"#!" + OLD + b"/bin/python\n", OLD, NEW) == b"#!/opt/env/bin/python\n"
    assert relocate_if_text(b"P=" + OLD, OLD, NEW) == b"P=/opt/env"
    assert relocate_if_text(b"\0" + OLD, OLD, NEW) == b"\0" + OLD
    assert rewriter("binary", OLD.decode(), NEW.decode())(OLD + b"\0") == NEW + b"\0" * (PAD + 1)
    assert rewriter(None, OLD.decode(), NEW.decode())(b"\0" + OLD) == b"\0" + OLD


def test_a_trampoline_for_a_long_interpreter_path_becomes_a_direct_shebang() -> None:
    long_old = b"/srv/" + b"x" * 120 + b"/env"
    script = b"#!/bin/sh\n'''exec' \"" + long_old + b'/bin/python2.7" "$0" "$@" #\'\'\'\nimport sys\n'
    assert relocate_text(script, long_old, NEW) == b"#!/opt/env/bin/python2.7\nimport sys\n"
    assert relocate_if_text(script, long_old, NEW) == b"#!/opt/env/bin/python2.7\nimport sys\n"
    longer = b"/" + b"y" * 130
    assert relocate_text(script, long_old, longer).startswith(b"#!/bin/sh\n")  # still too long: kept


def _cut(data: bytes, sizes: list[int]) -> list[bytes]:
    pieces, at, i = [], 0, 0
    while at < len(data):
        step = sizes[i % len(sizes)]
        pieces.append(data[at : at + step])
        at, i = at + step, i + 1
    return pieces


def test_binary_relocation_in_pieces_gives_the_same_bytes_wherever_the_pieces_are_cut() -> None:
    """Strings straddling a cut, a prefix split across pieces, long NUL-free runs with and
    without the prefix, no NUL at the end: the piecewise result equals the whole-file one."""
    rng = random.Random(14)
    parts = [OLD + b"/lib/python2.7\0", b"\0" * 5, OLD[:7], b"x" * 300, OLD + b":" + OLD + b"/bin", b"\0", b"abc"]
    for _ in range(300):
        data = b"".join(rng.choice(parts) for _ in range(rng.randint(0, 40)))
        if rng.random() < 0.3:
            data += OLD + b"/tail-without-nul"
        sizes = [rng.randint(1, 64) for _ in range(rng.randint(1, 5))]
        pieces = list(relocate_binary_chunks(_cut(data, sizes), OLD, NEW))
        assert b"".join(pieces) == relocate_binary(data, OLD, NEW), (data, sizes)


def test_binary_relocation_in_pieces_holds_back_only_what_may_start_the_prefix() -> None:
    """A long run without NUL bytes or the prefix goes out as it comes, minus a tail."""
    stream = relocate_binary_chunks(iter([b"y" * 4096, b"z" * 4096]), OLD, NEW)
    first = next(stream)
    assert len(first) == 4096 - (len(OLD) - 1)


def test_a_large_binary_file_is_archived_in_pieces_with_the_same_bytes_and_recorded_digest(tmp_path: Path) -> None:
    """Over the whole-read limit (1 MiB) a binary relocation streams: the archive and the
    digest the package record gets are those of relocating the file whole."""
    rng = random.Random(7)
    blob = bytearray(rng.randbytes(3 << 20))
    for at in range(1000, len(blob) - 200, 99_991):  # prefixes across the 1 MiB reads too
        blob[at : at + len(OLD) + 5] = OLD + b"/lib\0"
    source = tmp_path / "libbig.so"
    source.write_bytes(bytes(blob))
    expected = relocate_binary(bytes(blob), OLD, NEW)

    relocation = Relocation(OLD.decode(), NEW.decode())
    rewrite = relocation.rewrite("lib/libbig.so", "binary")
    write_archive(tmp_path / "layer.tar", [Entry("opt/env/lib/libbig.so", source, rewrite=rewrite)], "none")

    with tarfile.open(tmp_path / "layer.tar") as tar:
        member = tar.extractfile("opt/env/lib/libbig.so")
        assert member is not None and member.read() == expected
    assert relocation.written["lib/libbig.so"] == (hashlib.sha256(expected).hexdigest(), len(expected))
