"""Who may read and push what in the registry.

Reading follows the status site's visibility (``web.auth``, decided by
``condaops.config.access``): a namespace the site hides needs a token to pull, and the
first component of a repository name is its namespace (``dynamic/...`` is the namespace
``dynamic``). Pushing needs a push token (``registry.push_tokens``), which also reads
everything (a publisher checks what is already there).

Credentials come as ``Authorization: Basic`` (any user name, the token as password: what
``podman login``, ``skopeo login`` and oras' basic auth send) or ``Bearer <token>``. Basic,
not the Docker token flow: the tokens are already static bearer secrets, so a token
server would add signing keys and an endpoint that protect nothing more, and every client
speaks basic auth. An unknown credential is refused (401) everywhere, so ``podman login``
with a wrong token fails at once; an anonymous pull of a hidden namespace gets 401 with
the challenge, which makes clients use the credentials they were given.

Blobs are stored once for all repositories (``layout``). When some namespace is hidden, a
reader that may not read everything gets a blob only through a repository it may read
that references it (``RegistryStore.repository_has_blob``), so a private layer cannot be
fetched by its digest through a public repository.
"""

from __future__ import annotations

from dataclasses import dataclass

from condaops.config.access import ANONYMOUS, EVERYTHING, AccessPolicy, Viewer
from condaops.registry.auth import CHALLENGE, PushTokens, token_from_header
from condaops.registry.errors import NAME_UNKNOWN, UNAUTHORIZED, RegistryError


@dataclass(frozen=True, slots=True)
class Reader:
    """The client of one request."""

    viewer: Viewer = ANONYMOUS
    pusher: bool = False  # holds a push token

    @property
    def everything(self) -> bool:
        return self.pusher or self.viewer.everything


def namespace_of(name: str) -> str:
    return name.split("/", 1)[0]


class RegistryAccess:
    """Read access by ``web.auth``, push access by push tokens (see module doc)."""

    def __init__(self, policy: AccessPolicy, push_tokens: PushTokens) -> None:
        self.policy = policy
        self.push_tokens = push_tokens

    def reader(self, authorization: str | None) -> Reader:
        """The client presenting ``authorization``; UNAUTHORIZED for a credential that is
        neither a read token nor a push token."""
        token = token_from_header(authorization)
        if not token:  # none, or empty basic credentials (containers/image sends ':' when it has none)
            return Reader()
        if self.push_tokens.allows(authorization):
            return Reader(EVERYTHING, pusher=True)
        viewer = self.policy.viewer(token)
        if viewer is None:
            raise RegistryError(
                UNAUTHORIZED,
                "the credentials are not a token this registry knows: log in again with a read token "
                "(web.auth) or a push token, as the password of basic auth or as 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": CHALLENGE},
            )
        return Reader(viewer)

    def require_push(self, reader: Reader) -> None:
        if not reader.pusher:
            raise RegistryError(
                UNAUTHORIZED,
                "pushing needs a token: send it as 'Authorization: Bearer <token>' or as the password of basic auth",
                headers={"WWW-Authenticate": CHALLENGE},
            )

    def may_read(self, reader: Reader, name: str) -> bool:
        return reader.everything or self.policy.can_see(reader.viewer, namespace_of(name))

    def require_read(self, reader: Reader, name: str) -> None:
        """Nothing when ``reader`` may read repository ``name``; else 401 for an anonymous
        client (log in) and, for a token that does not open it, the answer a repository
        that does not exist gets (names do not leak)."""
        if self.may_read(reader, name):
            return
        if not reader.viewer.authenticated:
            raise RegistryError(
                UNAUTHORIZED,
                f"pulling from '{namespace_of(name)}/' needs a token: log in with a read token "
                "(podman login / skopeo login <host>, any user name, the token as password)",
                headers={"WWW-Authenticate": CHALLENGE},
            )
        raise RegistryError(NAME_UNKNOWN, f"there is no repository '{name}'", detail={"name": name})

    def checks_blob_links(self, reader: Reader) -> bool:
        """Whether a blob must be referenced by the repository it is fetched through."""
        return self.policy.enabled and not reader.everything
