"""Supply chain where users look: policy findings, the SBOM link, the signature state, and
the signing public key at a well-known URL.

``supply_view`` is pure: it reads plain ``BuildInfo`` and the site's signing setting. The
key routes serve ``publish.signing``'s public key (``signing-key.pub``) and every key still
trusted during a rotation (``signing-keys.pem``: current first, then ``previous_keys``);
404 with a sentence when the site signs nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from litestar import Response, get
from litestar.exceptions import NotFoundException

from condaops.reconciler.errors import CondaopsError
from condaops.reconciler.policy.findings import Violation, report_from_json
from condaops.reconciler.state.queries import BuildInfo
from condaops.web.context import CtxDep

if TYPE_CHECKING:
    from condaops.config import Settings

log = logging.getLogger("condaops.web")
KEY_PATH = "/.well-known/condaops/signing-key.pub"
KEYS_PATH = "/.well-known/condaops/signing-keys.pem"
SIGNED, UNSIGNED, NO_KEY, NOT_PUBLISHED = "signed", "unsigned", "no-key", "not-published"


@dataclass(frozen=True, slots=True)
class SupplyView:
    """What the pages and the API show about a build's supply chain."""

    policy_build: int | None = None
    policy_checked: bool = False
    violations: list[Violation] = field(default_factory=list)
    warnings: list[Violation] = field(default_factory=list)
    sbom_build: int | None = None  # the build whose SBOM can be downloaded
    signature: str = NOT_PUBLISHED  # signed | unsigned | no-key | not-published
    signature_note: str = ""

    def to_data(self) -> dict[str, object]:
        return {
            "policy": {
                "build_id": self.policy_build,
                "checked": self.policy_checked,
                "violations": [_finding(v) for v in self.violations],
                "warnings": [_finding(v) for v in self.warnings],
            },
            "sbom_url": f"/builds/{self.sbom_build}/artifacts/sbom" if self.sbom_build else None,
            "signature": {"state": self.signature, "note": self.signature_note},
        }


def supply_view(policy_build: BuildInfo | None, published: BuildInfo | None, *, signing: bool) -> SupplyView:
    """The policy verdict of ``policy_build`` (the newest build of the wanted spec) and the
    SBOM and signatures of ``published`` (the build users get)."""
    findings = report_from_json(policy_build.policy_report) if policy_build else []
    state, note = signature_state(published, signing=signing)
    return SupplyView(
        policy_build=policy_build.build_id if policy_build else None,
        policy_checked=bool(policy_build and policy_build.policy_report is not None),
        violations=[v for v in findings if v.blocking],
        warnings=[v for v in findings if not v.blocking],
        sbom_build=published.build_id if published and "sbom" in published.artifacts else None,
        signature=state,
        signature_note=note,
    )


def signature_state(build: BuildInfo | None, *, signing: bool) -> tuple[str, str]:
    if build is None or build.published_at is None:
        return NOT_PUBLISHED, "not published yet"
    if "signatures" in build.artifacts:
        return SIGNED, "image and attached artifacts signed (cosign format; key at " + KEY_PATH + ")"
    if not signing:
        return NO_KEY, "not signed: this site has no signing key (publish.signing.key_file)"
    if build.publish_error:
        return UNSIGNED, "not signed: publishing failed (see the build log)"
    return UNSIGNED, "not signed: published before a signing key was configured"


def _finding(v: Violation) -> dict[str, object]:
    return {
        "rule": v.rule,
        "level": v.level,
        "file": v.origin,
        "package": v.package,
        "platform": v.platform,
        "message": v.message,
    }


# --- the public key -----------------------------------------------------------------------


def public_keys(settings: Settings) -> list[bytes]:
    """PEM public keys: the signing key's first, then the previous keys still trusted."""
    from condaops.reconciler.signing import load_signer  # cryptography: only when asked

    signing = settings.publish.signing
    if signing.key_file is None:
        return []
    if signing.public_key_file is not None:
        keys = [Path(signing.public_key_file).read_bytes()]
    else:
        keys = [load_signer(signing).public_pem]
    for path in signing.previous_keys:
        keys.append(Path(path).read_bytes())
    return keys


def _key_response(text: bytes) -> Response[bytes]:
    return Response(text, media_type="application/x-pem-file", headers={"Cache-Control": "max-age=300"})


def _keys(ctx: CtxDep) -> list[bytes]:
    try:
        keys = ctx.memo(("signing-keys",), lambda: public_keys(ctx.settings))
    except (CondaopsError, OSError):
        log.warning("signing_key_unavailable: check publish.signing (key_file, password, previous_keys)")
        keys = []
    if not keys:
        raise NotFoundException("this site publishes no signing key: publish.signing.key_file is not set or unusable")
    return keys


@get(KEY_PATH, sync_to_thread=True, include_in_schema=False)
def signing_key(ctx: CtxDep) -> Response[bytes]:
    """The public key that verifies this site's signatures (``cosign verify --key``)."""
    return _key_response(_keys(ctx)[0])


@get(KEYS_PATH, sync_to_thread=True, include_in_schema=False)
def signing_keys(ctx: CtxDep) -> Response[bytes]:
    """Every key still trusted: the current one first, then ``publish.signing.previous_keys``."""
    return _key_response(b"".join(_keys(ctx)))


KEY_HANDLERS = [signing_key, signing_keys]
