"""What every command shares: exit codes, messages, JSON output, opening the state DB.

Light on purpose (standard library at import): the heavy parts load inside functions.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from condaops.config import Settings
    from condaops.reconciler.model import EnvRef
    from condaops.reconciler.state.readonly import Reader

EXIT_OK, EXIT_CHANGES, EXIT_ERROR = 0, 1, 2
EXIT_UNKNOWN = 1  # a named environment is not known


class Refused(Exception):
    """The command stops with this message and exit status (no traceback)."""

    def __init__(self, message: str, status: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.status = status


def say(message: str) -> None:
    """One line for the operator on stderr."""
    print(f"condaops: {message}", file=sys.stderr)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def parse_ref(text: str) -> EnvRef:
    """``NS/NAME`` from the command line (exit 2 naming it when it is not one)."""
    from condaops.reconciler.model import EnvRef

    try:
        return EnvRef.parse(text)
    except ValueError as exc:
        raise Refused(f"{exc}: name an environment as <namespace>/<name>, e.g. web/flask") from None


def unknown(refs: list[str]) -> Refused:
    """The refusal for environments the state DB does not know (exit 1)."""
    names = ", ".join(refs)
    return Refused(f"no environment {names} is recorded; `condaops status` lists the known ones", EXIT_UNKNOWN)


def where_looked(settings: Settings) -> str:
    """Where the settings came from, or where they were looked for."""
    if settings.config_file is not None:
        return f"settings from {settings.config_file}"
    from pathlib import Path

    return f"looked for {Path.cwd() / 'condaops.yaml'} (missing; CONDAOPS_CONFIG is not set)"


def open_state(settings: Settings) -> Engine:
    """The state DB for reading with SQLAlchemy (``state.db.open_existing``): never
    created, never migrated. Missing, or at another schema revision: exit 2 saying where
    it looked."""
    from condaops.reconciler.state.db import open_existing
    from condaops.reconciler.state.readonly import StateMissing

    try:
        return open_existing(settings.database_url, shown_as=_shown(settings))
    except StateMissing as exc:
        raise _missing(settings, exc) from None


def open_reader(settings: Settings) -> Reader:
    """The state DB for the read commands (``state.readonly``: the DB-API alone, no
    SQLAlchemy), on the same terms as ``open_state``."""
    from condaops.reconciler.state.readonly import StateMissing, open_reader

    try:
        return open_reader(settings.database_url, shown_as=_shown(settings))
    except StateMissing as exc:
        raise _missing(settings, exc) from None


def _shown(settings: Settings) -> str | None:
    return None if settings.database else str(settings.store / "condaops.db")


def _missing(settings: Settings, exc: Exception) -> Refused:
    if settings.config_file is None:
        return Refused(
            f"no settings and no store: {where_looked(settings)}; {exc} (the default store); "
            "give --config FILE, run in the folder holding condaops.yaml, or set CONDAOPS_CONFIG"
        )
    return Refused(
        f"{exc} (the store of {settings.config_file}): nothing is recorded yet; "
        "run `condaops reconcile` (one pass) or `condaops serve` first"
    )
