"""Lockfiles of a solved environment: conda-lock.yml, @EXPLICIT, pixi.lock, pinned yaml.

``write_lockfiles`` turns the solved records of every platform (and the pip locks, if
the spec has ``pip:`` dependencies) into four kinds of files in one folder:

========================  ==============  ===============================================
file                      kind            for
========================  ==============  ===============================================
``conda-lock.yml``        ``conda-lock``  ``conda-lock install``, micromamba; all platforms
``conda-<plat>.lock``     ``explicit``    ``conda create --file``; one per platform
``pixi.lock``             ``pixi-lock``   full records: reinstall, rollback, other hosts
``environment.yaml``      ``environment`` ``conda env create``; pinned ``name=version=build``
========================  ==============  ===============================================

Choices worth knowing:

* ``content_hash`` in conda-lock.yml is the spec hash (``Spec.spec_hash``) for every
  platform: the identity of condaops' input, not conda-lock's own input hash (which
  hashes conda-lock's internal request model). conda-lock may therefore call the file
  stale; condaops never asks it to re-lock.
* Explicit files are named like conda-lock names them (``conda-linux-64.lock``) and are
  rendered here rather than by conda-lock's renderer, which expands ``$VARS`` in URLs
  from the current process environment. Lines are ``url#md5`` in dependency order, the
  form every conda version accepts; pip locks follow as ``# pip name @ url#sha256=...``
  comments, as conda-lock writes them (conda ignores them; micromamba reads them).
* Credentials never reach a lockfile (they are published): user/password and
  ``/t/<token>/`` are removed from every URL. Clients authenticate through their own
  configuration, as they do for mirrors.
* Output is deterministic: records are sorted, YAML keys are in a fixed order and no
  wall-clock time is written unless ``created_at`` is passed.
* The pinned environment.yaml lists ``nodefaults`` after the channels, so conda does
  not add its default channels to builds that were pinned without them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import yaml
from rattler import LockChannel, LockFile, LockPlatform, PackageRecord, RepoDataRecord

from condaops.reconciler.build.pip import PipLock
from condaops.reconciler.errors import BuildError, StalledError
from condaops.reconciler.spec import Spec

if TYPE_CHECKING:
    # conda_lock takes ~0.8 s to import (pydantic models, vendored conda): the writers
    # import it when they run, so importing this module stays cheap for the CLI and web.
    from conda_lock.lockfile.v2prelim.models import LockedDependency

CONDA_LOCK, EXPLICIT, PIXI_LOCK, ENVIRONMENT = "conda-lock", "explicit", "pixi-lock", "environment"
CONDA_LOCK_FILE, PIXI_LOCK_FILE, ENVIRONMENT_FILE = "conda-lock.yml", "pixi.lock", "environment.yaml"
PIXI_ENVIRONMENT = "default"  # pixi's name for the one environment of a lockfile


def is_lockfile_kind(kind: str) -> bool:
    """Whether an artifact kind is one of the lockfiles written here (explicit ones are
    recorded per platform as ``explicit-<platform>``)."""
    return kind in (CONDA_LOCK, PIXI_LOCK, ENVIRONMENT) or kind.startswith(f"{EXPLICIT}-")


_TOKEN_RE = re.compile(r"/t/[^/]+(?=/)")


class LockfileError(BuildError, StalledError):
    """The solved records cannot be written as lockfiles (e.g. a channel gives no md5)."""

    reason = "LockFailed"


def explicit_file_name(platform: str) -> str:
    """``conda-<platform>.lock``: the name conda-lock gives explicit files."""
    return f"conda-{platform}.lock"


# --- pure helpers --------------------------------------------------------------------


def redact_url(url: str) -> str:
    """``url`` without user/password and anaconda.org-style ``/t/<token>`` segments."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    path = _TOKEN_RE.sub("", parts.path)
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


def channel_url(url: str) -> str:
    """A channel URL as lockfiles show it: redacted, without trailing slash."""
    return redact_url(url).rstrip("/")


def parse_depends(depends: Sequence[str]) -> dict[str, str]:
    """conda-lock's ``dependencies`` mapping: name -> version spec ("" for any).

    A depends entry is ``name [version [build]]``; conda-lock keeps only the version.
    The same name twice (rare, but legal) is merged with ``,`` (both must hold).
    """
    merged: dict[str, list[str]] = {}
    for entry in depends:
        name, _, rest = entry.strip().partition(" ")
        version = rest.strip().split(" ")[0] if rest.strip() else ""
        merged.setdefault(name, [])
        if version and version not in merged[name]:
            merged[name].append(version)
    return {name: ",".join(versions) for name, versions in sorted(merged.items())}


