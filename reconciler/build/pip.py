"""The ``pip:`` dependencies of an environment: locked and installed with uv.

Locking runs ``uv pip compile --format pylock.toml --generate-hashes`` for one conda
platform and one Python version (the solved ``python`` record's), and reads back one
``PipLock`` (name, version, artifact URL, sha256) per package. Installing writes those
locks as hashed direct-URL requirements (``name @ url --hash=sha256:...``) and runs
``uv pip install --no-deps --require-hashes`` against the environment's own interpreter,
so the lock alone says exactly which file goes in: no index lookup, no resolution.

uv runs as a subprocess with ``--no-config`` and without the ``UV_*``/``PIP_*`` variables
of the calling process (except a few transport-only ones such as ``UV_HTTP_TIMEOUT``), so
a user's or a host's uv/pip configuration never changes a build; indexes come from
``PipSettings`` only.

Errors: uv failures become ``PipError`` (stalled: fix the requirement) carrying the tail
of uv's stderr, which names the requirement when uv does; an unreachable index becomes
``ChannelError`` (transient) and a run past ``timeout`` ``BuildTimeoutError``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from condaops.config.settings import PipSettings
from condaops.reconciler.errors import BuildTimeoutError, ChannelError, PipError

if TYPE_CHECKING:
    from rattler import PackageRecord

# conda platform -> uv's --python-platform target. uv's plain linux targets assume
# manylinux_2_28-compatible glibc, which matches what conda-forge builds for today.
UV_PLATFORMS: dict[str, str] = {
    "linux-64": "x86_64-unknown-linux-gnu",
    "linux-aarch64": "aarch64-unknown-linux-gnu",
    "osx-64": "x86_64-apple-darwin",
    "osx-arm64": "aarch64-apple-darwin",
    "win-64": "x86_64-pc-windows-msvc",
    "win-arm64": "aarch64-pc-windows-msvc",
    "win-32": "i686-pc-windows-msvc",
}

# Fragments of uv's stderr that mean "the index could not be reached" (retry later),
# as opposed to "the requirement cannot be satisfied" (a human must act).
_NETWORK_MARKERS = (
    "error sending request",
    "tcp connect error",
    "dns error",
    "connection refused",
    "connection reset",
    "operation timed out",
    "http status server error",
)
# uv's words when --offline finds nothing usable in its cache.
_OFFLINE_MISS_MARKERS = ("network was disabled", "network connectivity is disabled")
_STDERR_TAIL = 2000


@dataclass(frozen=True, slots=True, order=True)
class PipLock:
    """One locked Python distribution: the exact artifact and its sha256."""

    name: str
    version: str
    url: str
    sha256: str

    def requirement(self) -> str:
        """This lock as a hashed direct-URL requirement line (pip/uv syntax)."""
        return f"{self.name} @ {self.url} --hash=sha256:{self.sha256}"


# --- pure helpers --------------------------------------------------------------------


def uv_platform(conda_platform: str) -> str:
    """uv's ``--python-platform`` for a conda platform; PipError when uv has none."""
    try:
        return UV_PLATFORMS[conda_platform]
    except KeyError:
        supported = ", ".join(sorted(UV_PLATFORMS))
        raise PipError(
            f"pip: dependencies cannot be locked for platform '{conda_platform}': "
            f"uv supports {supported}; remove the platform or the pip: section"
        ) from None


def python_version(records: Iterable[PackageRecord]) -> str | None:
    """The version of the ``python`` record among solved conda records, if any."""
    for record in records:
        if record.name.normalized == "python":
            return str(record.version)
    return None


def index_args(settings: PipSettings) -> list[str]:
    """uv index options for ``settings`` (order kept: the first index wins)."""
    args: list[str] = []
    if settings.index_url:
        args += ["--index-url", settings.index_url]
    for url in settings.extra_index_urls:
        args += ["--extra-index-url", url]
    for link in settings.find_links:
        args += ["--find-links", link]
    return args


