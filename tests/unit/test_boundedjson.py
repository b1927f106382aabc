"""JSON from untrusted senders: nesting measured without recursion, limits enforced."""

from __future__ import annotations

import json

import pytest

from condaops.reconciler.boundedjson import JSONRejected, loads, nesting


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"1", 0),
        (b"{}", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'{"a": "[[[[{{{{"}', 1),  # brackets inside strings do not count
        (b'["\\"[[", "\\\\", [[]]]', 3),  # nor do escaped quotes end a string early
        (b"[" * 100_000, 100_000),  # unbalanced: measured as far as it goes
        (b'{"a":' * 50_000, 50_000),
    ],
    ids=["scalar", "empty", "mixed", "in-string", "escapes", "deep-open", "deep-objects"],
)
def test_nesting(text: bytes, depth: int) -> None:
    assert nesting(text) == depth


def test_loads_parses_what_json_parses() -> None:
    value = {"a": [1, 2.5, None, True, {"b": "x[{"}], "é": "\u202e"}
    assert loads(json.dumps(value).encode(), max_bytes=1000) == value
    assert loads(json.dumps(value), max_bytes=1000) == value


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nests 100000 levels deep; at most 64"),
        (b'{"a":' * 50_000, "nests 50000 levels deep"),
        (b"[" * 65 + b"]" * 65, "nests 65 levels deep"),
        (b" " * 2_000_000, "at most 1000000 are accepted"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
    ],
    ids=["deep-arrays", "deep-objects", "just-over", "large", "invalid", "not-utf8"],
)
def test_loads_refuses(data: bytes, message: str) -> None:
    with pytest.raises(JSONRejected, match=message):
        loads(data, max_bytes=1_000_000)


def test_sixty_four_levels_are_fine() -> None:
    assert loads(b"[" * 64 + b"]" * 64, max_bytes=1000) is not None
