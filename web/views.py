"""What the pages and the API show, computed from query results. Pure: no IO.

Route handlers fetch plain dataclasses (``condaops.reconciler.state.queries``) and pass
them through these functions; templates and API structs only ever see the results.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from condaops.reconciler import pkgdiff
from condaops.reconciler.deliver.kernels import kernel_name
from condaops.reconciler.deliver.model import KERNEL, MODULE, NAME
from condaops.reconciler.model import DeliveryRecord, EnvRef
from condaops.reconciler.names import name_problem
from condaops.reconciler.pkgdiff import Compare, Pkg
from condaops.reconciler.state.packages import LockedPackage
from condaops.reconciler.state.queries import BuildInfo, EnvInfo
from condaops.reconciler.status import STATES, derive_state
from condaops.web.health import SyncHealth, sync_health

DEFAULT_LIMIT, MAX_LIMIT = 50, 500


@dataclass(frozen=True, slots=True)
class EnvRow:
    """An environment with its derived state (pending, building, ready, failed)."""

    info: EnvInfo
    state: str
    reason: str | None
    message: str | None
    status: SyncHealth

    @property
    def ref(self) -> EnvRef:
        return self.info.ref


@dataclass(frozen=True, slots=True)
class NamespaceRow:
    name: str
    total: int
    states: dict[str, int]


def env_rows(infos: Iterable[EnvInfo], *, retries: int) -> list[EnvRow]:
    return [env_row(info, retries=retries) for info in infos]


def env_row(info: EnvInfo, *, retries: int) -> EnvRow:
    state, reason, message = derive_state(info, retries=retries)
    return EnvRow(info, state, reason, message, sync_health(info, state, reason))


def count_states(rows: Iterable[EnvRow]) -> dict[str, int]:
    """Environments per state, every state present (zero included), in display order."""
    counts = dict.fromkeys(STATES, 0)
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    return counts


def namespace_rows(rows: Iterable[EnvRow]) -> list[NamespaceRow]:
    by_ns: dict[str, list[EnvRow]] = {}
    for row in rows:
        by_ns.setdefault(row.ref.namespace, []).append(row)
    return [NamespaceRow(ns, len(items), count_states(items)) for ns, items in sorted(by_ns.items())]


def filter_rows(
    rows: Iterable[EnvRow], *, namespace: str | None = None, state: str | None = None, text: str | None = None
) -> list[EnvRow]:
    """Rows of one namespace and/or state whose ``ns/name`` contains ``text`` (any case)."""
    needle = (text or "").strip().lower()
    return [
        r
        for r in rows
        if (namespace is None or r.ref.namespace == namespace)
        and (state is None or r.state == state)
        and (not needle or needle in str(r.ref).lower())
    ]


# --- paging and names -------------------------------------------------------------------


def clamp_page(
    limit: int | None, offset: int | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT
) -> tuple[int, int]:
    """(limit, offset) within bounds: page sizes are clamped, never refused."""
    size = default if limit is None else min(max(int(limit), 1), maximum)
    return size, max(int(offset or 0), 0)


def next_offset(offset: int, limit: int, total: int) -> int | None:
    return offset + limit if offset + limit < total else None


def valid_name(name: str) -> bool:
    """Whether ``name`` could be a namespace or environment name (else: 404 at once)."""
    return name_problem(name) is None


# --- formatting ---------------------------------------------------------------------------


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def build_duration(build: BuildInfo) -> float | None:
    """Seconds from start to finish; None while not finished or never started."""
    if build.started_at is None or build.finished_at is None:
        return None
    return max((build.finished_at - build.started_at).total_seconds(), 0.0)


@functools.lru_cache(maxsize=256)  # a few channels, on every row of every package table
def channel_label(url: str | None) -> str:
    """``https://conda.anaconda.org/conda-forge`` -> ``conda-forge``; other URLs as they are."""
    if not url:
        return "-"
    parts = urlsplit(url)
    if parts.netloc in ("conda.anaconda.org", "repo.anaconda.com") and parts.path.strip("/"):
        return parts.path.strip("/")
    return url.rstrip("/")


def spec_document(canonical: str | None) -> str:
    """The recorded specification as YAML for people (it is stored as canonical JSON)."""
    if not canonical:
        return ""
    data = json.loads(canonical)
    document = {key: value for key, value in data.items() if value not in ([], {}, None)}
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000)


# --- commands to copy ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    label: str
    text: str


@dataclass(frozen=True, slots=True)
class ImageStatus:
    """A build's image as this service's registry holds it (from its ``image.json``):
    ``reference`` is what to pull (``latest`` for the current build), ``not_runnable`` why
    its programs cannot start (None: they can), ``artifacts`` the attached artifacts'
    manifest digests by artifact type."""

    repository: str
    reference: str
    manifest_digest: str
    not_runnable: str | None
    base: str | None
    artifacts: dict[str, str]


def image_status(record: dict[str, Any] | None, *, current: bool) -> ImageStatus | None:
    """What the page offers of a build's image: None unless it was pushed to this
    service's registry (``builtin``). Pure."""
    pushed = [t for t in ((record or {}).get("targets") or {}).values() if isinstance(t, dict) and t.get("builtin")]
    if record is None or not pushed:
        return None
    tags = record.get("tags") or []
    tag = "latest" if current and "latest" in tags else next((t for t in tags if t.startswith("build-")), None)
    base = record.get("base") or {}
    return ImageStatus(
        repository=str(pushed[0]["repository"]),
        reference=f":{tag}" if tag else f"@{record['manifest_digest']}",
        manifest_digest=str(record["manifest_digest"]),
        not_runnable=None if record.get("runnable", True) else str(record.get("not_runnable") or "unknown"),
        base=base.get("description") or base.get("reference"),
        artifacts={str(k): str(v) for k, v in (pushed[0].get("by_type") or {}).items()},
    )


