"""Pure rules of the Git source: tree entries, ref globs, credentials in text, backoff.

Standard library and ``layout`` only: no IO, no dulwich. The reader (``git.py``), its
tree walk (``gittree.py``) and the unit tests share these.

Tree entries, judged by path (components as in the tree) and mode:

* a component that no checkout could have (empty, ``.``, ``..``, containing ``/``, ``\\``
  or NUL; Git refuses to write such trees, but a crafted one can hold them), or that is
  not UTF-8 (no environment could be named so, and messages must stay text), makes the
  entry **unsafe**: it is ignored with an ``UnsupportedTreeEntry`` warning naming the
  path up to that component, and nothing below it is looked at;
* hidden or ignored components, and paths deeper than ``layout.MAX_DEPTH``, are ignored
  silently — the same rules as the directory source;
* symbolic links (mode 120000) and submodules (mode 160000) are never followed; where a
  file or folder could have held an environment they are ignored with an
  ``UnsupportedTreeEntry`` warning, elsewhere silently. A link's target is not read, so a
  link counts as a possible folder unless its name has an extension (``latest.md``);
* regular files whose name could be an environment file or a lockfile
  (``layout.lock_kind``) are **candidates**: ``layout`` decides what they are.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from condaops.reconciler.reasons import Reason
from condaops.reconciler.sources.layout import MAX_DEPTH, affects_layout, is_ignored_name, is_spec_name, lock_kind

UNSUPPORTED_TREE_ENTRY = Reason.UNSUPPORTED_TREE_ENTRY
MODE_TREE = 0o040000
MODE_SYMLINK = 0o120000
MODE_SUBMODULE = 0o160000
MAX_BACKOFF_FACTOR = 8  # repeated failures wait at most 8 poll intervals


@dataclass(frozen=True, slots=True)
class Candidate:
    """A regular file whose name could make it an environment file."""

    path: str


@dataclass(frozen=True, slots=True)
class Unsupported:
    """An entry that is ignored with a warning (``UnsupportedTreeEntry``)."""

    path: str
    message: str
    unsafe: bool = False  # a name no checkout could have: the reader re-walks the whole tree


Judgement = Candidate | Unsupported


# --- tree entries -------------------------------------------------------------------------


def unsafe_name_problem(name: str) -> str | None:
    """Why a tree entry name could not exist in a checkout, or None if it could."""
    if name in ("", ".", ".."):
        return f"the name {name!r} is not a valid file name"
    for char, what in (("/", "a slash"), ("\\", "a backslash"), ("\0", "a NUL byte")):
        if char in name:
            return f"the name contains {what}"
    if _printable(name) != name:
        return "the name is not UTF-8"
    return None


def _printable(name: str) -> str:
    """Bytes that were not UTF-8 (kept as surrogates by ``split_path``) as ``\\xNN``: text
    that logs, messages and the state DB can hold."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_tree(mode: int) -> bool:
    return stat.S_IFMT(mode) == MODE_TREE and mode != MODE_SUBMODULE


def judge_name(parent: Sequence[str], name: str) -> Unsupported | bool:
    """Whether to look at entry ``name`` inside folder ``parent``: True, False (ignored) or
    an unsafe-name warning. ``parent`` has already passed this test."""
    if len(parent) >= MAX_DEPTH:
        return False
    problem = unsafe_name_problem(name)
    if problem:
        path = "/".join((*parent, _printable(name)))
        shown = f"'{path}'" if path.isprintable() else repr(path)  # NUL, newlines: escaped
        return Unsupported(path, f"{shown}: {problem}; the entry and anything below it are ignored", unsafe=True)
    return not is_ignored_name(name) or lock_kind(name) is not None  # lockfiles: read beside their spec


