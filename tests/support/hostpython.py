"""A runnable Python 3 conda package, made at test time from the host interpreter.

There is no runnable Python 3 conda package in ``../shared/realdata`` (conda-forge's
``python`` there is a stub; defaults' 2.7 runs but uv does not support 2.7), so pip/uv
tests package the interpreter that runs the tests, the way ``python -m venv --copies``
builds an environment:

* ``bin/python3.X`` — a copy of the host interpreter binary;
* ``bin/python3`` and ``bin/python`` — two-line launchers that exec ``python3.X`` by its
  path inside the prefix (so ``sys.executable`` stays inside the prefix);
* ``pyvenv.cfg`` at the prefix root — ``home`` points at the host's ``bin`` folder, so
  the copied binary finds the host's standard library, while ``sys.prefix`` is the
  environment and site-packages is ``<prefix>/lib/python3.X/site-packages``.

Why a copy, not a symlink: ``tests/support/channels.write_package`` (the one package
writer of the test suite) writes regular files only (``path_type: hardlink``). A copy
works when the interpreter finds libpython by an absolute RUNPATH or links it
statically (pyenv, Debian, conda); ``host_python_runs_when_copied`` checks that before
a test relies on it. Should write_package learn symlinks, ``bin/python3.X`` can become
a ``softlink`` to the host binary and that check can go.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from rattler import Subdir

from tests.support.channels import index_channel, write_package

BUILD = "0_host"


def host_interpreter() -> Path:
    """The real interpreter binary behind ``sys.executable`` (outside any venv)."""
    return Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))


def host_python_version() -> str:
    """``3.11.7``: the version the package is published as."""
    return platform.python_version()


def host_subdir() -> str:
    """The conda subdir of this machine (``linux-64``, ``osx-arm64``...)."""
    return str(Subdir.current())


def _short_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def package_files() -> dict[str, bytes]:
    """The payload of the host-python package, keyed by path inside the prefix."""
    short = _short_version()
    launcher = f'#!/bin/sh\nexec "$(dirname "$0")/python{short}" "$@"\n'.encode()
    cfg = (
        f"home = {host_interpreter().parent}\ninclude-system-site-packages = false\nversion = {host_python_version()}\n"
    ).encode()
    return {
        f"bin/python{short}": host_interpreter().read_bytes(),
        "bin/python3": launcher,
        "bin/python": launcher,
        "pyvenv.cfg": cfg,
        # conda packages carry no empty folders; a file makes site-packages exist.
        f"lib/python{short}/site-packages/README.txt": b"Packages installed by pip/uv go here.\n",
    }


def write_host_python(channel_dir: Path) -> Path:
    """Write ``python-<host version>-0_host.conda`` into ``channel_dir`` (not indexed)."""
    return write_package(
        channel_dir,
        "python",
        host_python_version(),
        build=BUILD,
        files=package_files(),
        fmt="conda",
        subdir=host_subdir(),
        has_prefix=(),  # nothing to rewrite; skip scanning the binary
        license="PSF-2.0",
    )


def make_host_python_channel(root: Path) -> Path:
    """A channel at ``root`` holding only the host-python package, indexed."""
    write_host_python(root)
    return index_channel(root)


def host_python_runs_when_copied() -> str | None:
    """None if a copied host interpreter runs as a venv; otherwise why not (for skips)."""
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp)
        for rel, data in package_files().items():
            target = prefix / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            if rel.startswith("bin/"):
                target.chmod(0o755)
        try:
            out = subprocess.run(
                [str(prefix / "bin" / "python"), "-c", "import sys; print(sys.prefix)"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except OSError as exc:
            return f"the copied host interpreter cannot start: {exc}"
        if out.returncode != 0 or Path(out.stdout.strip()).resolve() != prefix.resolve():
            return f"the copied host interpreter does not run as a venv: {out.stderr.strip()[-500:]}"
    return None
