"""The ``metadata`` of a settings field: its documentation (the reference is generated from it)."""

from __future__ import annotations


def doc(text: str, **kw: object) -> dict[str, object]:
    """``field(metadata=doc("..."))``: the text the configuration reference shows for the key."""
    return {"doc": text, **kw}