def judge_leaf(parts: Sequence[str], mode: int) -> Judgement | None:
    """What a non-tree entry at ``parts`` (already passed ``judge_name``) is, if anything."""
    path = "/".join(parts)
    kind = stat.S_IFMT(mode)
    if mode == MODE_SUBMODULE:
        if affects_layout(path, kind="dir"):
            return Unsupported(
                path,
                f"{path} is a submodule; submodules are not read: commit the environment files into this repository",
            )
        return None
    if kind == MODE_SYMLINK:
        if _link_could_matter(path, parts[-1]):
            return Unsupported(
                path,
                f"{path} is a symbolic link; links in Git sources are not followed: commit the file or folder itself",
            )
        return None
    if stat.S_ISREG(mode) and (is_spec_name(parts[-1]) or lock_kind(parts[-1]) is not None):
        return Candidate(path)
    return None


def _link_could_matter(path: str, name: str) -> bool:
    """A link named like an environment file, or without extension (so perhaps a folder),
    where such a file or folder could hold an environment. ``docs/latest.md`` is quiet."""
    if is_spec_name(name):
        return affects_layout(path, kind="file")
    return "." not in name and affects_layout(path, kind="dir")


def judge_path(parts: Sequence[str], mode: int) -> Judgement | None:
    """``judge_name`` on every component, then ``judge_leaf``: what a full tree walk would
    decide for this leaf. Used on the entries ``tree_changes`` reports."""
    for index, name in enumerate(parts):
        verdict = judge_name(parts[:index], name)
        if verdict is not True:
            return verdict or None
    return judge_leaf(parts, mode)


def split_path(path: bytes) -> tuple[str, ...]:
    """Tree path bytes to components; names that are not UTF-8 keep their bytes as
    surrogates so they never compare equal to a real name."""
    return tuple(path.decode("utf-8", "surrogateescape").split("/"))


# --- refs ---------------------------------------------------------------------------------


def ref_glob(pattern: str) -> re.Pattern[str]:
    """A regex for a ref glob: ``*`` matches any characters, '/' included, as in a refspec."""
    return re.compile("".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern)))


def glob_prefix(pattern: str) -> str:
    """The literal start of a glob, for servers that filter refs by prefix."""
    return pattern.split("*", 1)[0]


def matching_refs(refs: Mapping[str, str], patterns: Iterable[str]) -> dict[str, str]:
    """The refs whose name matches any of ``patterns``, sorted by name."""
    regexes = [ref_glob(p) for p in patterns]
    return {name: sha for name, sha in sorted(refs.items()) if any(r.fullmatch(name) for r in regexes)}


# --- credentials --------------------------------------------------------------------------

_HTTP_USERINFO = re.compile(r"(?i)\b(https?://)[^/@\s]*@")
_OTHER_PASSWORD = re.compile(r"\b([a-z][a-z0-9+.-]*://[^/:@\s]*):[^/@\s]*@", re.IGNORECASE)


MIN_SECRET_LENGTH = 4  # shorter strings are not searched for: they would garble any text


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without credentials: every secret, any user info of http(s) URLs (a token
    may be the user name), and the password part of other URLs, become ``***``."""
    for secret in sorted((s for s in secrets if len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _HTTP_USERINFO.sub(r"\1***@", text)
    return _OTHER_PASSWORD.sub(r"\1:***@", text)


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """(URL without user info, user, password) for http(s) URLs; others are returned as-is."""
    match = re.match(r"(?i)(https?://)([^/@\s]*)@(.*)$", url)
    if not match:
        return url, None, None
    scheme, userinfo, rest = match.groups()
    user, sep, password = userinfo.partition(":")
    return scheme + rest, unquote(user) or None, unquote(password) if sep else None


# --- backoff ------------------------------------------------------------------------------


def retry_delay(failures: int, interval: float) -> float:
    """Seconds between attempts after ``failures`` consecutive failures: the poll interval,
    doubling per failure, at most ``MAX_BACKOFF_FACTOR`` intervals."""
    return min(2 ** max(failures - 1, 0), MAX_BACKOFF_FACTOR) * interval


def may_retry(failures: int, interval: float, since_failure: float) -> bool:
    """Whether a read ``since_failure`` seconds after the last failure may try again.

    Half an interval of slack: a caller polling every ``interval`` seconds arrives a
    little early or late, and must not lose a whole extra interval for it.
    """
    return since_failure >= retry_delay(failures, interval) - interval / 2
