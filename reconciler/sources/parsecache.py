"""Parse results of a directory source's environment files, kept on disk by content.

The reconciler parses every environment file once and keeps the outcome in memory
(``directory.SpecCache``); a fresh process, such as ``condaops plan``, would parse them
all again. This file keeps each outcome under the file's path and content sha256, so a
reader that finds the same bytes at the same path takes the outcome instead of parsing:
the key is the content, never a timestamp, so a changed file is always parsed again.

The outcomes depend on the parser's code and the libraries it calls, so the file carries a
fingerprint of both (``fingerprint()``) and is ignored when it differs. The reconciler
writes it (``save``, one atomic rename, only after a read parsed something new); ``plan``
only reads it. A missing, unreadable or malformed file is the same as an empty one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from condaops.reconciler.spec import ParsedSpec, spec_from_canonical

FORMAT = 1
# Whose code decides a parse outcome: the modules read into the fingerprint, and the
# libraries whose versions are.
PARSER_MODULES = (
    "condaops.reconciler.specfile",
    "condaops.reconciler.specyaml",
    "condaops.reconciler.requirements",
    "condaops.reconciler.spec",
    "condaops.reconciler.names",
    "condaops.reconciler.reasons",
    "condaops.reconciler.errors",
)
PARSER_LIBRARIES = {"rattler": "py_rattler", "yaml": "PyYAML", "packaging": "packaging"}  # module: distribution

Outcome = tuple[ParsedSpec | None, tuple[str, str] | None]  # (parsed, (reason, message))


def fingerprint() -> str:
    """The parser's identity: the source of its modules and its libraries' versions."""
    hashed = hashlib.sha256(f"format {FORMAT}\n".encode())
    here = Path(__file__).resolve().parents[1]  # the reconciler package (not imported to read them)
    for name in PARSER_MODULES:
        path = here / (name.rsplit(".", 1)[1] + ".py")
        hashed.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"?"))
    for module, dist in PARSER_LIBRARIES.items():
        hashed.update(f"{dist}={_installed(module, dist)}\n".encode())
    return hashed.hexdigest()


def _installed(module: str, dist: str) -> str:
    """The version of ``dist`` (which provides ``module``), from its ``.dist-info`` folder's
    name beside the module: ``importlib.metadata`` would cost ``plan`` 13 ms of imports.
    Not found: the module's location instead (a changed install still changes it)."""
    spec = find_spec(module)
    if spec is None or spec.origin is None:
        return "?"
    site = Path(spec.origin).parent.parent
    for info in sorted(site.glob(f"{dist}-*.dist-info")) + sorted(site.glob(f"{dist.lower()}-*.dist-info")):
        return info.name.removesuffix(".dist-info")
    return spec.origin


def cache_file(folder: Path, source: str) -> Path:
    """Where the parse results of source ``source`` are kept (any name is a safe file name)."""
    return folder / f"specs-{hashlib.sha256(source.encode()).hexdigest()[:16]}.json"


def load(path: Path, expected: str) -> dict[tuple[str, str], Outcome]:
    """The outcomes kept at ``path`` by (relative path, content sha256); empty when there
    are none or they were made by another parser (``expected`` fingerprint)."""
    try:
        data = json.loads(path.read_bytes())
        if data.get("fingerprint") != expected:
            return {}
        return {(rel, digest): _outcome(item) for rel, digest, item in data["entries"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def save(path: Path, current: str, outcomes: dict[tuple[str, str], Outcome]) -> bool:
    """Write the outcomes (atomically: readers see the old file or the new one); False when
    the folder cannot be written (the store is read-only here: nothing is lost)."""
    entries = [[rel, digest, _data(o)] for (rel, digest), o in sorted(outcomes.items())]
    text = json.dumps({"fingerprint": current, "entries": entries}, separators=(",", ":"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".specs-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError:
        return False
    return True


def _data(outcome: Outcome) -> dict[str, Any]:
    parsed, problem = outcome
    if parsed is None:
        assert problem is not None
        return {"problem": list(problem)}
    spec = parsed.spec
    return {
        "spec": spec.canonical(),
        "name": spec.name,
        "display_name": spec.display_name,
        "warnings": list(parsed.warnings),
    }


def _outcome(item: dict[str, Any]) -> Outcome:
    if "problem" in item:
        reason, message = item["problem"]
        return None, (str(reason), str(message))
    spec = spec_from_canonical(item["spec"], item.get("name"))
    spec = replace(spec, display_name=item.get("display_name"))
    return ParsedSpec(spec, tuple(str(w) for w in item["warnings"])), None
