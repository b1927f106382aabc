"""JSON from untrusted senders, parsed with a size and a nesting limit. Pure (stdlib only).

Python's ``json`` parses nested arrays and objects recursively: a body of 50,000 ``[``
(50 KB) raises ``RecursionError`` deep in the parser, which callers catching
``JSONDecodeError`` turn into a 500 with a traceback. ``loads`` measures the nesting
first, without recursion — strings are blanked by one regular expression, then the
brackets left are counted — and refuses what is too deep or too large with
``JSONRejected`` (a ``ValueError``), which every entry point answers as bad input.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 64  # manifests nest ~5 levels, push events ~8; far below the parser's recursion limit
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


class JSONRejected(ValueError):
    """The text is not JSON, or is larger or deeper than allowed; the message says which."""


def nesting(data: bytes) -> int:
    """How deep arrays and objects nest in ``data`` (0 for a scalar), counted without recursion.
    Unbalanced text is measured as far as it goes (the parser then rejects it)."""
    brackets = _BRACKET.findall(_STRING.sub(b'""', data))
    steps = (1 if b in (b"[", b"{") else -1 for b in brackets)
    return max(accumulate(steps, initial=0))


def loads(data: bytes | str, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` for untrusted input: ``JSONRejected`` when ``data`` is over
    ``max_bytes``, nested deeper than ``max_depth``, or not JSON."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise JSONRejected(f"the body has {len(raw)} bytes; at most {max_bytes} are accepted")
    depth = nesting(raw)
    if depth > max_depth:
        raise JSONRejected(f"the JSON nests {depth} levels deep; at most {max_depth} are accepted")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JSONRejected(f"not JSON ({exc})") from None
    except RecursionError:  # cannot happen below MAX_DEPTH; kept so no input ever escapes as one
        raise JSONRejected(f"the JSON nests more than {max_depth} levels deep") from None
