"""Names users type: namespaces and environments, platforms, Git ref patterns, and how to show them.

Standard library only, like ``errors``: part of the vocabulary every layer may import
(``config`` checks source and target names with the same rule the sources apply to files).
"""

from __future__ import annotations

import re

# The conda platforms condaops knows (``platforms:`` in a file or the settings must name one).
KNOWN_PLATFORMS: tuple[str, ...] = (
    "linux-64",
    "linux-aarch64",
    "linux-ppc64le",
    "linux-s390x",
    "linux-32",
    "linux-armv6l",
    "linux-armv7l",
    "osx-64",
    "osx-arm64",
    "win-64",
    "win-32",
    "win-arm64",
)

# Namespace and environment names: what a user may type in a path and a URL.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def shown(text: str) -> str:
    """``text`` safe to print: characters that are invisible or reorder the line (U+200B,
    U+202E...) and control characters escaped as ``\\uXXXX``, long text shortened. Pure."""
    escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)
    return escaped if len(escaped) <= 200 else f"{escaped[:100]}...({len(text)} characters)"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a namespace or environment name, or None if it can."""
    if name in ("", ".", "..") or ".." in name:
        return f"'{shown(name)}' is not allowed as a name ('..' and empty names are refused)"
    if "/" in name or "\\" in name:
        return f"'{shown(name)}' contains a slash"
    if not NAME_RE.match(name):
        rule = (
            "at most 128 characters" if len(name) > 128 else "starting with a letter or digit, at most 128 characters"
        )
        return f"'{shown(name)}' is not a valid name: use letters, digits, '.', '_' or '-' ({rule})"
    return None


def ref_glob_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a ref glob such as ``refs/pull/*/head``, or None."""
    if not pattern.startswith("refs/"):
        return f"ref pattern {pattern!r} must start with 'refs/'"
    if any(c in pattern for c in " ~^:?[\\") or ".." in pattern:
        return f"ref pattern {pattern!r} contains a character refs cannot have"
    return None
