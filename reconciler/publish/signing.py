"""Signing pushed manifests the way cosign does (``cosign verify --key`` reads them).

For each manifest a build pushed (the image and every artifact attached to it), in each
target: a *simple signing* payload naming the repository (``docker-reference``) and the
manifest digest is signed with the site's ECDSA P-256 key (SHA-256, DER signature,
base64), and stored as a layer of the OCI manifest tagged ``sha256-<hex>.sig`` in the same
repository — the layer's media type ``application/vnd.dev.cosign.simplesigning.v1+json``,
the signature in its ``dev.cosignproject.cosign/signature`` annotation. This tag scheme is
what ``cosign verify`` and the containers tools (skopeo, podman with a ``sigstoreSigned``
policy and ``use-sigstore-attachments: true``) read; no referrer is pushed for signatures.

Publishing again keeps a signature that already verifies with the current key (ECDSA
signatures differ at each signing, so signing again would grow the ``.sig`` manifest);
signatures by other keys (a rotated one) are kept beside it.

``SignatureOutput`` runs after the image output and signs what it pushed
(``ctx.results["image"].data["pushed"]``); ``signatures.json`` records where.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from condaops.reconciler.errors import CondaopsError
from condaops.reconciler.publish.image import OCI_CONFIG, OCI_MANIFEST, canonical_json
from condaops.reconciler.publish.outputs import OutputContext, OutputResult

if TYPE_CHECKING:
    from condaops.config.settings import Settings
    from condaops.reconciler.publish.push import Pushed
    from condaops.reconciler.publish.targets import Target
    from condaops.reconciler.signing import Signer
    from condaops.registry.api import Descriptor

SIGNATURES_KIND, SIGNATURES_FILE = "signatures", "signatures.json"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"
MAX_SIGNATURES = 32  # layers kept in one .sig manifest (earlier keys' signatures included)


@dataclass(frozen=True, slots=True)
class Signed:
    """One signature as ``signatures.json`` records it."""

    target: str
    repository: str
    digest: str  # of the signed manifest
    tag: str  # sha256-<hex>.sig
    signature_manifest: str  # digest of the .sig manifest
    key_id: str


# --- the format ---------------------------------------------------------------------------


def signature_tag(digest: str) -> str:
    """``sha256:abc…`` → ``sha256-abc….sig``: where cosign looks for a manifest's signatures."""
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}-{hexdigest}.sig"


def simple_signing_payload(docker_reference: str, digest: str) -> bytes:
    """The payload cosign signs for one manifest of one repository."""
    payload = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": None,
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def signature_manifest(layers: Sequence[Mapping[str, Any]], config: Descriptor) -> bytes:
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": config.media_type, "digest": config.digest, "size": config.size},
            "layers": list(layers),
        }
    )


def _config(layers: Sequence[Mapping[str, Any]]) -> bytes:
    """An image config listing the payloads, as cosign writes it (clients ignore it)."""
    return canonical_json(
        {
            "architecture": "",
            "config": {},
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        }
    )


def sign_manifest(target: Target, repository: str, docker_reference: str, digest: str, signer: Signer) -> str:
    """Add ``signer``'s signature of ``digest`` to the repository's ``.sig`` manifest (kept
    when one already verifies); returns the ``.sig`` manifest's digest."""
    tag = signature_tag(digest)
    payload = simple_signing_payload(docker_reference, digest)
    payload_digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    body, layers = _existing(target, repository, tag)
    for layer in layers:
        sig = layer.get("annotations", {}).get(SIGNATURE_ANNOTATION, "")
        if body is not None and layer.get("digest") == payload_digest and signer.verifies(payload, sig):
            return "sha256:" + hashlib.sha256(body).hexdigest()
    blob = target.put_blob(repository, payload, SIMPLE_SIGNING)
    layer = {
        "mediaType": SIMPLE_SIGNING,
        "digest": blob.digest,
        "size": blob.size,
        "annotations": {SIGNATURE_ANNOTATION: signer.sign(payload)},
    }
    layers = [*layers, layer][-MAX_SIGNATURES:]
    body = signature_manifest(layers, _put_config(target, repository, layers))
    return target.put_manifest(repository, body, media_type=OCI_MANIFEST, tags=[tag]).digest


