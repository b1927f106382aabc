"""Push tokens: static tokens from the settings and an optional token file.

A client presents a token as ``Authorization: Bearer <token>`` or as the password of basic
auth (any user name), which is what ``skopeo --dest-creds user:TOKEN``, ``podman login``
and oras' basic auth send. Who may read is ``registry.access`` (``web.auth``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import threading
from collections.abc import Iterable
from pathlib import Path

REALM = "condaops"
# Basic, not Bearer: a Bearer challenge sends Docker-style clients to a token server we do
# not run, while basic credentials carrying the token work in every client.
CHALLENGE = f'Basic realm="{REALM}"'


def token_from_header(header: str | None) -> str | None:
    """The token in an Authorization header (Bearer, or basic auth's password); pure."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, sep, password = decoded.partition(":")
        return password if sep and password else None
    return None


def parse_token_file(text: str) -> list[str]:
    """Tokens, one per line; blank lines and ``#`` comments are skipped (pure)."""
    tokens = []
    for line in text.splitlines():
        token = line.split("#", 1)[0].strip()
        if token:
            tokens.append(token)
    return tokens


class PushTokens:
    """Checks push tokens; the file is re-read when its modification time or size changes,
    so tokens can be rotated without a restart."""

    def __init__(self, tokens: Iterable[str] = (), token_file: Path | None = None) -> None:
        self._static = tuple(tokens)
        self._file = token_file
        self._file_tokens: tuple[str, ...] = ()
        self._file_stamp: tuple[float, int] | None = None
        self._lock = threading.Lock()

    def allows(self, authorization: str | None) -> bool:
        """Whether the header carries a valid push token (constant-time comparisons)."""
        token = token_from_header(authorization)
        if token is None:
            return False
        presented = token.encode()
        # Compare against every token (no early exit) so timing does not tell which matched.
        matches = [hmac.compare_digest(presented, known.encode()) for known in self._tokens()]
        return any(matches)

    def _tokens(self) -> tuple[str, ...]:
        return self._static + self._read_file()

    def _read_file(self) -> tuple[str, ...]:
        if self._file is None:
            return ()
        try:
            stat = os.stat(self._file)
        except OSError:
            return ()  # a file removed while running: only the static tokens are valid
        stamp = (stat.st_mtime, stat.st_size)
        with self._lock:
            if stamp != self._file_stamp:
                try:
                    self._file_tokens = tuple(parse_token_file(self._file.read_text(encoding="utf-8")))
                except (OSError, UnicodeDecodeError):
                    self._file_tokens = ()
                self._file_stamp = stamp
            return self._file_tokens
