"""Where registry content lives under the storage keys (pure; no IO).

::

    blobs/<alg>/<hex[:2]>/<hex>                          content, addressed by digest
    repositories/<name>/_manifests/revisions/<alg>/<hex> the manifest's media type
    repositories/<name>/_manifests/tags/<tag>            the digest the tag points at
    repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>  descriptor of a referrer (JSON)
    repositories/<name>/_layers/<alg>/<hex>              a blob the repository's manifests reference
    _uploads/<id>/state.json, _uploads/<id>/<n>          upload sessions and their chunks

Blobs are shared by all repositories: a shared blob that a pusher finds with HEAD is never
uploaded twice (environments share their big layers). Each repository also lists the blobs
its manifests reference (``_layers``), so that when some namespaces are private a blob is
served only through a repository the reader may read that uses it. Manifests and tags
belong to one repository. Repository path components start with a letter or
digit, so they never collide with the ``_`` folders.
"""

from __future__ import annotations

from condaops.registry.protocol import Digest

UPLOADS = "_uploads"


def blob_key(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


REPOSITORIES = "repositories"
MANIFESTS = "_manifests"


def repository_key(name: str) -> str:
    return f"repositories/{name}"


def layer_key(name: str, digest: Digest) -> str:
    return f"repositories/{name}/_layers/{digest.algorithm}/{digest.hex}"


def revisions_key(name: str, algorithm: str = "sha256") -> str:
    return f"repositories/{name}/_manifests/revisions/{algorithm}"


def revision_key(name: str, digest: Digest) -> str:
    return f"{revisions_key(name, digest.algorithm)}/{digest.hex}"


def tags_key(name: str) -> str:
    return f"repositories/{name}/_manifests/tags"


def tag_key(name: str, tag: str) -> str:
    return f"{tags_key(name)}/{tag}"


def referrers_key(name: str, subject: Digest) -> str:
    return f"repositories/{name}/_referrers/{subject.algorithm}/{subject.hex}"


def referrer_key(name: str, subject: Digest, digest: Digest) -> str:
    return f"{referrers_key(name, subject)}/{digest.algorithm}-{digest.hex}"


def upload_key(upload_id: str) -> str:
    return f"{UPLOADS}/{upload_id}"
