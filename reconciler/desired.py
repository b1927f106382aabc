"""Desired state as the plan and reviews see it: spec defaults filled from settings.

Its own module so that both the reconcile pass (``service``) and change-request reviews
(``changereqs``) use it without importing each other.
"""

from __future__ import annotations

from dataclasses import replace

from condaops.config import Settings
from condaops.reconciler.model import SourceSnapshot


def effective(snapshot: SourceSnapshot, settings: Settings) -> SourceSnapshot:
    """Fill spec defaults (channels, platforms) from settings: they are part of the identity."""
    channels = settings.channels.default
    platforms = settings.platforms
    envs = tuple(replace(e, spec=e.spec.with_defaults(channels=channels, platforms=platforms)) for e in snapshot.envs)
    return replace(snapshot, envs=envs)
