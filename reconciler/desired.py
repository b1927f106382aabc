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
    and give each environment the policy that applies to it (site rules and policy files)."""
    from condaops.reconciler.build.channels import channel_urls
    from condaops.reconciler.policy.load import with_policies  # imports rattler: only when reading sources

    channels = settings.channels.default
    platforms = settings.platforms
    envs = tuple(replace(e, spec=e.spec.with_defaults(channels=channels, platforms=platforms)) for e in snapshot.envs)
    alias = settings.channels.alias
    return with_policies(replace(snapshot, envs=envs), settings, lambda name: channel_urls(name, alias))
