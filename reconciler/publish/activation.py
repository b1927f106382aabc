"""The variables an activated environment has, for an image that has no shell to activate it.

``conda activate`` puts ``<prefix>/bin`` first on ``PATH``, sets ``CONDA_PREFIX``, exports
the environment's variables (the spec's ``variables:`` and the packages'
``etc/conda/env_vars.d/*.json``), then sources the packages' ``etc/conda/activate.d/*.sh``
scripts. An image's config can only hold fixed variables, so at publish time:

* ``env_vars.d`` files are read as they are (JSON objects of strings);
* each ``activate.d/*.sh`` script (in name order, as conda runs them) is run once, on the
  publishing host, by ``bash`` (else ``sh``) in an empty environment holding what
  activation set up to that point, with the *build* prefix as ``CONDA_PREFIX``, for at most
  ``SCRIPT_SECONDS``; the variables it adds or changes are kept, with the build prefix
  replaced by the image prefix.

What a script does besides exporting variables (functions, aliases, files it writes,
values taken from the host, such as its name or the time) does not carry into the image; a
script that fails or runs too long is skipped and named in ``skipped``. These scripts are
package code run on the publishing host with the service's rights, as they would be by
anyone activating the environment there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT_SECONDS = 10.0
ENV_VARS_D = "etc/conda/env_vars.d"
ACTIVATE_D = "etc/conda/activate.d"
# Set by the shell itself, not by the scripts.
_SHELL_OWN = frozenset({"PWD", "OLDPWD", "SHLVL", "_", "HOME"})


@dataclass(frozen=True, slots=True)
class Activation:
    """Variables to add to the image's environment, in order, and scripts not applied."""

    variables: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def activation(prefix: Path, image_prefix: str, start: Mapping[str, str]) -> Activation:
    """What activating ``prefix`` adds to ``start`` (the image's variables so far, with
    ``CONDA_PREFIX`` and ``PATH`` already for ``image_prefix``): see the module doc."""
    found: dict[str, str] = {}
    for path in sorted((prefix / ENV_VARS_D).glob("*.json")):
        found |= env_vars_file(path)
    scripts = sorted((prefix / ACTIVATE_D).glob("*.sh"))
    if not scripts:
        return Activation(list(found.items()))
    env = {**start, **found}
    host_env = {k: relocate(v, image_prefix, str(prefix)) for k, v in env.items()}
    skipped = []
    for script in scripts:
        after = run_script(script, host_env)
        if after is None:
            skipped.append(f"{ACTIVATE_D}/{script.name}")
            continue
        for key, value in changed(host_env, after).items():
            found[key] = relocate(value, str(prefix), image_prefix)
        host_env = after
    return Activation(list(found.items()), skipped)


def env_vars_file(path: Path) -> dict[str, str]:
    """An ``env_vars.d`` file: a JSON object of names to string values (others ignored)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, str)}


def run_script(script: Path, env: Mapping[str, str]) -> dict[str, str] | None:
    """The environment after sourcing ``script`` in ``env``; None if the script ended the
    shell (``exit``) or hung. Its exit status is ignored, as conda ignores it."""
    shell, env_tool = shutil.which("bash") or "/bin/sh", shutil.which("env") or "/usr/bin/env"
    command = '. "$1" >/dev/null 2>&1 </dev/null; "$2" -0'
    with tempfile.TemporaryDirectory(prefix="activate-") as home:
        try:
            done = subprocess.run(
                [shell, "-c", command, "activate", str(script), env_tool],
                env={**env, "HOME": home},
                cwd=home,
                capture_output=True,
                timeout=SCRIPT_SECONDS,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
    if not done.stdout:
        return None
    pairs = (item.partition("=") for item in done.stdout.decode("utf-8", "replace").split("\0") if "=" in item)
    return {k: v for k, _, v in pairs if k not in _SHELL_OWN}


def changed(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, str]:
    """Variables ``after`` adds or changes (removals cannot be expressed in an image)."""
    return {k: v for k, v in after.items() if before.get(k) != v}


def relocate(value: str, old: str, new: str) -> str:
    return value.replace(old, new) if old else value


def merge(*parts: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Variables in order, a later value replacing an earlier one in its first position."""
    out: dict[str, str] = {}
    for part in parts:
        out.update(part)
    return list(out.items())
