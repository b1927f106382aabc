"""Reading committed lockfiles: conda-lock.yml (conda-lock's models) and pixi.lock
(rattler's ``LockFile``) bytes → the locked records of every platform.

* **conda-lock.yml** (versions 1 and 2) is validated by conda-lock's own pydantic models,
  after a YAML load with the C loader that refuses aliases (a lockfile has none; an alias
  bomb must not expand). Its entries lack ``build_number``, ``noarch``, sizes and
  timestamps: the records rebuilt here carry the name, version, build (from the file
  name), subdir, channel, URL, dependencies and hashes — what installing needs (rattler
  reads ``noarch`` from the package itself when it links it).
* **pixi.lock** holds full records; rattler reads it (from a temporary file: it has no
  parser for bytes). Its ``default`` environment is used, else the only one.

``digest`` identifies the locked *packages* (URL and hash per platform, pip included), not
the bytes: reformatting or commenting a lock does not rebuild the environment.
Everything that goes wrong is a ``LockError`` (``LockInvalid``) naming the file.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from rattler import BuildString, LockFile, PackageRecord, RepoDataRecord

from condaops.reconciler.build.lock import CONDA_LOCK, PIXI_LOCK
from condaops.reconciler.build.pip import PipLock
from condaops.reconciler.errors import LockError
from condaops.reconciler.lockfiles import LOCK_INVALID
from condaops.reconciler.lockread import PIXI_ENVIRONMENT, redact_url

GENERATED_BY = "condaops"  # custom_metadata.generated_by of the conda-lock.yml files condaops writes
_ARCHIVES = (".conda", ".tar.bz2")


@dataclass(frozen=True)
class LockedEnv:
    """One lockfile's content: records and pip locks per platform, and its metadata."""

    kind: str
    records: Mapping[str, Sequence[RepoDataRecord]]
    pip: Mapping[str, Sequence[PipLock]] = field(default_factory=dict)
    content_hash: Mapping[str, str] = field(default_factory=dict)  # conda-lock: platform -> input hash
    generated_by: str | None = None
    digest: str = ""

    @property
    def platforms(self) -> list[str]:
        return sorted(set(self.records) | set(self.pip))


def read_lock(data: bytes, kind: str, *, path: str) -> LockedEnv:
    """Parse a lockfile's bytes; ``path`` names it in messages. Raises ``LockError``."""
    if kind == CONDA_LOCK:
        locked = _read_conda_lock(data, path)
    elif kind == PIXI_LOCK:
        locked = _read_pixi_lock(data, path)
    else:
        raise ValueError(f"unknown lockfile kind {kind!r}")
    if not any(locked.records.values()) and not any(locked.pip.values()):
        raise _invalid(path, "locks no packages for any platform")
    return LockedEnv(
        locked.kind,
        locked.records,
        locked.pip,
        locked.content_hash,
        locked.generated_by,
        lock_digest(locked.records, locked.pip),
    )


def lock_digest(records: Mapping[str, Sequence[RepoDataRecord]], pip: Mapping[str, Sequence[PipLock]]) -> str:
    """sha256 over the locked packages (platform, URL and hash), sorted: what a lock *is*."""
    lines = [f"conda {p} {redact_url(r.url)} {_hash_text(r)}" for p, recs in records.items() for r in recs]
    lines += [
        f"pip {p} {lock.name} {lock.version} {redact_url(lock.url)} {lock.sha256}" for p, v in pip.items() for lock in v
    ]
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def _hash_text(record: RepoDataRecord) -> str:
    if record.sha256:
        return "sha256:" + bytes(record.sha256).hex()
    return "md5:" + bytes(record.md5).hex() if record.md5 else "-"


def _invalid(path: str, problem: str) -> LockError:
    return LockError(
        f"{path} {problem}; commit a lockfile written by condaops lock, conda-lock or pixi", reason=LOCK_INVALID
    )


# --- conda-lock.yml ---------------------------------------------------------------------------


class _NoAliasLoader(yaml.CSafeLoader):
    """The C safe loader; aliases are refused before anything is built."""