def render_explicit(
    urls: Sequence[tuple[str, str]],
    *,
    platform: str,
    input_hash: str,
    pip: Sequence[PipLock] = (),
) -> str:
    """An ``@EXPLICIT`` file: ``urls`` are (url, md5) pairs in install order."""
    lines = [
        "# Generated by condaops.",
        f"# platform: {platform}",
        f"# input_hash: {input_hash}",
        "@EXPLICIT",
        *(f"{redact_url(url)}#{md5}" for url, md5 in urls),
        *(f"# pip {lock.name} @ {redact_url(lock.url)}#sha256={lock.sha256}" for lock in sorted(pip)),
    ]
    return "\n".join(lines) + "\n"


def render_environment(
    *,
    name: str,
    channels: Sequence[str],
    pins: Sequence[str],
    pip: Sequence[PipLock] = (),
    variables: Sequence[tuple[str, str]] = (),
    platform: str,
    spec_hash: str,
) -> str:
    """A pinned environment.yaml (``name=version=build`` pins, ``name==version`` pip)."""
    dependencies: list[object] = [*sorted(pins)]
    if pip:
        dependencies.append({"pip": [f"{lock.name}=={lock.version}" for lock in sorted(pip)]})
    document: dict[str, object] = {
        "name": name,
        "channels": [channel_url(c) for c in channels] + ["nodefaults"],
        "dependencies": dependencies,
    }
    if variables:
        document["variables"] = {key: value for key, value in sorted(variables)}
    header = f"# Pinned by condaops for {platform}; spec {spec_hash}\n"
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=1000)


# --- records -------------------------------------------------------------------------


def _sorted_records(records: Sequence[RepoDataRecord]) -> list[RepoDataRecord]:
    return sorted(records, key=lambda r: (r.name.normalized, r.subdir, r.file_name))


def _md5(record: RepoDataRecord) -> str:
    if record.md5 is None:
        raise LockfileError(
            f"{record.file_name}: the channel gives no md5 for this package, which "
            "conda-lock.yml and explicit files require; re-index the channel"
        )
    return record.md5.hex()


def _install_order(records: Sequence[RepoDataRecord]) -> list[RepoDataRecord]:
    """Dependencies before dependents (deterministic, ties broken by name)."""
    by_name = {r.name.normalized: r for r in records}
    ordered = PackageRecord.sort_topologically(list[PackageRecord](_sorted_records(records)))
    return [by_name[r.name.normalized] for r in ordered]


def _pin(record: RepoDataRecord) -> str:
    return f"{record.name.normalized}={record.version}={record.build}"


def _public_record(record: RepoDataRecord) -> RepoDataRecord:
    """``record`` itself, or a copy whose URL and channel carry no credentials."""
    url, channel = redact_url(record.url), redact_url(record.channel or "")
    if url == record.url and channel == (record.channel or ""):
        return record
    return RepoDataRecord(record, record.file_name, url, channel)


# --- writers -------------------------------------------------------------------------


def _conda_lock_package(record: RepoDataRecord, platform: str) -> LockedDependency:
    from conda_lock.lockfile.v2prelim.models import HashModel, LockedDependency

    return LockedDependency(
        name=record.name.normalized,
        version=str(record.version),
        manager="conda",
        platform=platform,
        dependencies=parse_depends(record.depends),
        url=redact_url(record.url),
        hash=HashModel(md5=_md5(record), sha256=record.sha256.hex() if record.sha256 else None),
        categories={"main"},
    )


def _pip_lock_package(lock: PipLock, platform: str) -> LockedDependency:
    from conda_lock.lockfile.v2prelim.models import HashModel, LockedDependency

    return LockedDependency(
        name=lock.name,
        version=lock.version,
        manager="pip",
        platform=platform,
        dependencies={},
        url=redact_url(lock.url),
        hash=HashModel(sha256=lock.sha256),
        categories={"main"},
    )


