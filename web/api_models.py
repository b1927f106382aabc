"""The JSON API's shapes (msgspec Structs) and the functions that fill them.

Field names are the API's contract; they follow the query dataclasses' names where they
can. Every list is a page: ``items``, ``total``, ``limit``, ``offset``, ``next_offset``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from condaops.reconciler.model import DeliveryRecord
from condaops.reconciler.policy.findings import Violation, report_from_json
from condaops.reconciler.state.packages import LockedPackage, PackageHit
from condaops.reconciler.state.queries import ArtifactInfo, BuildInfo, SourceInfo
from condaops.reconciler.state.review_queries import ChangeRequestInfo
from condaops.web.reviews import PreviewView, ReviewRow
from condaops.web.supplychain import SupplyView
from condaops.web.views import Command, EnvRow, ImageStatus, NamespaceRow, PackageDiff, build_duration


class Artifact(msgspec.Struct, kw_only=True):
    build_id: int
    kind: str
    file_name: str
    size: int | None
    sha256: str | None
    url: str


class Finding(msgspec.Struct, kw_only=True):
    rule: str  # channels, deny, require, license-deny, license-allow, license-unknown, max-size, invalid
    level: str  # error (blocks the build) or warning
    file: str  # the policy file (or site policy) the rule is written in
    package: str | None
    platform: str | None
    message: str


class PolicyResult(msgspec.Struct, kw_only=True):
    checked: bool  # false: no policy applied to the build
    violations: list[Finding]
    warnings: list[Finding]


class SupplyChain(msgspec.Struct, kw_only=True):
    policy_build_id: int | None  # the newest build of the wanted spec, whose verdict ``policy`` is
    policy: PolicyResult
    sbom_url: str | None  # the CycloneDX SBOM of the build users get
    signature: str  # signed, unsigned, no-key (the site signs nothing) or not-published
    signature_note: str


class Build(msgspec.Struct, kw_only=True):
    id: int
    namespace: str
    environment: str
    state: str
    reason: str | None
    message: str | None
    attempt: int
    retryable: bool
    spec_hash: str
    source: str | None
    source_revision: str | None
    source_path: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    timings: dict[str, float]
    artifact_kinds: list[str]
    published_at: datetime | None  # the publish job ran; publish_error says why it failed
    publish_error: str | None
    policy: PolicyResult
    sbom_url: str | None
    signed: bool  # the image and its artifacts carry cosign signatures (signatures artifact)
    lock_path: str | None  # the committed lockfile the build installed (no solve)
    url: str
    log_url: str


class Environment(msgspec.Struct, kw_only=True):
    namespace: str
    name: str
    state: str
    reason: str | None
    message: str | None
    sync: str  # Synced or OutOfSync, as the site shows it (web.health)
    health: str  # Healthy, Progressing, Degraded or Missing
    badges: list[str]  # held (by a rollback), removed-kept, locked
    since: datetime | None  # when the current sync/health began, when known
    status_build_id: int | None  # the build that explains the state (the newest of the wanted spec)
    status_revision: str | None  # the source revision the state comes from
    source: str | None
    path: str | None
    revision: str | None
    spec_hash: str | None
    current_build_id: int | None
    latest_build_id: int | None
    retired: bool
    warnings: list[str]
    url: str


class Delivery(msgspec.Struct, kw_only=True):
    kind: str  # kernel, module or name
    name: str
    use: str  # what users pick or type
    build_id: int | None
    path: str
    error: str | None  # "<Reason>: <message>" when it could not be written


class Image(msgspec.Struct, kw_only=True):
    """The shown build's image in this service's registry."""

    repository: str
    reference: str  # ":latest", ":build-<id>" or "@sha256:..."
    manifest_digest: str
    runnable: bool
    not_runnable: str | None  # why its programs cannot start on its base
    base: str | None
    artifacts: dict[str, str]  # artifact type -> manifest digest (oras pull <repository>@<digest>)


class EnvironmentDetail(msgspec.Struct, kw_only=True):
    environment: Environment
    specification: dict[str, Any] | None
    current_build: Build | None
    latest_build: Build | None
    prefix: str | None
    commands: dict[str, str]
    artifacts: list[Artifact]
    deliveries: list[Delivery]
    supply_chain: SupplyChain
    image: Image | None = None  # None until the build is published to this registry
    updates: dict[str, Any] | None = None  # the last update check: package changes, the update pull request


class Namespace(msgspec.Struct, kw_only=True):
    name: str
    environments: int
    states: dict[str, int]
    url: str


class Package(msgspec.Struct, kw_only=True):
    platform: str
    manager: str
    name: str
    version: str
    build: str | None
    build_number: int | None
    channel: str | None
    subdir: str | None
    size: int | None
    url: str
    sha256: str | None


class PackageMatch(msgspec.Struct, kw_only=True):
    namespace: str
    environment: str
    build_id: int
    package: Package


class PackageChange(msgspec.Struct, kw_only=True):
    kind: str  # upgraded, downgraded or rebuilt
    old: Package
    new: Package


class Diff(msgspec.Struct, kw_only=True):
    from_build: int
    to_build: int
    added: list[Package]
    removed: list[Package]
    changed: list[PackageChange]


class Source(msgspec.Struct, kw_only=True):
    name: str
    revision: str | None
    fetched_at: datetime | None
    last_success_at: datetime | None
    error_reason: str | None
    error_message: str | None


class ChangeRequest(msgspec.Struct, kw_only=True):
    source: str
    ref: str
    key: str  # the PR/MR number, or the ref as a slug: /api/v1/change-requests/{source}/{key}
    title: str | None
    state: str
    revision: str | None
    base_revision: str | None  # the merge base of head and target
    target_revision: str | None
    has_changes: bool
    has_errors: bool
    error: str | None
    reason: str | None
    verdict: str  # pending | success | failure (the condaops/review commit status)
    verdict_description: str
    counts: dict[str, int]  # added, changed, removed, invalid, policy (checked again: its policy changed)
    policy_violations: bool  # a changed environment breaks a blocking policy rule (report.environments[].policy)
    updated_at: datetime
    url: str  # the review page
    pr_url: str | None  # on the forge, when the source's web_url is known
    forge_error: str | None  # why the comment or status could not be posted
    report: dict[str, Any] | None  # the review: environments changed and their package diffs


class Preview(msgspec.Struct, kw_only=True):
    preview_id: int
    environment: str
    state: str
    reason: str | None
    message: str | None
    url: str  # its page, with the live log
    reused_url: str | None


class ChangeRequestDetail(ChangeRequest, kw_only=True):
    commit: dict[str, str] | None  # sha, author, time, message of the head
    commit_url: str | None
    previews: list[Preview]
    markdown: str | None


class Page(msgspec.Struct, kw_only=True):
    total: int
    limit: int
    offset: int
    next_offset: int | None


class NamespacePage(Page, kw_only=True):
    items: list[Namespace]


class EnvironmentPage(Page, kw_only=True):
    items: list[Environment]


class BuildPage(Page, kw_only=True):
    items: list[Build]


class ArtifactPage(Page, kw_only=True):
    items: list[Artifact]


class PackagePage(Page, kw_only=True):
    build_id: int
    source: str  # "index" or "pixi.lock"
    items: list[Package]


class PackageMatchPage(Page, kw_only=True):
    items: list[PackageMatch]


class SourcePage(Page, kw_only=True):
    items: list[Source]


class ChangeRequestPage(Page, kw_only=True):
    items: list[ChangeRequest]


# --- converters ---------------------------------------------------------------------------


def artifact(a: ArtifactInfo) -> Artifact:
    return Artifact(
        build_id=a.build_id,
        kind=a.kind,
        file_name=a.location.rsplit("/", 1)[-1],
        size=a.size,
        sha256=a.sha256,
        url=f"/builds/{a.build_id}/artifacts/{a.kind}",
    )


def build(b: BuildInfo) -> Build:
    return Build(
        id=b.build_id,
        namespace=b.ref.namespace,
        environment=b.ref.name,
        state=b.state,
        reason=b.reason,
        message=b.message,
        attempt=b.attempt,
        retryable=b.retryable,
        spec_hash=b.spec_hash,
        source=b.source,
        source_revision=b.source_revision,
        source_path=b.source_path,
        queued_at=b.queued_at,
        started_at=b.started_at,
        finished_at=b.finished_at,
        duration_seconds=build_duration(b),
        timings=dict(b.timings),
        artifact_kinds=sorted(b.artifacts),
        published_at=b.published_at,
        publish_error=b.publish_error,
        policy=policy_result(b.policy_report),
        sbom_url=f"/builds/{b.build_id}/artifacts/sbom" if "sbom" in b.artifacts else None,
        signed="signatures" in b.artifacts,
        lock_path=b.lock_path,
        url=f"/api/v1/builds/{b.build_id}",
        log_url=f"/builds/{b.build_id}/log",
    )


def environment(row: EnvRow) -> Environment:
    e = row.info
    return Environment(
        namespace=e.ref.namespace,
        name=e.ref.name,
        state=row.state,
        reason=row.reason,
        message=row.message,
        sync=row.status.sync,
        health=row.status.health,
        badges=list(row.status.badges),
        since=row.status.since,
        status_build_id=row.status.build_id,
        status_revision=row.status.revision,
        source=e.source,
        path=e.path,
        revision=e.source_revision,
        spec_hash=e.desired_spec_hash,
        current_build_id=e.current.build_id if e.current else None,
        latest_build_id=e.latest.build_id if e.latest else None,
        retired=e.retired,
        warnings=list(e.warnings),
        url=f"/api/v1/environments/{e.ref.namespace}/{e.ref.name}",
    )


def image_info(i: ImageStatus | None) -> Image | None:
    if i is None:
        return None
    return Image(
        repository=i.repository,
        reference=i.reference,
        manifest_digest=i.manifest_digest,
        runnable=i.not_runnable is None,
        not_runnable=i.not_runnable,
        base=i.base,
        artifacts=dict(i.artifacts),
    )


def finding(v: Violation) -> Finding:
    return Finding(rule=v.rule, level=v.level, file=v.origin, package=v.package, platform=v.platform, message=v.message)


def policy_result(report: str | None) -> PolicyResult:
    found = report_from_json(report)
    return PolicyResult(
        checked=report is not None,
        violations=[finding(v) for v in found if v.blocking],
        warnings=[finding(v) for v in found if not v.blocking],
    )


def supply_chain(view: SupplyView) -> SupplyChain:
    return SupplyChain(
        policy_build_id=view.policy_build,
        policy=PolicyResult(
            checked=view.policy_checked,
            violations=[finding(v) for v in view.violations],
            warnings=[finding(v) for v in view.warnings],
        ),
        sbom_url=f"/builds/{view.sbom_build}/artifacts/sbom" if view.sbom_build else None,
        signature=view.signature,
        signature_note=view.signature_note,
    )


def environment_detail(
    row: EnvRow,
    *,
    canonical: str | None,
    prefix: str | None,
    commands: list[Command],
    artifacts: list[ArtifactInfo],
    deliveries: Sequence[DeliveryRecord] = (),
    image: ImageStatus | None = None,
    supply: SupplyView,
    updates: dict[str, Any] | None = None,
) -> EnvironmentDetail:
    e = row.info
    return EnvironmentDetail(
        environment=environment(row),
        specification=json.loads(canonical) if canonical else None,
        current_build=build(e.current) if e.current else None,
        latest_build=build(e.latest) if e.latest else None,
        prefix=prefix,
        commands={c.label: c.text for c in commands},
        artifacts=[artifact(a) for a in artifacts],
        deliveries=[
            Delivery(kind=d.kind, name=d.name, use=d.use, build_id=d.build_id, path=d.path, error=d.error)
            for d in deliveries
        ],
        image=image_info(image),
        supply_chain=supply_chain(supply),
        updates=updates,
    )


def namespace(ns: NamespaceRow) -> Namespace:
    return Namespace(name=ns.name, environments=ns.total, states=ns.states, url=f"/api/v1/namespaces/{ns.name}")


def package(p: LockedPackage) -> Package:
    return Package(
        platform=p.platform,
        manager=p.manager,
        name=p.name,
        version=p.version,
        build=p.build,
        build_number=p.build_number,
        channel=p.channel,
        subdir=p.subdir,
        size=p.size,
        url=p.url,
        sha256=p.sha256,
    )


def package_match(hit: PackageHit) -> PackageMatch:
    return PackageMatch(
        namespace=hit.ref.namespace, environment=hit.ref.name, build_id=hit.build_id, package=package(hit.package)
    )


def diff(old_id: int, new_id: int, d: PackageDiff) -> Diff:
    changed = [PackageChange(kind=c.kind, old=package(c.old), new=package(c.new)) for c in d.changed]
    return Diff(
        from_build=old_id,
        to_build=new_id,
        added=[package(p) for p in d.added],
        removed=[package(p) for p in d.removed],
        changed=changed,
    )


def source(s: SourceInfo) -> Source:
    return Source(
        name=s.name,
        revision=s.revision,
        fetched_at=s.fetched_at,
        last_success_at=s.last_success_at,
        error_reason=s.error_reason,
        error_message=s.error_message,
    )


def change_request(row: ReviewRow, c: ChangeRequestInfo, **detail: Any) -> Any:
    cls = ChangeRequestDetail if detail else ChangeRequest
    report = json.loads(c.report_json) if c.report_json else None
    return cls(
        source=c.source,
        ref=c.ref,
        key=row.key,
        title=c.title,
        state=c.state,
        revision=c.head_revision,
        base_revision=c.base_revision,
        target_revision=c.target_revision,
        has_changes=c.has_changes,
        has_errors=c.has_errors,
        error=c.error,
        reason=c.reason,
        verdict=row.verdict.state,
        verdict_description=row.verdict.description,
        counts=row.counts,
        policy_violations=bool((report or {}).get("policy_violations")),
        updated_at=c.updated_at,
        url=row.url,
        pr_url=row.pr_url,
        forge_error=c.publish_error,
        report=report,
        **detail,
    )


def preview(p: PreviewView) -> Preview:
    return Preview(
        preview_id=p.preview_id,
        environment=p.environment,
        state=p.state,
        reason=p.reason,
        message=p.message,
        url=p.url,
        reused_url=p.reused_url,
    )