def _load_yaml(data: bytes, path: str) -> dict[str, Any]:
    try:
        for event in yaml.parse(data, Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise _invalid(path, "uses YAML aliases, which lockfiles never do")
        content = yaml.load(data, Loader=_NoAliasLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise _invalid(path, f"is not valid YAML ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(content, dict):
        raise _invalid(path, "is not a conda-lock file (no mapping at the top)")
    return content


def _read_conda_lock(data: bytes, path: str) -> LockedEnv:
    from conda_lock.lockfile import lockfile_v1_to_v2
    from conda_lock.lockfile.v1.models import Lockfile as LockfileV1
    from conda_lock.lockfile.v2prelim.models import Lockfile
    from pydantic import ValidationError

    content = _load_yaml(data, path)
    version = content.pop("version", None)
    try:
        if version == 1:
            lockfile = lockfile_v1_to_v2(LockfileV1.model_validate(content))
        elif version == 2:
            lockfile = Lockfile.model_validate(content)
        else:
            raise _invalid(path, f"has version {version!r}; conda-lock files have version 1 or 2")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise _invalid(path, f"is not a conda-lock file: {where}: {first.get('msg')}") from None
    records: dict[str, list[RepoDataRecord]] = {p: [] for p in lockfile.metadata.platforms}
    pip: dict[str, list[PipLock]] = {}
    for package in lockfile.package:
        if package.manager == "conda":
            records.setdefault(package.platform, []).append(_conda_record(package, path))
        elif package.manager == "pip":
            pip.setdefault(package.platform, []).append(_pip_lock(package, path))
    custom = lockfile.metadata.custom_metadata or {}
    return LockedEnv(
        CONDA_LOCK,
        {p: sorted(v, key=_record_key) for p, v in sorted(records.items())},
        {p: sorted(v) for p, v in sorted(pip.items())},
        dict(lockfile.metadata.content_hash or {}),
        custom.get("generated_by"),
    )


def _conda_record(package: Any, path: str) -> RepoDataRecord:
    """A record from a conda-lock entry: what installing needs (see the module doc)."""
    url = package.url.split("#", 1)[0]
    parts = PurePosixPath(urlsplit(url).path).parts
    file_name = parts[-1] if parts else ""
    if len(parts) < 3 or not file_name.endswith(_ARCHIVES):
        raise _invalid(path, f"locks {package.name} at {redact_url(url)}, which is not a conda package URL")
    if not (package.hash.md5 or package.hash.sha256):
        raise _invalid(path, f"locks {package.name} without an md5 or sha256, so it cannot be checked")
    stem = next(file_name.removesuffix(s) for s in _ARCHIVES if file_name.endswith(s))
    prefix = f"{package.name}-{package.version}-"
    build = stem.removeprefix(prefix) if stem.startswith(prefix) else stem.rsplit("-", 1)[-1]
    subdir = parts[-2]
    split = urlsplit(url)
    channel = urlunsplit((split.scheme, split.netloc, str(PurePosixPath(*parts[:-2])), "", ""))
    try:
        record = PackageRecord(
            package.name,
            package.version,
            BuildString(build),
            0,  # conda-lock does not keep the build number (nothing installs by it)
            subdir,
            depends=[f"{name} {spec}".strip() for name, spec in sorted(package.dependencies.items())],
            md5=bytes.fromhex(package.hash.md5) if package.hash.md5 else None,
            sha256=bytes.fromhex(package.hash.sha256) if package.hash.sha256 else None,
        )
    except Exception as exc:  # noqa: BLE001 - rattler's parse errors (names, versions, hashes) are many types
        raise _invalid(path, f"locks {package.name} {package.version} with an invalid field ({exc})") from None
    return RepoDataRecord(record, file_name, url, channel)


def _pip_lock(package: Any, path: str) -> PipLock:
    if not package.hash.sha256:
        raise _invalid(path, f"locks the pip package {package.name} without a sha256, so it cannot be checked")
    return PipLock(package.name, package.version, package.url.split("#", 1)[0], package.hash.sha256)


def _record_key(record: RepoDataRecord) -> tuple[str, str, str]:
    return record.name.normalized, record.subdir, record.file_name


# --- pixi.lock --------------------------------------------------------------------------------


def _read_pixi_lock(data: bytes, path: str) -> LockedEnv:
    with tempfile.TemporaryDirectory(prefix="condaops-lock-") as tmp:
        file = Path(tmp) / "pixi.lock"
        file.write_bytes(data)
        try:
            lock_file = LockFile.from_path(file)
            environment = lock_file.environment(PIXI_ENVIRONMENT) or _only_environment(lock_file, path)
            by_platform = environment.conda_repodata_records()
            pypi = environment.pypi_packages()
        except LockError:
            raise
        except Exception as exc:  # noqa: BLE001 - rattler's parse errors are several types
            raise _invalid(path, f"is not a pixi.lock file ({' '.join(str(exc).split())[:200]})") from None
    records = {str(p): sorted(v, key=_record_key) for p, v in by_platform.items()}
    pip = {str(p): sorted(_pypi_lock(x, path) for x in v) for p, v in pypi.items() if v}
    return LockedEnv(PIXI_LOCK, dict(sorted(records.items())), dict(sorted(pip.items())))


def _only_environment(lock_file: LockFile, path: str) -> Any:
    environments = lock_file.environments()
    if len(environments) != 1:
        names = ", ".join(name for name, _ in environments) or "none"
        raise _invalid(path, f"has no '{PIXI_ENVIRONMENT}' environment and several others ({names})")
    return environments[0][1]


def _pypi_lock(package: Any, path: str) -> PipLock:
    hashes = package.hashes
    sha256 = bytes(hashes.sha256).hex() if hashes is not None and hashes.sha256 else None
    if sha256 is None:
        raise _invalid(path, f"locks the pip package {package.name} without a sha256, so it cannot be checked")
    return PipLock(package.name, str(package.version), str(package.location), sha256)