# The artifact types the publish job attaches (reconciler/publish/push.py and sbom.py; the site
# imports no publish internals, tests/unit/test_web_views.py checks they agree).
LOCKFILES_ARTIFACT = "application/vnd.condaops.lockfiles.v1"
PACK_ARTIFACT = "application/vnd.condaops.conda-pack.v1"
SBOM_ARTIFACT = "application/vnd.cyclonedx+json"
ARTIFACT_LABELS = {
    LOCKFILES_ARTIFACT: "Lockfiles and environment.yaml (oras)",
    PACK_ARTIFACT: "conda-pack tarball (oras)",
    SBOM_ARTIFACT: "CycloneDX SBOM (oras)",
}


def copy_commands(
    host: str,
    ref: EnvRef,
    *,
    prefix: str | None,
    has_lock: bool,
    image: ImageStatus | None = None,
    plain_http: bool = False,
) -> list[Command]:
    """The lines a user pastes to use an environment: the image (only when it was
    published and can run), its attached lockfiles and tarball (oras, by digest: exactly
    the shown build's files), the prefix, the lockfile."""
    commands = []
    if image is not None:
        where = f"{host}/{image.repository}"
        if image.not_runnable is None:
            commands.append(Command("Container image", f"docker pull {where}{image.reference}"))
        oras = "oras pull --plain-http" if plain_http else "oras pull"
        for artifact_type, label in ARTIFACT_LABELS.items():
            if artifact_type in image.artifacts:
                commands.append(Command(label, f"{oras} {where}@{image.artifacts[artifact_type]}"))
    if prefix:
        commands.append(Command("On this host", f"conda activate {prefix}"))
    if has_lock:
        lock = f"conda-lock install --name {ref.name} conda-lock.yml"
        commands.append(Command("Elsewhere, from conda-lock.yml", lock))
    return commands


def delivery_commands(ref: EnvRef, deliveries: Sequence[DeliveryRecord]) -> list[Command]:
    """The environment's own module, conda name and kernel (not pinned builds' ones), as
    lines to copy; deliveries that could not be written are left out."""
    labels = {
        (MODULE, str(ref)): "Environment module",
        (NAME, f"{ref.namespace}-{ref.name}"): "conda, by name",
        (KERNEL, kernel_name(ref)): "Jupyter kernel",
    }
    return [Command(labels[(d.kind, d.name)], d.use) for d in deliveries if (d.kind, d.name) in labels and not d.error]


def env_link(store: Path, ref: EnvRef) -> str:
    """The stable prefix path users activate (the link swapped on each build)."""
    return str(store / ref.namespace / "envs" / ref.name)


# --- package diff ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PackageChange:
    """A package in both builds with another version, build or channel; ``kind`` is
    ``pkgdiff``'s upgraded, downgraded or rebuilt."""

    kind: str
    old: LockedPackage
    new: LockedPackage


@dataclass(frozen=True, slots=True)
class PackageDiff:
    added: list[LockedPackage] = field(default_factory=list)
    removed: list[LockedPackage] = field(default_factory=list)
    changed: list[PackageChange] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def _pkg(p: LockedPackage) -> Pkg:
    return Pkg(p.name, p.version, p.build or "", p.channel or "", p.manager)


def diff_packages(old: Sequence[LockedPackage], new: Sequence[LockedPackage], compare: Compare) -> PackageDiff:
    """Packages added, removed and changed between two builds: ``reconciler.pkgdiff`` per
    platform (matched by manager and name), with the full locked records kept for display.
    ``compare`` orders versions (``pkgdiff.rattler_compare`` at the edge)."""
    before = {p.key: p for p in old}
    after = {p.key: p for p in new}
    result = PackageDiff()
    for platform in sorted({p.platform for p in (*old, *new)}):
        changes = pkgdiff.diff_packages(
            (_pkg(p) for p in old if p.platform == platform), (_pkg(p) for p in new if p.platform == platform), compare
        )
        for c in changes.changes:
            key = (platform, c.manager, c.name)
            if c.kind == pkgdiff.ADDED:
                result.added.append(after[key])
            elif c.kind == pkgdiff.REMOVED:
                result.removed.append(before[key])
            else:
                result.changed.append(PackageChange(c.kind, before[key], after[key]))
    return result


# --- search -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """``openssl 3.3``, ``openssl=3.3``, ``openssl==3.3.*`` or ``openssl``: a package name
    and an optional version prefix. The same text also filters environment names."""

    text: str
    package: str | None
    version: str | None


_QUERY_RE = re.compile(r"^(?P<name>[A-Za-z0-9_.*-]+)(?:\s*(?:==?|\s)\s*(?P<version>[A-Za-z0-9_.+!*-]+))?$")


def parse_query(text: str | None) -> SearchQuery:
    cleaned = " ".join((text or "").split())[:200]
    match = _QUERY_RE.match(cleaned)
    if not match:
        return SearchQuery(cleaned, None, None)
    version = (match.group("version") or "").rstrip("*").rstrip(".") or None
    return SearchQuery(cleaned, match.group("name").lower(), version)
