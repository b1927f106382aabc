"""Judging one package's licence field against a licence rule.

Pure: no IO (the SPDX licence list ships inside ``license-expression`` and is loaded
once, on first use). The ``license`` field of conda records is free text: SPDX
expressions (``MIT``, ``X11 AND BSD-3-Clause``, ``GPL-3.0-only WITH GCC-exception-3.1``)
beside older names (``BSD``, ``PSF``, ``GPL3 with runtime exception``). The rules:

* patterns (``GPL-3.0-only``, ``GPL-*``, ``* WITH GCC-exception-3.1``) match
  case-insensitively; a pattern equal to the whole licence text also matches, so a site
  can allow a non-SPDX text such as ``PSF`` by name;
* a missing licence, one that is not an SPDX expression, or one with ids outside the
  SPDX list (``LicenseRef-*`` ids count as known) is *unknown*;
* ``OR`` is a choice, ``AND`` means all apply: a licence is denied when every choice
  holds a denied id, and allowed when some choice has only allowed ids;
* an exception only adds permissions: ``X WITH E`` is allowed when ``X`` is, and denied
  only by a pattern that matches ``X WITH E`` itself (denying ``GPL-3.0-only`` does not
  deny GCC's runtime library, ``GPL-3.0-only WITH GCC-exception-3.1``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from license_expression import ExpressionError, LicenseSymbol, LicenseWithExceptionSymbol, get_spdx_licensing

from condaops.reconciler.policy.rules import LicenseRule

MAX_CHOICES = 64  # an expression expanding to more choices than this is judged unknown
_NO_LICENSE = frozenset({"", "none", "null", "unknown", "n/a", "noassertion"})

DENIED, NOT_ALLOWED, UNKNOWN = "license-deny", "license-allow", "license-unknown"


@dataclass(frozen=True, slots=True)
class LicenseFinding:
    """Why a licence fails a rule: ``rule`` is one of DENIED, NOT_ALLOWED, UNKNOWN."""

    rule: str
    detail: str


@dataclass(frozen=True, slots=True)
class _Id:
    """One licence of an expression: its full text and, with an exception, the licence alone."""

    full: str
    base: str


_PARSING = threading.Lock()  # license_expression's tokenizer is not thread-safe (see parse_choices)


@functools.cache
def _licensing() -> Any:
    return get_spdx_licensing()


def judge_license(text: str | None, rule: LicenseRule) -> LicenseFinding | None:
    """What is wrong with licence ``text`` under ``rule``; None when it passes."""
    raw = (text or "").strip()
    if _matches(raw, rule.deny):
        return LicenseFinding(DENIED, f"licence '{raw}' is denied")
    if rule.allow and _matches(raw, rule.allow):
        return None
    choices = parse_choices(raw)
    if choices is None:
        if rule.unknown == "ignore":
            return None
        what = "no licence" if raw.lower() in _NO_LICENSE else f"licence '{raw}' is not a known SPDX expression"
        return LicenseFinding(UNKNOWN, what)
    if all(any(_matches(i.full, rule.deny) for i in choice) for choice in choices):
        return LicenseFinding(DENIED, f"licence '{raw}' is denied")
    if rule.allow and not any(all(_allowed(i, rule.allow) for i in choice) for choice in choices):
        return LicenseFinding(NOT_ALLOWED, f"licence '{raw}' is not in the allowed list")
    return None


@functools.lru_cache(maxsize=4096)
def parse_choices(text: str) -> tuple[tuple[_Id, ...], ...] | None:
    """The licence as choices (``OR``) of licences that all apply (``AND``); None when it
    is missing, not an SPDX expression or names ids outside the SPDX list."""
    if text.lower() in _NO_LICENSE:
        return None
    # One parse at a time: license_expression's tokenizer trie builds its failure links on
    # first use; two threads doing it at once (two SBOMs written in parallel) failed with
    # "'object' object has no attribute 'children'".
    with _PARSING:
        licensing = _licensing()
        try:
            expression = licensing.parse(text, validate=False)
        except (ExpressionError, TypeError, ValueError):
            return None
        if expression is None:
            return None
        keys = licensing.unknown_license_keys(expression)
    unknown = [k for k in keys if not k.startswith("LicenseRef-")]
    if unknown:
        return None
    return _choices(expression)


def _choices(node: Any) -> tuple[tuple[_Id, ...], ...] | None:
    if isinstance(node, LicenseWithExceptionSymbol):
        return ((_Id(f"{node.license_symbol.key} WITH {node.exception_symbol.key}", node.license_symbol.key),),)
    if isinstance(node, LicenseSymbol):
        return ((_Id(node.key, node.key),),)
    choices = [_choices(arg) for arg in node.args]
    parts = [p for p in choices if p is not None]
    if len(parts) < len(choices):
        return None
    if node.operator.strip().upper() == "OR":
        merged = tuple(c for p in parts for c in p)
        return merged if len(merged) <= MAX_CHOICES else None
    product: tuple[tuple[_Id, ...], ...] = ((),)
    for part in parts:
        product = tuple(a + b for a in product for b in part)
        if len(product) > MAX_CHOICES:
            return None
    return product


def _allowed(licence: _Id, patterns: Sequence[str]) -> bool:
    return _matches(licence.full, patterns) or _matches(licence.base, patterns)


def _matches(text: str, patterns: Sequence[str]) -> bool:
    folded = text.casefold()
    return bool(folded) and any(fnmatchcase(folded, p.casefold()) for p in patterns)
