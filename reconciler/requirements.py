"""Dependency lines of environment files: conda match specs and ``pip:`` requirements.

``normalize_match_spec`` gives the canonical text of a conda match spec (what the spec
hash sees), ``normalize_pip`` the canonical name and line of a ``pip:`` entry (PEP 508,
hashes kept), refusing what a build cannot honour (``Unsupported``: editable installs,
local paths, ``-r`` files, index options, URLs with credentials). Pure; used by
``specfile`` while it walks a file.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from rattler import MatchSpec
from rattler.exceptions import InvalidMatchSpecError

INDEX_HINT = "configure pip.index_url / pip.extra_index_urls in condaops.yaml instead"
_CREDENTIALS = re.compile(r"\$\{?\w|/t/[^/]+/")  # ${VAR}, $VAR, anaconda.org /t/<token>/
_BUILD = re.compile(r"[A-Za-z0-9_.+*]+")
_OPERATOR_SPACE = re.compile(r"(===|==|>=|<=|!=|~=|[<>=])\s+")
_LIST_SPACE = re.compile(r"\s*([,|])\s*")
CONDA_NAME = re.compile(r"[^\s<>=!~]+")
_HASH = re.compile(r"--hash[=\s](sha256|sha384|sha512):([0-9a-fA-F]+)")
_HASH_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
_URL_SCHEMES = frozenset({"https", "http", "git+https", "git+http", "git+ssh", "git+git"})
LOCAL = re.compile(r"[./~\\]|file:|[A-Za-z]:\\")  # how local paths start
_INDEX_OPTIONS = {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--no-index"}


class Unsupported(ValueError):
    """A pip line that is well-formed but that condaops refuses to build."""


# Pure and called for every dependency of every file; most lines repeat across files.
@functools.lru_cache(maxsize=16384)
def normalize_match_spec(text: str) -> str:
    """Canonical text for a conda match spec; raises ``ValueError`` if it is invalid.

    Whitespace is normalized to one space after the name and none inside a version
    constraint (``python >= 3.8, < 3.9`` → ``python >=3.8,<3.9``, ``pandas=2.0`` →
    ``pandas =2.0``); the package name is lower-cased; operators, builds, brackets and
    channel prefixes stay as written. If rattler would read the result differently from
    the input, the input (whitespace collapsed) is returned instead.
    """
    raw = " ".join(text.split())
    parsed = _parse_match_spec(raw)
    canonical = _canonical_match_spec(raw)
    try:
        same = str(MatchSpec(canonical)) == str(parsed)
    except InvalidMatchSpecError:
        same = False
    return canonical if same else raw


def _parse_match_spec(raw: str) -> MatchSpec:
    if not raw:
        raise ValueError("it is empty")
    body = raw.split("[", 1)[0].rpartition("::")[2]
    if "/" in body or body.endswith((".conda", ".tar.bz2")):
        raise ValueError("package URLs and paths are not supported; name the package")
    try:
        parsed = MatchSpec(raw)
    except InvalidMatchSpecError as exc:
        raise ValueError(str(exc).splitlines()[0]) from exc
    # rattler's lenient parser turns stray words into a build string ("foo 1 2 3").
    if parsed.build is not None and not _BUILD.fullmatch(parsed.build):
        raise ValueError(f"'{parsed.build}' is not a build string (letters, digits, '_', '.', '+' and '*' globs)")
    return parsed


def _canonical_match_spec(raw: str) -> str:
    cut = raw.split("[", 1)[0].rfind("::")
    prefix, body = (raw[: cut + 2], raw[cut + 2 :]) if cut >= 0 else ("", raw)
    core, bracket, rest = body.partition("[")
    core = _OPERATOR_SPACE.sub(r"\1", _LIST_SPACE.sub(r"\1", core.strip()))
    name = CONDA_NAME.match(core)
    if name is None:
        return raw
    text = " ".join([name.group(0).lower(), *core[name.end() :].split()])
    return f"{prefix.strip()}{text}{bracket}{rest}"


@functools.lru_cache(maxsize=4096)  # pure; pip lines repeat across files
def normalize_pip(text: str) -> tuple[str, str]:
    """(canonical name, canonical line) for one pip line; raises ValueError/Unsupported."""
    _reject_pip_options(text)
    if LOCAL.match(text):
        raise Unsupported(_LOCAL_MESSAGE)
    if re.match(r"[a-z]+\+[a-z]+://", text):
        return _bare_vcs(text)
    if re.match(r"https?://", text):
        raise ValueError("a bare URL has no package name; write 'name @ URL'")
    requirement, *options = re.split(r"\s+(?=--)", text)
    hashes = sorted(_check_hash(option) for option in options)
    try:
        req = Requirement(requirement)
    except InvalidRequirement as exc:
        raise ValueError(str(exc).splitlines()[0]) from exc
    if req.url:
        _check_pip_url(req.url)
    req.name = canonicalize_name(req.name)
    req.extras = {canonicalize_name(extra) for extra in req.extras}
    return req.name, " ".join([str(req), *hashes])


_LOCAL_MESSAGE = (
    "local paths are not supported: a build sees only the environment file; "
    "publish the package or reference it as 'name @ git+https://…'"
)


def _reject_pip_options(text: str) -> None:
    if not text.startswith("-"):
        return
    flag = text.split()[0].split("=", 1)[0]
    if flag == "--editable" or flag.startswith("-e"):
        raise Unsupported(
            "editable installs (-e) are not supported: environments are "
            "immutable; use 'name @ git+https://…' or publish the package"
        )
    if flag in ("-r", "--requirement", "-c", "--constraint"):
        raise Unsupported(
            "requirement files (-r/-c) are not supported; list the requirements in the pip: section itself"
        )
    if {word.split("=", 1)[0] for word in text.split()} & _INDEX_OPTIONS:
        raise Unsupported(f"pip index options are not supported here; {INDEX_HINT}")
    raise Unsupported(f"pip option '{flag}' is not supported in environment files; remove it")


def _bare_vcs(text: str) -> tuple[str, str]:
    scheme = text.split("://", 1)[0]
    if not scheme.startswith("git+"):
        raise Unsupported(f"'{scheme}' references are not supported; use git+https")
    if any(c.isspace() for c in text):
        raise ValueError("a VCS URL cannot contain spaces")
    _check_pip_url(text)
    egg = re.search(r"[#&]egg=([A-Za-z0-9._-]+)", text)
    return (canonicalize_name(egg.group(1)) if egg else text), text


def _check_pip_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme in ("file", "git+file") or not parts.scheme:
        raise Unsupported(_LOCAL_MESSAGE)
    if parts.scheme not in _URL_SCHEMES:
        raise ValueError(f"URL scheme '{parts.scheme}' is not supported (use https or git+https)")
    if carries_credentials(url):
        raise Unsupported(
            "the URL carries credentials or a ${VAR} placeholder; credentials belong in condaops configuration"
        )


def carries_credentials(url: str) -> bool:
    try:
        password = urlsplit(url).password
    except ValueError:  # e.g. an unbalanced '[': not a URL, so no password in it
        password = None
    return bool(_CREDENTIALS.search(url) or password)


def _check_hash(option: str) -> str:
    found = _HASH.fullmatch(option.strip())
    if not found:
        word = option.split()[0].split("=", 1)[0]
        if word == "--hash":
            raise ValueError(f"'{option}' is not '--hash=sha256:<hex digest>'")
        raise Unsupported(f"pip option '{word}' is not supported in environment files")
    algorithm, digest = found.groups()
    if len(digest) != _HASH_LENGTH[algorithm]:
        raise ValueError(
            f"the {algorithm} digest has {len(digest)} hex digits, not {_HASH_LENGTH[algorithm]}; copy the full hash"
        )
    return f"--hash={algorithm}:{digest.lower()}"
