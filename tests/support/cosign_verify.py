"""An independent verifier of cosign signatures, written from the specification.

Kept apart from condaops' signing code on purpose (it imports nothing from condaops):
it is what ``cosign verify --key KEY IMAGE`` checks, read from the cosign signature
specification and the containers "sigstore" signature format:

1. resolve the image reference to its manifest digest (GET the manifest, sha256 of the
   exact bytes served);
2. GET the manifest tagged ``sha256-<hex>.sig`` in the same repository;
3. for each layer of media type ``application/vnd.dev.cosign.simplesigning.v1+json``:
   fetch the payload blob, check its digest, read the base64 signature from the layer's
   ``dev.cosignproject.cosign/signature`` annotation and verify it over the payload bytes
   with the public key (ECDSA P-256, SHA-256, ASN.1 DER);
4. a verified payload must be a JSON object whose ``critical.type`` is ``cosign container
   image signature``, whose ``critical.image.docker-manifest-digest`` is the digest of
   step 1 and whose ``critical.identity.docker-reference`` is the image's repository.

``verify_image`` returns the verified payloads, or raises ``VerificationError`` saying why.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json"
)


class VerificationError(Exception):
    """The image is not signed by the key, or its signature does not match it."""


@dataclass(frozen=True)
class Verified:
    digest: str
    docker_reference: str
    payload: dict


def verify_image(
    registry: str, repository: str, reference: str, public_key_pem: bytes, *, identity: str | None = None
) -> list[Verified]:
    """Verify ``registry/repository:reference`` (a tag or ``sha256:`` digest) against the key.
    ``identity`` is the repository the signature must name (default ``registry/repository``:
    set it when clients pull through another host name, e.g. a proxy)."""
    key = serialization.load_pem_public_key(public_key_pem)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise VerificationError("the public key is not an ECDSA key")
    body = _get(f"http://{registry}/v2/{repository}/manifests/{reference}", MANIFEST_TYPES)
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    if reference.startswith("sha256:") and reference != digest:
        raise VerificationError(f"the registry served a manifest with digest {digest}, not {reference}")
    try:
        sig_manifest = json.loads(
            _get(f"http://{registry}/v2/{repository}/manifests/sha256-{digest[7:]}.sig", MANIFEST_TYPES)
        )
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise VerificationError(f"no signatures found for {repository}@{digest}") from None
        raise
    verified, problems = [], []
    for layer in sig_manifest.get("layers", []):
        if layer.get("mediaType") != "application/vnd.dev.cosign.simplesigning.v1+json":
            continue
        try:
            verified.append(_verify_layer(registry, repository, layer, key, digest, identity))
        except VerificationError as exc:
            problems.append(str(exc))
    if not verified:
        raise VerificationError("no matching signatures: " + ("; ".join(problems) or "no signature layers"))
    return verified


def _verify_layer(
    registry: str, repository: str, layer: dict, key: ec.EllipticCurvePublicKey, digest: str, identity: str | None
) -> Verified:
    payload = _get(f"http://{registry}/v2/{repository}/blobs/{layer['digest']}", "*/*")
    if "sha256:" + hashlib.sha256(payload).hexdigest() != layer["digest"]:
        raise VerificationError("payload digest mismatch")
    signature = layer.get("annotations", {}).get("dev.cosignproject.cosign/signature")
    if not signature:
        raise VerificationError("layer has no signature annotation")
    try:
        key.verify(base64.b64decode(signature), payload, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise VerificationError("invalid signature when validating ASN.1 encoded signature") from None
    claims = json.loads(payload)
    critical = claims.get("critical", {})
    if critical.get("type") != "cosign container image signature":
        raise VerificationError(f"unexpected payload type {critical.get('type')!r}")
    signed_digest = critical.get("image", {}).get("docker-manifest-digest")
    if signed_digest != digest:
        raise VerificationError(f"the payload signs {signed_digest}, not {digest}")
    ref = critical.get("identity", {}).get("docker-reference", "")
    expected = identity or f"{registry}/{repository}"
    if ref != expected:
        raise VerificationError(f"the payload names {ref!r}, not {expected}")
    return Verified(digest, ref, claims)


def _get(url: str, accept: str) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback test registry
        return response.read()