def _put_config(target: Target, repository: str, layers: Sequence[Mapping[str, Any]]) -> Descriptor:
    return target.put_blob(repository, _config(layers), OCI_CONFIG)


def _existing(target: Target, repository: str, tag: str) -> tuple[bytes | None, list[dict[str, Any]]]:
    """The current ``.sig`` manifest's bytes and its signature layers (none: no manifest)."""
    found = target.get_manifest(repository, tag)
    if found is None:
        return None, []
    try:
        layers = json.loads(found[0]).get("layers", [])
    except (ValueError, AttributeError):
        return None, []  # not a manifest we can extend: replace it
    kept = [dict(x) for x in layers if isinstance(x, dict) and x.get("mediaType") == SIMPLE_SIGNING]
    return found[0], kept


# --- the output ---------------------------------------------------------------------------


class SignatureOutput:
    """Signs every manifest the image output pushed, in every target; ``signatures.json``."""

    kind = SIGNATURES_KIND

    def wanted(self, settings: Settings) -> bool:
        publish = settings.publish
        return publish.signing.key_file is not None and publish.image and publish.push

    def run(self, ctx: OutputContext) -> OutputResult:
        image = ctx.results.get("image")
        pushed: list[Pushed] = list(image.data.get("pushed", [])) if image else []
        if not pushed:
            return OutputResult()
        # cryptography (~9 MiB of native code in a long-running service) loads only when signing is on
        from condaops.reconciler.signing import load_signer

        signer = load_signer(ctx.settings.publish.signing)
        result = OutputResult()
        published_key = ctx.settings.publish.signing.public_key_file
        if published_key is not None and _key_text(published_key) != signer.public_pem.strip():
            result.problems.append(
                f"SigningKeyMismatch: publish.signing.public_key_file {published_key} is not the public key of "
                "key_file: users verifying with it will refuse these signatures; replace it"
            )
        signed: list[Signed] = []
        for target in ctx.open_targets():
            try:
                for p in (p for p in pushed if p.target == target.name):
                    signed += _sign_push(target, p, docker_host(target, ctx.settings), signer)
            except CondaopsError as exc:
                result.problems.append(f"{exc.reason}: {exc.message}")
            finally:
                target.close()
        ctx.log.info("signed manifests=%d key=%s", len(signed), signer.key_id)
        path = ctx.req.artifacts_dir / SIGNATURES_FILE
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps([asdict(s) for s in signed], indent=2) + "\n", encoding="utf-8")
        partial.replace(path)
        result.files.append((SIGNATURES_KIND, path))
        return result


def _sign_push(target: Target, pushed: Pushed, host: str, signer: Signer) -> list[Signed]:
    out = []
    for descriptor in (pushed.image, *pushed.artifacts):
        reference = f"{host}/{pushed.name}"
        sig = sign_manifest(target, pushed.name, reference, descriptor.digest, signer)
        out.append(
            Signed(target.name, pushed.name, descriptor.digest, signature_tag(descriptor.digest), sig, signer.key_id)
        )
    return out


def docker_host(target: Any, settings: Settings) -> str:
    """The registry host clients pull from, as the payload's ``docker-reference`` names it."""
    host = getattr(target, "host", None)
    return host or settings.publish.signing.registry_host or settings.web.listen


def _key_text(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except OSError:
        return b""


def read_signatures(path: Path) -> list[dict[str, Any]]:
    """``signatures.json`` as written by ``SignatureOutput``; empty if missing or unreadable."""
    try:
        return list(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return []
