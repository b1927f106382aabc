"""Where environments live inside a source: relative path → environment, pure rules.

Pure: standard library and the model only, no IO. Used by the directory source, its
watcher and any source that lists files (a Git tree), so every source reads the same
layout the same way.

Paths are relative to the source root, ``/``-separated. The rules, in order:

* **Ignored, silently:** any path with a hidden component (``.git/``, ``.github/``,
  ``.foo.yaml.swp``, ``.#foo.yaml``; but not ``..yaml``, which is no dotfile but a
  mistyped environment file, reported below); editor and tool leftovers (``*~``, ``#*#``,
  ``*.swp``, ``*.swx``, ``*.tmp``, ``*.part``, ``*.bak``, ``*.orig``, ``*.rej``, vim's
  ``4913`` probe); ``condaops.yaml|yml`` and ``README*`` anywhere; conda-lock outputs
  (``conda-lock.yml``, ``*.conda-lock.yml``); anything not ending in ``.yaml``/``.yml``
  (lowercase); paths deeper than ``MAX_DEPTH`` components.
* ``<name>.yaml`` in the root → ``<default_namespace>/<name>``.
* ``<ns>/<name>.yaml`` → ``<ns>/<name>``: the first folder is the namespace.
* ``<ns>/<name>/environment.yaml`` → ``<ns>/<name>``.
* ``<name>/environment.yaml`` (a top-level folder holding an environment file) →
  ``<default_namespace>/<name>``. Nobody means an environment called "environment",
  and one-folder-per-environment is the most common flat layout; the folder still acts
  as a namespace for its other ``*.yaml`` files.
* ``environment.yaml`` directly in the root has no name → rejected (``LayoutUnsupported``).
* Other ``*.yaml`` inside an environment folder (``<ns>/<name>/notes.yaml``) are its
  companions → ignored.
* ``environment.yaml`` one level deeper (``<a>/<b>/<c>/environment.yaml``) clearly meant
  an environment that this layout cannot name → rejected (``LayoutUnsupported``).
* A namespace or name refused by ``model.name_problem`` → rejected (``NameInvalid``), with a
  message naming the file and the rule it breaks (``a..b.yaml``, ``..yaml``, spaces,
  capitals are fine but not spaces, more than 128 characters, invisible or reordering
  Unicode such as U+200B and U+202E, shown escaped).
* Two files giving the same ``<ns>/<name>`` → one ``DuplicateEnvironment`` rejection
  naming every file, and none of them becomes desired.
* ``condaops-policy.yaml`` (or ``.yml``) in the root or directly in a namespace folder is
  a policy file (``policy_scope``), never an environment; deeper, it is ignored.

Committed lockfiles (``lock_kind``) sit beside their environment file and make it
*locked*: ``<ns>/<name>.conda-lock.yml`` or ``<ns>/<name>.pixi.lock`` next to
``<ns>/<name>.yaml`` (in the root, ``<name>.conda-lock.yml``), and ``conda-lock.yml`` or
``pixi.lock`` inside an environment's folder (``<ns>/<name>/``, ``<name>/``).
``pair_locks`` matches them with environment files by ``<ns>/<name>``:

* a lockfile whose environment has no file → ``LockWithoutSpec`` (no environment to
  attach it to, so the rejection names no environment);
* two lockfiles for one environment → ``LockAmbiguous``: the environment is rejected
  until one is removed (the current build stays linked);
* deeper or unnamed lockfiles (``conda-lock.yml`` in the root) → ``LockWithoutSpec``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from condaops.reconciler.lockfiles import LOCK_AMBIGUOUS, LOCK_WITHOUT_SPEC
from condaops.reconciler.model import EnvRef, Rejection
from condaops.reconciler.names import name_problem, shown
from condaops.reconciler.reasons import Reason

SPEC_SUFFIXES = (".yaml", ".yml")
ENV_FILE_STEM = "environment"
MAX_DEPTH = 4  # components: <a>/<b>/<c>/environment.yaml, the deepest path looked at

POLICY_FILE_NAMES = ("condaops-policy.yaml", "condaops-policy.yml")

INVALID_NAME = Reason.NAME_INVALID  # the path gives no valid namespace or environment name
LAYOUT_UNSUPPORTED = Reason.LAYOUT_UNSUPPORTED
DUPLICATE_ENVIRONMENT = Reason.DUPLICATE_ENVIRONMENT

CONDA_LOCK, PIXI_LOCK = "conda-lock", "pixi-lock"  # lockfile kinds, as build.lock names them
_FOLDER_LOCKS = {"conda-lock.yml": CONDA_LOCK, "conda-lock.yaml": CONDA_LOCK, "pixi.lock": PIXI_LOCK}
_NAMED_LOCKS = {".conda-lock.yml": CONDA_LOCK, ".conda-lock.yaml": CONDA_LOCK, ".pixi.lock": PIXI_LOCK}

_IGNORED_NAME = re.compile(
    r"""^(?:
        \.(?!\.).*                          # hidden, incl. .*.swp and .#lock files (not ..x)
      | .*~ | \#.*\# | 4913                 # emacs/vim backups and vim's write probe
      | .*\.(?:swp|swx|tmp|part|bak|orig|rej)
      | condaops\.ya?ml
      | readme(?:\..*)?
      | (?:.*\.)?conda-lock\.ya?ml
    )$""",
    re.VERBOSE | re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Placement:
    """A file that names an environment."""

    ref: EnvRef
    path: str


@dataclass(frozen=True, slots=True)
class Misplaced:
    """A file that looks like an environment but cannot be one, and why."""

    ref: EnvRef | None
    path: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Layout:
    """The environments of one listing: unique placements plus rejections."""

    placements: tuple[Placement, ...]
    rejections: tuple[Rejection, ...]
    duplicates: tuple[Placement, ...]  # files of refs claimed twice (content still counts)


def is_ignored_name(name: str) -> bool:
    """Whether a single file or folder name is never part of the desired state."""
    return bool(_IGNORED_NAME.match(name))


def lock_kind(name: str) -> str | None:
    """``conda-lock`` or ``pixi-lock`` when a file name is a lockfile's, else None."""
    if name in _FOLDER_LOCKS:
        return _FOLDER_LOCKS[name]
    for suffix, kind in _NAMED_LOCKS.items():
        if name.endswith(suffix) and len(name) > len(suffix) and not name.startswith("."):
            return kind
    return None