def parse_pylock(text: str, *, base: Path | None = None) -> list[PipLock]:
    """``PipLock``s from a ``pylock.toml`` written by ``uv pip compile`` (sorted by name).

    uv lists only the artifacts that fit the target platform, so the first wheel (or
    else the sdist, or a direct archive) is the one to install. ``path`` entries are
    made absolute against ``base`` (the folder of the pylock file).
    """
    data = tomllib.loads(text)
    return sorted(_lock_from_package(pkg, base) for pkg in data.get("packages", []))


def _lock_from_package(pkg: dict[str, Any], base: Path | None) -> PipLock:
    name, version = pkg["name"], str(pkg.get("version", ""))
    artifact = (pkg.get("wheels") or [None])[0] or pkg.get("sdist") or pkg.get("archive")
    if artifact is None:
        kind = "a VCS checkout" if "vcs" in pkg else "a local directory" if "directory" in pkg else "no file"
        raise PipError(
            f"pip: requirement '{name}' resolves to {kind}, which cannot be locked by hash; "
            "require a released version or an archive URL instead"
        )
    sha256 = (artifact.get("hashes") or {}).get("sha256")
    if not sha256:
        raise PipError(f"pip: uv gave no sha256 for '{name}' {version}; the index must serve hashes")
    return PipLock(name, version, _artifact_url(artifact, base), sha256)


def _artifact_url(artifact: dict[str, Any], base: Path | None) -> str:
    if "url" in artifact:
        return str(artifact["url"])
    path = Path(artifact["path"])
    if not path.is_absolute() and base is not None:
        path = base / path
    return path.resolve().as_uri()


def check_requirements(requirements: Sequence[str]) -> None:
    """Refuse installer options among requirement lines (PipError naming the line).

    uv would obey ``--index-url``/``-r``/``-e`` lines in the requirements file: a spec
    could then bypass ``PipSettings`` or read files of the build host.
    """
    for line in requirements:
        if line.lstrip().startswith("-"):
            raise PipError(
                f"pip: '{line}' is an installer option, not a requirement; indexes come "
                "from condaops' pip settings: remove the line"
            )


def render_requirements(locks: Sequence[PipLock]) -> str:
    """A ``--require-hashes`` requirements file installing exactly ``locks``."""
    return "".join(f"{lock.requirement()}\n" for lock in sorted(locks))


def _stderr_tail(stderr: str) -> str:
    tail = stderr.strip()
    return tail if len(tail) <= _STDERR_TAIL else "..." + tail[-_STDERR_TAIL:]


def _is_network_failure(stderr: str) -> bool:
    lowered = stderr.lower()
    return any(marker in lowered for marker in _NETWORK_MARKERS)


def _is_offline_miss(stderr: str) -> bool:
    lowered = stderr.lower()
    return any(marker in lowered for marker in _OFFLINE_MISS_MARKERS)


# --- running uv ----------------------------------------------------------------------


def uv_binary() -> str:
    """The uv executable shipped with the ``uv`` Python package."""
    from uv import find_uv_bin  # local: only builds with pip: dependencies need it

    return find_uv_bin()


# uv variables that tune transport only (never which package is chosen): a site may
# need them for its network, e.g. a corporate CA store or a slow proxy.
_UV_TRANSPORT_VARIABLES = frozenset(
    {"UV_HTTP_TIMEOUT", "UV_HTTP_RETRIES", "UV_NATIVE_TLS", "UV_SYSTEM_CERTS", "UV_CONCURRENT_DOWNLOADS"}
)


