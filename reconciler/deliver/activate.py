"""What ``conda activate`` sets beyond ``PATH`` and ``CONDA_PREFIX``, captured once per build.

Kernels and modulefiles can only hold fixed variables (a kernel.json has ``env``, a
modulefile ``pushenv`` and ``prepend_path``), like an image's config. So, as for images
(``publish.activation``, the one implementation), once per build on the host that writes
the deliveries: the packages' ``etc/conda/env_vars.d/*.json`` are read, and their
``etc/conda/activate.d/*.sh`` scripts are sourced one by one by ``bash`` in a clean
environment holding what activation set up so far (``CONDA_PREFIX`` is the build's own
prefix), each for at most ``publish.activation.SCRIPT_SECONDS``. The variables they add or
change are kept; entries they put in front of ``PATH`` are kept as entries to prepend.
``plan`` relocates the build's prefix to where each delivery runs it from (the stable link,
or the build's prefix for a pinned one).

What a script does besides that (functions, aliases, files, values taken from the host at
activation time, entries appended to or removed from ``PATH``) is not carried; a script that
fails or runs too long is skipped, logged and listed in ``skipped``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from condaops.reconciler.publish.activation import ACTIVATE_D, ENV_VARS_D, activation, env_vars_file

BASE_PATH = "/usr/local/bin:/usr/bin:/bin"  # what the scripts find after the environment's bin/
# Set by the delivery itself (or by conda's shell functions, which no delivery has).
_OWN = frozenset({"PATH", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "CONDA_SHLVL", "CONDA_PROMPT_MODIFIER"})
_CACHED_BUILDS = 1024
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # what a kernel's env and a modulefile can set
log = logging.getLogger("condaops.deliver")


@dataclass(frozen=True, slots=True)
class Captured:
    """What activating one build adds: variables (values hold the build's prefix), ``PATH``
    entries to put before ``<prefix>/bin``, and the scripts that could not be applied."""

    variables: tuple[tuple[str, str], ...] = ()
    path: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()


def has_hooks(prefix: Path) -> bool:
    """Whether the prefix has anything for ``capture`` to read (cheap: two folder checks)."""
    return (prefix / ENV_VARS_D).is_dir() or (prefix / ACTIVATE_D).is_dir()


@lru_cache(maxsize=_CACHED_BUILDS)
def capture(build_id: int, prefix: str, variables: tuple[tuple[str, str], ...], conda_name: str) -> Captured:
    """Activate build ``build_id`` installed at ``prefix`` (with the spec's ``variables``);
    cached per build: a build's prefix does not change once it is done."""
    if not has_hooks(Path(prefix)):
        return Captured()
    start = {"PATH": f"{prefix}/bin:{BASE_PATH}", "CONDA_PREFIX": prefix, "CONDA_DEFAULT_ENV": conda_name}
    got = activation(Path(prefix), prefix, {**start, **dict(variables)})
    from_files = files_variables(Path(prefix))
    spec = dict(variables)
    path: tuple[str, ...] = ()
    kept = []
    for key, value in got.variables:
        if key == "PATH":
            path = prepended(value, start["PATH"])
        elif key in spec and from_files.get(key) == value:
            continue  # conda: the spec's variables win over env_vars.d (a script may still change them)
        elif key not in _OWN and _NAME.fullmatch(key):  # not exported functions (BASH_FUNC_f%%)
            kept.append((key, value))
    for script in got.skipped:
        log.warning("activation_script_skipped build=%s script=%s (failed, exited or ran too long)", build_id, script)
    return Captured(tuple(kept), path, tuple(got.skipped))


def files_variables(prefix: Path) -> dict[str, str]:
    """The ``env_vars.d`` files' variables, merged in name order."""
    found: dict[str, str] = {}
    for path in sorted((prefix / ENV_VARS_D).glob("*.json")):
        found |= env_vars_file(path)
    return found


def prepended(after: str, before: str) -> tuple[str, ...]:
    """The entries ``after`` has in front of ``before`` (a ``PATH`` a script changed)."""
    at = after.find(before)
    if at <= 0:
        return ()
    return tuple(entry for entry in after[:at].split(":") if entry)
