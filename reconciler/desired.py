"""Desired state as the plan and reviews see it: spec defaults filled from settings, and
the policy that applies to each environment.

Its own module so that both the reconcile pass (``service``) and change-request reviews
(``changereqs``) use it without importing each other.
"""

from __future__ import annotations

from dataclasses import replace

from condaops.config import Settings
from condaops.reconciler.model import SourceSnapshot


def effective(snapshot: SourceSnapshot, settings: Settings) -> SourceSnapshot:
    """Fill spec defaults (channels, platforms) from settings: they are part of the identity;
    give each environment the policy that applies to it (site rules and policy files); and
    turn environments with a committed lockfile into locked specs, or rejections when the
    lock does not fit (``locks.desired``)."""
    from condaops.reconciler.build.channels import channel_urls
    from condaops.reconciler.policy.load import with_policies  # imports rattler: only when reading sources

    channels = settings.channels.default
    platforms = settings.platforms
    envs = tuple(replace(e, spec=e.spec.with_defaults(channels=channels, platforms=platforms)) for e in snapshot.envs)
    alias = settings.channels.alias
    snapshot = with_policies(replace(snapshot, envs=envs), settings, lambda name: channel_urls(name, alias))
    if any(e.lock is not None for e in snapshot.envs):
        from condaops.reconciler.locks.desired import lock_snapshot  # conda-lock: only when needed

        snapshot = lock_snapshot(snapshot, settings)
    return snapshot