def is_spec_name(name: str) -> bool:
    """Whether a file name could be an environment file (right suffix, not ignored)."""
    return name.endswith(SPEC_SUFFIXES) and not is_ignored_name(name)


def policy_scope(path: str) -> str | None:
    """For a policy file, the namespace it governs (``""``: the source root, every
    namespace); None for any other path."""
    parts = path.split("/")
    if parts[-1] not in POLICY_FILE_NAMES or len(parts) > 2 or any(is_ignored_name(p) for p in parts):
        return None
    return parts[0] if len(parts) == 2 else ""


@functools.lru_cache(maxsize=1 << 16)
def classify(path: str, *, default_namespace: str) -> Placement | Misplaced | None:
    """What the file at ``path`` is: an environment, a rejected one, or nothing (None).
    Kept for the paths seen last: every re-scan of a tree asks again for each file."""
    parts = tuple(path.split("/"))
    if len(parts) > MAX_DEPTH or any(is_ignored_name(p) for p in parts):
        return None
    if parts[-1] in POLICY_FILE_NAMES:
        return None
    if not is_spec_name(parts[-1]):
        return None
    stem = parts[-1].rsplit(".", 1)[0]
    is_env_file = stem == ENV_FILE_STEM
    if len(parts) == 1:
        if is_env_file:
            return _misplaced(
                path, "has no environment name: rename it <name>.yaml or move it to <name>/environment.yaml"
            )
        return _place(path, default_namespace, stem)
    if len(parts) == 2:
        if is_env_file:
            return _place(path, default_namespace, parts[0])
        return _place(path, parts[0], stem)
    if len(parts) == 3:
        return _place(path, parts[0], parts[1]) if is_env_file else None
    if is_env_file:
        return _misplaced(path, "is nested too deep: environments are <ns>/<name>.yaml or <ns>/<name>/environment.yaml")
    return None


def arrange(paths: Iterable[str], *, source: str, default_namespace: str) -> Layout:
    """Place every file of a listing; refs claimed by several files are rejected."""
    claims: dict[EnvRef, Placement | list[str]] = {}  # a list only for a ref claimed twice
    rejections: list[Rejection] = []
    for path in sorted(set(paths)):
        found = classify(path, default_namespace=default_namespace)
        if isinstance(found, Placement):
            before = claims.get(found.ref)
            if before is None:
                claims[found.ref] = found
            elif isinstance(before, Placement):
                claims[found.ref] = [before.path, path]
            else:
                before.append(path)
        elif isinstance(found, Misplaced):
            rejections.append(Rejection(found.ref, source, found.path, found.reason, found.message))
    placements: list[Placement] = []
    duplicates: list[Placement] = []
    for ref, files in sorted(claims.items(), key=lambda item: (item[0].namespace, item[0].name)):
        if isinstance(files, Placement):
            placements.append(files)
            continue
        duplicates.extend(Placement(ref, f) for f in files)
        message = f"environment {ref} is defined by {', '.join(files)}: keep one file and remove the others"
        rejections.append(Rejection(ref, source, files[0], DUPLICATE_ENVIRONMENT, message))
    return Layout(tuple(placements), tuple(rejections), tuple(duplicates))


