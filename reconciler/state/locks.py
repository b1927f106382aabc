"""Committed lockfiles in the state DB: stored once per package digest when a locked spec
is queued (build or preview), read back when a worker claims it. Helpers for the recorders'
transactions (a ``Session`` in, no commit)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from condaops.reconciler.model import LockInput
from condaops.reconciler.spec import Spec
from condaops.reconciler.state.schema import LockContent


def keep_lock(s: Session, spec: Spec, lock: LockInput | None) -> str | None:
    """Store the bytes a locked ``spec`` installs (once per digest); its path, or None for
    a spec without a lock."""
    if spec.lock is None or lock is None:
        return None
    exists = s.scalar(select(LockContent.id).where(LockContent.digest == spec.lock.digest))
    if exists is None:
        s.add(LockContent(digest=spec.lock.digest, kind=spec.lock.kind, content=lock.data))
    return lock.path


def lock_bytes(s: Session, spec: Spec) -> bytes | None:
    """The stored bytes of a locked ``spec``'s lockfile (None: not locked, or not stored)."""
    if spec.lock is None:
        return None
    return s.scalar(select(LockContent.content).where(LockContent.digest == spec.lock.digest))
