"""The state DB schema (SQLAlchemy 2 declarative).

ORM rows never leave ``condaops.reconciler.state``: readers get plain dataclasses
(``queries.py``), and every write goes through ``recorder.py``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops tzinfo)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime passed to the state DB")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    pass


class Namespace(Base):
    __tablename__ = "namespaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    environments: Mapped[list[Environment]] = relationship(back_populates="namespace")


class Specification(Base):
    __tablename__ = "specifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    canonical: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Environment(Base):
    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("namespace_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id"))
    name: Mapped[str] = mapped_column(String(128))
    source: Mapped[str | None] = mapped_column(String(256))
    path: Mapped[str | None] = mapped_column(Text)
    source_revision: Mapped[str | None] = mapped_column(String(128))
    desired_spec_hash: Mapped[str | None] = mapped_column(String(64))
    current_build_id: Mapped[int | None] = mapped_column(
        ForeignKey("builds.id", use_alter=True, name="fk_env_current_build")
    )
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why it was retired: `condaops retire` (Retired) or a removed file with prune (SourceRemoved).
    retired_reason: Mapped[str | None] = mapped_column(String(64))
    retired_message: Mapped[str | None] = mapped_column(Text)
    # Its file disappeared from the source (prune off: kept, shown as removed); cleared when it is back.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_revision: Mapped[str | None] = mapped_column(String(128))  # the first revision without it
    # Set by `condaops rollback`: the desired spec hash the user rolled back away from.
    # While the source still wants that spec, the older build stays linked.
    pinned_spec_hash: Mapped[str | None] = mapped_column(String(64))
    # A rejection of the desired file (invalid spec, duplicate): shown until fixed.
    rejection_reason: Mapped[str | None] = mapped_column(String(64))
    rejection_message: Mapped[str | None] = mapped_column(Text)
    warnings: Mapped[str | None] = mapped_column(Text)  # JSON list
    # The file's ``condaops: display_name:``: the name its kernels and modules show (not part
    # of the spec: changing it rewrites them, never rebuilds).
    display_name: Mapped[str | None] = mapped_column(String(128))
    # Raised by the recorder, in the same transaction, with every change to this row, its
    # builds or their files (not lease renewals): readers that keep something rendered from
    # them (the status site's environment page) compare it instead of reloading everything.
    state_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    namespace: Mapped[Namespace] = relationship(back_populates="environments")
    current_build: Mapped[Build | None] = relationship(foreign_keys=[current_build_id], post_update=True)


class Build(Base):
    __tablename__ = "builds"
    __table_args__ = (
        Index("ix_builds_env_id", "environment_id", "id"),
        Index("ix_builds_state", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"))
    specification_id: Mapped[int] = mapped_column(ForeignKey("specifications.id"))
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    reason: Mapped[str | None] = mapped_column(String(64))  # why it was scheduled, then the outcome
    message: Mapped[str | None] = mapped_column(Text)
    retryable: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str | None] = mapped_column(String(256))
    source_revision: Mapped[str | None] = mapped_column(String(128))
    source_path: Mapped[str | None] = mapped_column(Text)
    prefix: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(256))
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    timings: Mapped[str | None] = mapped_column(Text)  # JSON {step: seconds}
    collected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # prefix removed by gc
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the worker's hold while building
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the publish job ran (see publish_error)
    publish_error: Mapped[str | None] = mapped_column(Text)
    publisher: Mapped[str | None] = mapped_column(String(256))  # the worker publishing it (claimed once)
    publish_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The effective policy (canonical JSON) the build is checked against, its sha256 (what
    # plan compares with the desired policy) and the findings (JSON list), set by the build.
    policy: Mapped[str | None] = mapped_column(Text)
    policy_hash: Mapped[str | None] = mapped_column(String(64))
    policy_report: Mapped[str | None] = mapped_column(Text)
    lock_path: Mapped[str | None] = mapped_column(Text)  # the committed lockfile a locked spec installs

    environment: Mapped[Environment] = relationship(foreign_keys=[environment_id])
    specification: Mapped[Specification] = relationship()
    artifacts: Mapped[list[Artifact]] = relationship(back_populates="build", cascade="all, delete-orphan")


class LockContent(Base):
    """A committed lockfile's bytes, by the digest of its packages (``Spec.lock``): what a
    worker installs for a locked spec, wherever the source is. Kept while a build or
    preview of that spec may need it; the same packages are stored once."""

    __tablename__ = "lock_contents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("build_id", "kind", "location"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    build_id: Mapped[int] = mapped_column(ForeignKey("builds.id"))
    kind: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    build: Mapped[Build] = relationship(back_populates="artifacts")


class Delivery(Base):
    """What condaops wrote for users of an environment outside the store's own layout: a
    Jupyter kernel, a modulefile, a name for ``conda activate`` (``condaops.reconciler.deliver``).
    One row per thing a user can use, replaced as a whole at each delivery of the environment."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("environment_id", "kind", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", name="fk_delivery_environment"))
    build_id: Mapped[int | None] = mapped_column(ForeignKey("builds.id", name="fk_delivery_build"))
    kind: Mapped[str] = mapped_column(String(16))  # kernel | module | name
    name: Mapped[str] = mapped_column(String(512))  # what users pick or type: the kernel, module or conda name
    path: Mapped[str] = mapped_column(Text)  # where it was written (absolute)
    use: Mapped[str] = mapped_column(Text)  # the command or choice that uses it
    error: Mapped[str | None] = mapped_column(Text)  # "<Reason>: <message>" when it could not be written
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SourceState(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    revision: Mapped[str | None] = mapped_column(String(128))
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error_reason: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    refresh_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a webhook asked (web role)


class RejectedFile(Base):
    """A file of a source that cannot become an environment (no valid name can be derived
    from its path): kept per source and path while the file is there, so it is reported."""

    __tablename__ = "rejected_files"
    __table_args__ = (UniqueConstraint("source", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(256))
    path: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    revision: Mapped[str | None] = mapped_column(String(128))  # the revision it was first seen in
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChangeRequest(Base):
    """An open (or recently closed) pull/merge request ref of a Git source, with its review."""

    __tablename__ = "change_requests"
    __table_args__ = (UniqueConstraint("source", "ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(256))
    ref: Mapped[str] = mapped_column(String(512))
    state: Mapped[str] = mapped_column(String(16))  # open | closed
    head_revision: Mapped[str] = mapped_column(String(128))
    base_revision: Mapped[str | None] = mapped_column(String(128))  # the merge base of head and target
    target_revision: Mapped[str | None] = mapped_column(String(128))  # the target branch when reviewed
    has_changes: Mapped[bool] = mapped_column(Boolean, default=False)
    has_errors: Mapped[bool] = mapped_column(Boolean, default=False)
    report_json: Mapped[str | None] = mapped_column(Text)
    report_markdown: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)  # the review itself failed (source unreadable...)
    reason: Mapped[str | None] = mapped_column(String(64))  # CamelCase reason of ``error``
    title: Mapped[str | None] = mapped_column(Text)  # the pull request's title, when the forge told it
    # Raised with every recorded change to the review or its previews; the forge publisher
    # posts again while ``published_version`` lags behind (and after a restart).
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    published_version: Mapped[int | None] = mapped_column(Integer)
    comment_id: Mapped[str | None] = mapped_column(String(64))  # the review comment on the forge
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    publish_error: Mapped[str | None] = mapped_column(Text)  # why the last post to the forge failed
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PreviewBuild(Base):
    """A build of one environment as a change request would have it, in its preview area.

    Kept apart from ``builds``: nothing here is ever linked into production paths or seen
    by ``plan``."""

    __tablename__ = "preview_builds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    change_request_id: Mapped[int] = mapped_column(
        ForeignKey("change_requests.id", name="fk_preview_change_request", ondelete="CASCADE")
    )
    head_revision: Mapped[str] = mapped_column(String(128))
    namespace: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    path: Mapped[str | None] = mapped_column(Text)
    spec_hash: Mapped[str] = mapped_column(String(64))
    canonical: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    prefix: Mapped[str | None] = mapped_column(Text)
    artifacts: Mapped[str | None] = mapped_column(Text)  # JSON {kind: store-relative path}
    reused: Mapped[str | None] = mapped_column(String(64))  # "build:<id>" / "preview:<id>" whose prefix it reuses
    lock_path: Mapped[str | None] = mapped_column(Text)  # the committed lockfile a locked spec installs
    worker: Mapped[str | None] = mapped_column(String(256))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UpdateBranch(Base):
    """A branch condaops proposes new locks on, and its pull request (``updates``)."""

    __tablename__ = "update_branches"
    __table_args__ = (UniqueConstraint("source", "branch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(256))
    branch: Mapped[str] = mapped_column(String(512))
    environments: Mapped[str] = mapped_column(Text)  # JSON list of "ns/name"
    state: Mapped[str] = mapped_column(String(16))  # open | closed | held
    digest: Mapped[str | None] = mapped_column(String(64))  # what the branch proposes (plan.Proposal.digest)
    head_sha: Mapped[str | None] = mapped_column(String(64))  # the commit condaops pushed last
    target_sha: Mapped[str | None] = mapped_column(String(64))  # the target it was made on
    title: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)  # why it was held or closed (said on the pull request)
    dismissed_digest: Mapped[str | None] = mapped_column(String(64))  # closed unmerged by a person
    # Raised with every change the forge must hear of; the publisher posts while it lags.
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    published_version: Mapped[int | None] = mapped_column(Integer)
    pr_number: Mapped[int | None] = mapped_column(Integer)
    pr_url: Mapped[str | None] = mapped_column(Text)
    pr_state: Mapped[str | None] = mapped_column(String(16))  # open | closed | merged, as last seen
    pr_head: Mapped[str | None] = mapped_column(String(64))  # the branch commit the pull request last showed
    publish_error: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UpdateReport(Base):
    """What an update run found for one environment: newer packages (or none), or why it
    could not tell. Locked environments name their update branch."""

    __tablename__ = "update_reports"
    __table_args__ = (UniqueConstraint("namespace", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(256))
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revision: Mapped[str | None] = mapped_column(String(128))  # the source revision solved
    available: Mapped[bool] = mapped_column(Boolean, default=False)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    branch: Mapped[str | None] = mapped_column(String(512))  # the update branch (locked environments)
    packages: Mapped[str | None] = mapped_column(Text)  # JSON {platform: PackageDiff.to_data()}
    held: Mapped[str | None] = mapped_column(Text)  # JSON list: versions the cooldown held back
    error: Mapped[str | None] = mapped_column(Text)
