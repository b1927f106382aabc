"""Relocating file contents to another prefix (pure): conda's text and binary rules."""

from __future__ import annotations

import pytest

from condaops.reconciler.publish.relocate import (
    RelocationError,
    relocate_binary,
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
