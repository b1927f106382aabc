"""Which forge a Git source's settings describe, and its token (read at each use, so a
rotated token is picked up; never logged)."""

from __future__ import annotations

from collections.abc import Mapping

from condaops.config import SourceSettings
from condaops.reconciler.forge.api import Forge
from condaops.reconciler.secrets import read_secret


def forge_of(source: SourceSettings) -> Forge | None:
    """The forge of a Git source with ``status_api`` and ``status_repo`` set, else None."""
    if source.git is None or not source.status_api or not source.status_repo:
        return None
    return Forge(source.status_api, source.status_url, source.status_repo)


def read_token(source: SourceSettings, environ: Mapping[str, str]) -> str | None:
    """The source's API token, or None (logged, without the value) when it is not available."""
    return read_secret(
        source.name, "status_token", env=source.status_token_env, file=source.status_token_file, environ=environ
    )