def _uv_environment() -> dict[str, str]:
    """The process environment without anything that configures uv's or pip's choices.

    VIRTUAL_ENV/CONDA_PREFIX would make uv pick an interpreter other than the one named.
    """
    dropped = ("VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "PYTHONPATH", "PYTHONHOME")
    env = {
        key: value
        for key, value in os.environ.items()
        if key in _UV_TRANSPORT_VARIABLES or not (key.startswith(("UV_", "PIP_")) or key in dropped)
    }
    env["NO_COLOR"] = "1"
    return env


def _run_uv(args: Sequence[str], *, timeout: float, what: str) -> subprocess.CompletedProcess[str]:
    command = [uv_binary(), *args, "--no-config", "--color", "never", "--no-progress"]
    try:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_uv_environment(),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BuildTimeoutError(f"uv took longer than {timeout:.0f} s to {what}; retried later") from exc
    except OSError as exc:
        raise PipError(f"uv could not be started to {what}: {exc}; reinstall condaops") from exc


def _raise_for(result: subprocess.CompletedProcess[str], *, what: str) -> None:
    if result.returncode == 0:
        return
    tail = _stderr_tail(result.stderr)
    if _is_network_failure(result.stderr):
        raise ChannelError(f"the Python package index could not be reached to {what}: {tail}")
    raise PipError(f"uv could not {what}: {tail}")


def prefix_python(prefix: Path) -> Path:
    """The interpreter of a conda environment (``python.exe`` at the root on Windows)."""
    return prefix / "python.exe" if sys.platform == "win32" else prefix / "bin" / "python"


def _cache_args(cache_dir: Path | None) -> list[str]:
    return ["--cache-dir", str(cache_dir)] if cache_dir is not None else []


def lock_pip(
    requirements: Sequence[str],
    *,
    python_version: str,
    platform: str,
    settings: PipSettings,
    workdir: Path,
    timeout: float,
    cache_dir: Path | None = None,
    exclude_newer: datetime | None = None,
) -> list[PipLock]:
    """Resolve ``requirements`` for ``platform`` and Python ``python_version``.

    Writes ``requirements.in`` and ``pylock.toml`` into ``workdir``. Returns the locks
    sorted by name; an empty list when there is nothing to lock. ``exclude_newer``: files
    uploaded after it are not considered (uv's ``--exclude-newer``; update cooldowns).
    """
    if not requirements:
        return []
    check_requirements(requirements)
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "requirements.in"
    source.write_text("".join(f"{line}\n" for line in requirements))
    output = workdir / "pylock.toml"
    # uv treats an existing output file as preferred pins; a lock must depend on the
    # requirements and the indexes only, never on what an earlier run left here.
    output.unlink(missing_ok=True)
    what = f"lock the pip: dependencies for {platform} (Python {python_version})"
    args = [
        "pip",
        "compile",
        str(source),
        "--output-file",
        str(output),
        "--format",
        "pylock.toml",
        "--generate-hashes",
        "--python-version",
        python_version,
        "--python-platform",
        uv_platform(platform),
        # Any interpreter can resolve for another version/platform; name ours so uv
        # never searches for (or downloads) one.
        "--python",
        sys.executable,
        "--no-python-downloads",
        "--quiet",
        *index_args(settings),
        *_cache_args(cache_dir),
        *(["--exclude-newer", exclude_newer.isoformat()] if exclude_newer else []),
    ]
    _raise_for(_run_uv(args, timeout=timeout, what=what), what=what)
    return parse_pylock(output.read_text(), base=workdir)


def install_pip(
    prefix: Path,
    locks: Sequence[PipLock],
    *,
    settings: PipSettings,
    timeout: float,
    cache_dir: Path | None = None,
) -> None:
    """Install exactly ``locks`` into the environment at ``prefix``.

    Tries uv's cache alone first (``--offline``: rebuilds and rollbacks need no index),
    then the network. The index options from ``settings`` are passed although direct
    URLs need no resolution: uv lends an index's credentials to downloads from the same
    host, which private indexes need.
    """
    if not locks:
        return
    python = prefix_python(prefix)
    if not python.exists():
        raise PipError(
            f"{prefix}: the environment has pip: dependencies but no "
            f"{python.relative_to(prefix)}; add python to its dependencies"
        )
    what = f"install the pip: dependencies into {prefix}"
    with tempfile.TemporaryDirectory(prefix="condaops-pip-") as tmp:
        # Outside the prefix: a build writes nothing into it that a package did not put.
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(render_requirements(locks))
        args = [
            "pip",
            "install",
            "--python",
            str(python),
            "--requirements",
            str(requirements),
            "--no-deps",
            "--require-hashes",
            *index_args(settings),
            *_cache_args(cache_dir),
        ]
        deadline = time.monotonic() + timeout
        result = _run_uv([*args, "--offline"], timeout=timeout, what=what)
        if result.returncode != 0 and _is_offline_miss(result.stderr):
            remaining = max(deadline - time.monotonic(), 1.0)
            result = _run_uv(args, timeout=remaining, what=what)
    _raise_for(result, what=what)
