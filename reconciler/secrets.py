"""Reading a secret that settings name by environment variable or by file.

Secrets are read at each use (rotation needs no restart) and never logged: a missing or
unreadable one is logged with the source, the variable or file, and what to fix.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger("condaops.secrets")


def read_secret(
    source: str, what: str, *, env: str | None, file: Path | None, environ: Mapping[str, str]
) -> str | None:
    """The secret from variable ``env`` or file ``file`` (whichever is set), or None.

    ``what`` names the setting family in messages, e.g. ``status_token`` (keys
    ``status_token_env`` / ``status_token_file``)."""
    if env:
        value = environ.get(env, "").strip()
        if not value:
            log.warning("%s_missing source=%s variable=%s: set it or fix '%s_env'", what, source, env, what)
        return value or None
    if file:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            problem = getattr(exc, "strerror", None) or "not UTF-8 text"
            log.warning(
                "%s_unreadable source=%s file=%s (%s): fix the file or '%s_file'", what, source, file, problem, what
            )
            return None
        if not value:
            log.warning("%s_missing source=%s file=%s is empty", what, source, file)
        return value or None
    return None