def write_conda_lock(
    path: Path,
    records: Mapping[str, Sequence[RepoDataRecord]],
    pip: Mapping[str, Sequence[PipLock]],
    *,
    name: str,
    channels: Sequence[str],
    spec_hash: str,
    created_at: datetime | None = None,
    source_path: str | None = None,
    content_hash: Mapping[str, str] | None = None,
) -> Path:
    """conda-lock.yml (unified format, version 1) for every platform of ``records``.
    ``content_hash`` replaces the spec hash per platform (committed locks: ``locks.write``)."""
    from conda_lock.lockfile import write_conda_lock_file
    from conda_lock.lockfile.v2prelim.models import Lockfile, LockMeta, TimeMeta
    from conda_lock.models.channel import Channel

    platforms = sorted(records)
    packages = [_conda_lock_package(r, p) for p in platforms for r in _sorted_records(records[p])]
    packages += [_pip_lock_package(lock, p) for p in platforms for lock in sorted(pip.get(p, ()))]
    metadata = LockMeta(
        content_hash={p: (content_hash or {}).get(p, spec_hash) for p in platforms},
        # Channel objects, not strings: Channel.from_string looks for credentials in
        # os.environ, which would make the output depend on the process environment.
        channels=[Channel(url=channel_url(c), used_env_vars=()) for c in channels],
        platforms=platforms,
        sources=[source_path] if source_path else [],
        time_metadata=TimeMeta(created_at=_utc(created_at)) if created_at else None,
        custom_metadata={"generated_by": "condaops", "environment": name},
    )
    write_conda_lock_file(Lockfile(package=packages, metadata=metadata), path, None, include_help_text=False)
    return path


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_pixi_lock(
    path: Path,
    records: Mapping[str, Sequence[RepoDataRecord]],
    pip: Mapping[str, Sequence[PipLock]],
    *,
    channels: Sequence[str],
) -> Path:
    """pixi.lock with the full records (build number, size, timestamps, noarch...).

    Pip packages are listed by name, version and URL (py-rattler takes no hash for
    them; conda-lock.yml holds their sha256).
    """
    platforms = {p: LockPlatform(p) for p in sorted(records)}
    lock_file = LockFile(list(platforms.values()))
    lock_file.set_channels(PIXI_ENVIRONMENT, [LockChannel(channel_url(c)) for c in channels])
    for platform, lock_platform in platforms.items():
        for record in _sorted_records(records[platform]):
            lock_file.add_conda_package(PIXI_ENVIRONMENT, lock_platform, _public_record(record))
        for lock in sorted(pip.get(platform, ())):
            lock_file.add_pypi_package(PIXI_ENVIRONMENT, lock_platform, lock.name, lock.version, redact_url(lock.url))
    lock_file.to_path(path)
    return path


def write_lockfiles(
    folder: Path,
    records: Mapping[str, Sequence[RepoDataRecord]],
    spec: Spec,
    *,
    name: str,
    channels: Sequence[str],
    host_platform: str,
    pip: Mapping[str, Sequence[PipLock]] | None = None,
    created_at: datetime | None = None,
    source_path: str | None = None,
) -> list[tuple[str, Path]]:
    """Write every lockfile of one build into ``folder``; returns ``(kind, path)`` pairs.

    ``records`` maps each platform to its solved records; ``channels`` are the
    canonical channel URLs in priority order; ``pip`` maps platforms to their pip
    locks. environment.yaml pins ``host_platform`` (or, when it was not solved, the
    first platform in sorted order). ``created_at`` is the only time written.
    """
    if not records:
        raise ValueError("write_lockfiles needs the records of at least one platform")
    folder.mkdir(parents=True, exist_ok=True)
    pip = pip or {}
    spec_hash = spec.spec_hash
    written = [
        (
            CONDA_LOCK,
            write_conda_lock(
                folder / CONDA_LOCK_FILE,
                records,
                pip,
                name=name,
                channels=channels,
                spec_hash=spec_hash,
                created_at=created_at,
                source_path=source_path,
            ),
        ),
    ]
    for platform in sorted(records):
        urls = [(r.url, _md5(r)) for r in _install_order(records[platform])]
        text = render_explicit(urls, platform=platform, input_hash=spec_hash, pip=pip.get(platform, ()))
        written.append((EXPLICIT, _write_text(folder / explicit_file_name(platform), text)))
    written.append((PIXI_LOCK, write_pixi_lock(folder / PIXI_LOCK_FILE, records, pip, channels=channels)))
    env_platform = host_platform if host_platform in records else sorted(records)[0]
    text = render_environment(
        name=name,
        channels=channels,
        pins=[_pin(r) for r in records[env_platform]],
        pip=pip.get(env_platform, ()),
        variables=spec.variables,
        platform=env_platform,
        spec_hash=spec_hash,
    )
    written.append((ENVIRONMENT, _write_text(folder / ENVIRONMENT_FILE, text)))
    return written


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", newline="\n")
    return path


# --- reading back --------------------------------------------------------------------


def read_pixi_lock(path: Path) -> dict[str, list[RepoDataRecord]]:
    """The full conda records per platform from a pixi.lock written here."""
    environment = LockFile.from_path(path).environment(PIXI_ENVIRONMENT)
    if environment is None:
        raise LockfileError(f"{path}: no '{PIXI_ENVIRONMENT}' environment in this pixi.lock")
    return {p: _sorted_records(r) for p, r in sorted(environment.conda_repodata_records().items())}


def read_pip_locks(path: Path) -> dict[str, list[PipLock]]:
    """The pip locks per platform from a conda-lock.yml (ours or conda-lock's)."""
    from conda_lock.lockfile import parse_conda_lock_file

    locks: dict[str, list[PipLock]] = {}
    for package in parse_conda_lock_file(path).package:
        if package.manager == "pip" and package.hash.sha256:
            url = package.url.split("#", 1)[0]
            locks.setdefault(package.platform, []).append(
                PipLock(package.name, package.version, url, package.hash.sha256)
            )
    return {p: sorted(v) for p, v in sorted(locks.items())}