@dataclass(frozen=True, slots=True)
class LockPlacement:
    """A lockfile and the environment it locks."""

    ref: EnvRef
    path: str
    kind: str


def classify_lock(path: str, *, default_namespace: str) -> LockPlacement | Misplaced | None:
    """What the file at ``path`` is as a lockfile: placed, misplaced, or none (None)."""
    parts = tuple(path.split("/"))
    kind = lock_kind(parts[-1])
    if kind is None or len(parts) > 3 or any(p.startswith(".") for p in parts):
        return None
    if parts[-1] in _FOLDER_LOCKS:  # conda-lock.yml / pixi.lock: the folder names the environment
        if len(parts) == 1:
            return _orphan(path, "is in the source root, where it locks no environment: name it <name>.conda-lock.yml")
        ref = (default_namespace, parts[0]) if len(parts) == 2 else (parts[0], parts[1])
    else:
        if len(parts) == 3:
            return None  # a companion file inside an environment's folder
        stem = next(parts[-1].removesuffix(s) for s in _NAMED_LOCKS if parts[-1].endswith(s))
        ref = (default_namespace, stem) if len(parts) == 1 else (parts[0], stem)
    if name_problem(ref[0]) or name_problem(ref[1]):
        return _orphan(path, "does not name a valid environment")
    return LockPlacement(EnvRef(*ref), path, kind)


def pair_locks(
    lock_paths: Iterable[str], env_refs: Iterable[EnvRef], *, source: str, default_namespace: str
) -> tuple[dict[EnvRef, LockPlacement], tuple[Rejection, ...]]:
    """Lockfiles matched with the environments (``env_refs``: every ref some environment
    file claims); rejections for lockfiles that lock nothing, or two for one environment."""
    wanted = set(env_refs)
    claims: dict[EnvRef, list[LockPlacement]] = {}
    rejections: list[Rejection] = []
    for path in sorted(set(lock_paths)):
        found = classify_lock(path, default_namespace=default_namespace)
        if isinstance(found, Misplaced):
            rejections.append(Rejection(None, source, path, found.reason, found.message))
        elif isinstance(found, LockPlacement) and found.ref not in wanted:
            message = (
                f"{path} locks {found.ref}, which has no environment file: add "
                f"{found.ref.namespace}/{found.ref.name}.yaml (or the folder's environment.yaml) or remove the lock"
            )
            rejections.append(Rejection(None, source, path, LOCK_WITHOUT_SPEC, message))
        elif isinstance(found, LockPlacement):
            claims.setdefault(found.ref, []).append(found)
    pairs: dict[EnvRef, LockPlacement] = {}
    for ref, locks in sorted(claims.items()):
        if len(locks) == 1:
            pairs[ref] = locks[0]
            continue
        names = " and ".join(lock.path for lock in locks)
        message = f"{names} both lock {ref}: keep one of them (the current build stays linked meanwhile)"
        rejections.append(Rejection(ref, source, locks[0].path, LOCK_AMBIGUOUS, message))
    return pairs, tuple(rejections)


def _orphan(path: str, message: str) -> Misplaced:
    return Misplaced(None, path, LOCK_WITHOUT_SPEC, f"{path} {message}")


def affects_layout(path: str, *, kind: Literal["file", "dir", "gone"]) -> bool:
    """Whether a change at ``path`` (relative; ``"."`` is the root) can change the layout.

    ``kind`` is what the path is now; ``"gone"`` (deleted or renamed away) may have been
    a folder, so it counts when either a file or a folder there would.
    """
    if path in ("", "."):
        return True
    parts = path.split("/")
    if any(is_ignored_name(p) and lock_kind(p) is None for p in parts):
        return False
    dir_matters = len(parts) < MAX_DEPTH
    file_matters = (
        classify(path, default_namespace="default") is not None
        or policy_scope(path) is not None
        or lock_kind(parts[-1]) is not None
    )
    if kind == "dir":
        return dir_matters
    if kind == "file":
        return file_matters
    return dir_matters or file_matters


def _place(path: str, namespace: str, name: str) -> Placement | Misplaced:
    for what, value in (("namespace", namespace), ("environment name", name)):
        problem = name_problem(value)
        if problem:
            return Misplaced(None, path, INVALID_NAME, f"{shown(path)}: {what} {problem}")
    return Placement(EnvRef(namespace, name), path)


def _misplaced(path: str, message: str) -> Misplaced:
    return Misplaced(None, path, LAYOUT_UNSUPPORTED, f"{shown(path)} {message}")


def name_warning(ref_name: str, declared: str | None) -> tuple[str, ...]:
    """A warning when a file's ``name:`` key differs from the path-derived name (the path wins)."""
    if declared is None or declared == ref_name:
        return ()
    return (f"'name: {declared}' differs from the environment name '{ref_name}' taken from the path; the path wins",)
