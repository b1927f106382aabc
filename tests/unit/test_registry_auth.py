"""Push tokens: reading Authorization headers and the token file."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from condaops.registry.auth import PushTokens, parse_token_file, token_from_header

TOKEN = "a-push-token-0123456789"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        (f"Bearer {TOKEN}", TOKEN),
        (f"bearer   {TOKEN} ", TOKEN),
        ("Bearer", None),
        (basic("anyone", TOKEN), TOKEN),
        (basic("", TOKEN), TOKEN),
        (basic("user", "pass:with:colons"), "pass:with:colons"),
        (basic("user", ""), None),
        ("Basic not-base64!", None),
        ("Basic " + base64.b64encode(b"no-colon").decode(), None),
        ("Basic " + base64.b64encode(b"u:\xff").decode(), None),
        (f"Token {TOKEN}", None),
    ],
    ids=[
        "none",
        "empty",
        "bearer",
        "bearer-spaces",
        "bearer-empty",
        "basic",
        "basic-no-user",
        "colons",
        "basic-empty-password",
        "bad-base64",
        "no-colon",
        "not-utf8",
        "other-scheme",
    ],
)
def test_token_from_header(header: str | None, token: str | None) -> None:
    assert token_from_header(header) == token


def test_parse_token_file() -> None:
    text = "# push tokens\n\n  first-token  \nsecond # the CI runner\n#disabled\n"
    assert parse_token_file(text) == ["first-token", "second"]


def test_static_tokens() -> None:
    tokens = PushTokens([TOKEN])

    assert tokens.allows(f"Bearer {TOKEN}")
    assert tokens.allows(basic("ci", TOKEN))
    assert not tokens.allows(f"Bearer {TOKEN}x")
    assert not tokens.allows(None)
    assert not PushTokens().allows(f"Bearer {TOKEN}")  # no tokens: nobody pushes


def test_token_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    file = tmp_path / "tokens"
    file.write_text("old-token-0123456789\n")
    tokens = PushTokens(token_file=file)
    assert tokens.allows("Bearer old-token-0123456789")

    file.write_text("new-token-0123456789-longer\n")
    os.utime(file, (1, 1))  # a different stamp even within the filesystem's time resolution

    assert tokens.allows("Bearer new-token-0123456789-longer")
    assert not tokens.allows("Bearer old-token-0123456789")
    file.unlink()
    assert not tokens.allows("Bearer new-token-0123456789-longer")
