"""The site's signing key: load it (password from a variable or a file), sign, verify.

ECDSA P-256 with SHA-256 and DER signatures, base64-encoded: what cosign's ``--key``
mode uses. Kept out of ``publish`` so the site can serve the public key without
importing publishing (``web.supplychain``).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from condaops.reconciler.errors import StalledError
from condaops.reconciler.reasons import Reason
from condaops.reconciler.secrets import read_secret

if TYPE_CHECKING:
    from condaops.config.settings import SigningSettings


class SigningKeyError(StalledError):
    """The signing key cannot be used: nothing is signed until the settings are fixed."""

    reason = Reason.SIGNING_KEY_INVALID  # publish.signing.key_file unreadable, wrong password or not ECDSA P-256


class Signer:
    """An ECDSA P-256 private key that signs payloads (SHA-256, DER, base64)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key

    @property
    def public_pem(self) -> bytes:
        return public_pem(self._key.public_key())

    @property
    def key_id(self) -> str:
        return key_id(self._key.public_key())

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(self._key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()

    def verifies(self, payload: bytes, signature: str) -> bool:
        try:
            self._key.public_key().verify(base64.b64decode(signature), payload, ec.ECDSA(hashes.SHA256()))
            return True
        except (InvalidSignature, ValueError):
            return False


def load_signer(settings: SigningSettings, environ: Mapping[str, str] | None = None) -> Signer:
    """The key of ``publish.signing``; raises ``SigningKeyError`` naming the key and what to fix."""
    assert settings.key_file is not None
    password = read_secret(
        "publish.signing",
        "password",
        env=settings.password_env,
        file=settings.password_file,
        environ=os.environ if environ is None else environ,
    )
    try:
        data = settings.key_file.read_bytes()
    except OSError as exc:
        raise SigningKeyError(
            f"publish.signing.key_file {settings.key_file} cannot be read ({exc.strerror}); fix the file or the key"
        ) from None
    try:
        key = serialization.load_pem_private_key(data, password.encode() if password else None)
    except (TypeError, ValueError) as exc:
        raise SigningKeyError(
            f"publish.signing.key_file {settings.key_file} cannot be loaded ({exc}); check the file and "
            "publish.signing.password_env / password_file"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningKeyError(f"publish.signing.key_file {settings.key_file} is not an ECDSA P-256 key; make one")
    return Signer(key)


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: Any) -> str:
    """A short fingerprint: sha256 of the public key's DER, first 16 hex digits."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]
