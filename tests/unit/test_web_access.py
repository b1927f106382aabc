"""``web.auth``: who may read which namespace, and how the settings are checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from condaops.config import ConfigError, load_settings
from condaops.config.settings import AuthSettings
from condaops.web.access import ANONYMOUS, AccessPolicy, Viewer, safe_next

GLOBAL = "g" * 20
TEAM = "t" * 20
BOTH = "b" * 20


@pytest.fixture
def policy() -> AccessPolicy:
    return AccessPolicy(AuthSettings(tokens=(GLOBAL, BOTH), namespaces={"open": None, "team": (TEAM, BOTH)}))


@pytest.mark.parametrize(
    ("token", "visible"),
    [
        (None, {"open"}),
        (GLOBAL, {"open", "team", "other"}),
        (TEAM, {"open", "team"}),
        (BOTH, {"open", "team", "other"}),
    ],
    ids=["anonymous", "global", "namespace", "both"],
)
def test_who_sees_what(policy: AccessPolicy, token: str | None, visible: set[str]) -> None:
    viewer = policy.viewer(token)
    assert viewer is not None
    assert {ns for ns in ("open", "team", "other") if policy.can_see(viewer, ns)} == visible


def test_unknown_token_is_no_viewer(policy: AccessPolicy) -> None:
    assert policy.viewer("x" * 20) is None
    assert policy.viewer("") is ANONYMOUS


def test_open_by_default() -> None:
    policy = AccessPolicy(AuthSettings())
    assert not policy.enabled and policy.can_see(ANONYMOUS, "anything")
    assert not policy.hides_some(ANONYMOUS)


def test_namespace_tokens_alone_restrict_only_their_namespace() -> None:
    policy = AccessPolicy(AuthSettings(namespaces={"team": (TEAM,)}))

    assert policy.can_see(ANONYMOUS, "other") and not policy.can_see(ANONYMOUS, "team")
    assert policy.can_see(Viewer(authenticated=True, granted=frozenset({"team"})), "team")


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        (None, "/"),
        ("/environments/a/b?x=1", "/environments/a/b?x=1"),
        ("//evil", "/"),
        ("https://evil/", "/"),
        ("/\\evil", "/"),
        ("relative", "/"),
    ],
)
def test_safe_next(target: str | None, safe: str) -> None:
    assert safe_next(target) == safe


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "condaops.yaml"
    path.write_text(text)
    return load_settings(path, environ={}, cwd=tmp_path)


def test_auth_settings_load(tmp_path: Path) -> None:
    text = f"web:\n  auth:\n    tokens: [{GLOBAL}]\n    namespaces: {{open: public, team: [{TEAM}]}}\n"
    settings = load(tmp_path, text)

    assert settings.web.auth.tokens == (GLOBAL,)
    assert settings.web.auth.namespaces == {"open": None, "team": (TEAM,)}
    assert GLOBAL not in repr(settings)


def test_auth_from_an_environment_variable(tmp_path: Path) -> None:
    settings = load_settings(environ={"CONDAOPS_WEB__AUTH": f"{{tokens: [{GLOBAL}]}}"}, cwd=tmp_path)
    assert settings.web.auth.tokens == (GLOBAL,)


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("tokens: [short]", "web.auth.tokens[0]", "at least 16 printable characters"),
        (f"tokens: ['{'x' * 10} {'y' * 10}']", "web.auth.tokens[0]", "without spaces"),
        ("namespaces: {team: []}", "web.auth.namespaces.team", "'public' or a non-empty list of tokens"),
        ("namespaces: {team: secret-but-not-a-list}", "web.auth.namespaces.team", "got a string"),
        ("namespaces: {team: [short]}", "web.auth.namespaces.team", "at least 16"),
        (f"namespaces: {{'a/b': [{TEAM}]}}", "web.auth.namespaces.a/b", "contains a slash"),
        ("namespaces: [team]", "web.auth.namespaces", "expected a mapping"),
        ("token: [x]", "web.auth.token", "did you mean 'web.auth.tokens'"),
    ],
    ids=["short", "space", "empty-list", "string", "short-in-namespace", "bad-namespace", "not-a-mapping", "typo"],
)
def test_bad_auth_settings(tmp_path: Path, text: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "web:\n  auth:\n    " + text + "\n")

    assert info.value.key == key and message in str(info.value)
    assert "secret-but-not-a-list" not in str(info.value)
