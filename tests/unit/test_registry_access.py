"""Who may read and push in the registry: ``web.auth`` for reads, push tokens for pushes."""

from __future__ import annotations

import base64

import pytest

from condaops.config.access import AccessPolicy
from condaops.config.settings import AuthSettings
from condaops.registry.access import RegistryAccess
from condaops.registry.auth import PushTokens
from condaops.registry.errors import RegistryError

GLOBAL, TEAM, PUSH = "g" * 20, "t" * 20, "p" * 20


def basic(password: str, user: str = "me") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def access() -> RegistryAccess:
    policy = AccessPolicy(AuthSettings(tokens=(GLOBAL,), namespaces={"open": None, "team": (TEAM,)}))
    return RegistryAccess(policy, PushTokens((PUSH,)))


@pytest.mark.parametrize(
    ("authorization", "readable"),
    [
        (None, {"open"}),
        ("Basic Og==", {"open"}),  # containers/image without credentials sends ':'
        (basic(TEAM), {"open", "team"}),
        (f"Bearer {TEAM}", {"open", "team"}),
        (basic(GLOBAL), {"open", "team", "other", "dynamic"}),
        (basic(PUSH), {"open", "team", "other", "dynamic"}),
    ],
    ids=["none", "empty-basic", "team-basic", "team-bearer", "global", "push"],
)
def test_reads_follow_web_auth(access: RegistryAccess, authorization: str | None, readable: set[str]) -> None:
    reader = access.reader(authorization)
    names = {ns for ns in ("open", "team", "other", "dynamic") if access.may_read(reader, f"{ns}/env")}
    assert names == readable


def test_an_unknown_token_is_refused_everywhere(access: RegistryAccess) -> None:
    with pytest.raises(RegistryError) as caught:
        access.reader(basic("x" * 20))
    assert caught.value.status == 401 and caught.value.headers["WWW-Authenticate"] == 'Basic realm="condaops"'


def test_anonymous_gets_401_a_token_without_access_404(access: RegistryAccess) -> None:
    with pytest.raises(RegistryError) as anonymous:
        access.require_read(access.reader(None), "team/env")
    assert (anonymous.value.status, anonymous.value.code.name) == (401, "UNAUTHORIZED")
    with pytest.raises(RegistryError) as other:
        access.require_read(access.reader(basic(TEAM)), "other/env")
    assert (other.value.status, other.value.code.name) == (404, "NAME_UNKNOWN")


def test_only_push_tokens_push(access: RegistryAccess) -> None:
    access.require_push(access.reader(basic(PUSH)))
    for reader in (access.reader(None), access.reader(basic(GLOBAL))):
        with pytest.raises(RegistryError) as caught:
            access.require_push(reader)
        assert caught.value.status == 401


def test_blob_links_are_checked_only_when_something_is_hidden(access: RegistryAccess) -> None:
    assert access.checks_blob_links(access.reader(None))
    assert access.checks_blob_links(access.reader(basic(TEAM)))
    assert not access.checks_blob_links(access.reader(basic(GLOBAL)))
    assert not access.checks_blob_links(access.reader(basic(PUSH)))
    open_registry = RegistryAccess(AccessPolicy(AuthSettings()), PushTokens((PUSH,)))
    assert not open_registry.checks_blob_links(open_registry.reader(None))
