"""The real ``module`` commands for tests: Lmod and Tcl environment-modules in a bash.

Debian's ``lmod`` and ``environment-modules`` packages conflict (they cannot be installed
together), though their files do not overlap. Lmod is installed as a package
(``/usr/share/lmod/lmod/init/bash``); environment-modules is either installed too (on a
machine without Lmod) or unpacked from its own ``.deb`` into a folder with ``dpkg-deb
-x`` — ``.ci/run`` puts it in ``/opt/environment-modules``, ``$TEST_ENVIRONMENT_MODULES``
names another — and started the way its own ``init/bash`` starts it: ``tclsh
modulecmd.tcl bash autoinit`` defines the shell function ``module``.

* ``lmod_init()`` / ``tcl_modules_init()`` — the bash lines that define ``module``; skip
  when the tool is missing (fail instead when ``CI=true``);
* ``run_bash(script)`` — run a script in a clean bash, return (exit status, stdout, stderr).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.ci import skip_or_fail

LMOD_INIT = Path("/usr/share/lmod/lmod/init/bash")
TCL_MODULES_DEFAULT = Path("/opt/environment-modules")
MODULECMD = Path("usr/lib/x86_64-linux-gnu/modulecmd.tcl")
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


def _missing(reason: str) -> None:
    skip_or_fail(f"{reason} (.ci/run installs it)")


def lmod_init() -> str:
    """Bash lines that define Lmod's ``module``."""
    if not LMOD_INIT.is_file():
        _missing(f"Lmod is not installed ({LMOD_INIT} is missing; apt-get install lmod)")
    return f"source {LMOD_INIT}"


def tcl_modules_init() -> str:
    """Bash lines that define environment-modules' ``module`` (installed, or unpacked)."""
    roots = [Path(os.environ["TEST_ENVIRONMENT_MODULES"])] if os.environ.get("TEST_ENVIRONMENT_MODULES") else []
    roots += [Path("/"), TCL_MODULES_DEFAULT]
    tclsh = shutil.which("tclsh8.6") or shutil.which("tclsh")
    found = next((root / MODULECMD for root in roots if (root / MODULECMD).is_file()), None)
    if found is None or tclsh is None:
        _missing(
            "environment-modules is not available: install it, or unpack it beside Lmod with "
            f"`apt-get download environment-modules && dpkg-deb -x environment-modules_*.deb {TCL_MODULES_DEFAULT}`"
        )
    return f'eval "$({tclsh} {found} bash autoinit)"'


def run_bash(script: str, *, timeout: float = 120) -> tuple[int, str, str]:
    """Run ``script`` in a bash with a small, known environment."""
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": BASE_PATH, "LANG": "C.UTF-8", "TERM": "dumb"}
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr
