"""A CycloneDX SBOM of one build: every conda and pip package of its environment.

``sbom_json(build, conda, pypi)`` renders a CycloneDX 1.6 JSON document with
cyclonedx-python-lib: one component per package —

* conda: purl ``pkg:conda/<name>@<version>?build=…&channel=…&subdir=…&type=conda|tar.bz2``
  (plus ``repository_url`` for channels outside anaconda.org), licence (an SPDX
  expression when the field is one, else its text as a licence name), sha256 and md5,
  the download URL as a ``distribution`` reference;
* pip: purl ``pkg:pypi/<name>@<version>``, sha256, download URL —

and the build's provenance in ``metadata``: the environment as the described component,
properties ``condaops:source``, ``condaops:revision``, ``condaops:spec_hash``,
``condaops:build_id``, ``condaops:platform``. The serial number and timestamp derive
from the build (not the clock), so the same build always gives the same bytes.

``SbomOutput`` writes ``sbom.cdx.json`` beside the build's other artifacts and offers it
to the image as a referrer with the artifact type ``application/vnd.cyclonedx+json``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, Property, XsUri
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression
from cyclonedx.model.tool import ToolRepository
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from condaops.reconciler.lockread import PIXI_ENVIRONMENT, redact_url
from condaops.reconciler.policy.licenses import parse_choices
from condaops.reconciler.publish.outputs import Attachment, OutputContext, OutputResult

if TYPE_CHECKING:
    from condaops.config.settings import Settings

SBOM_KIND, SBOM_FILE = "sbom", "sbom.cdx.json"
SBOM_ARTIFACT = "application/vnd.cyclonedx+json"  # the CycloneDX JSON media type, as OCI artifact type
_NAMESPACE = uuid.UUID("6f1c3f5e-3c1b-4f0e-9c55-2a4e8f0b7d10")  # for uuid5 serial numbers of condaops SBOMs
_ANACONDA_HOSTS = ("conda.anaconda.org", "repo.anaconda.com")


@dataclass(frozen=True, slots=True)
class BuildFacts:
    """What the SBOM says about the build itself."""

    environment: str
    build_id: int
    spec_hash: str
    platform: str
    created: datetime
    source_url: str | None = None
    revision: str | None = None


@dataclass(frozen=True, slots=True)
class PypiPackage:
    name: str
    version: str
    url: str = ""
    sha256: str | None = None


def sbom_json(build: BuildFacts, conda: Iterable[Any], pypi: Iterable[PypiPackage] = ()) -> str:
    """The CycloneDX 1.6 JSON document of one build (``conda``: rattler package records)."""
    records = list(conda)
    by_name = {_name(r): conda_component(r) for r in records}
    pip = [pypi_component(p) for p in pypi]
    root = Component(
        name=build.environment,
        version=f"build-{build.build_id}",
        type=ComponentType.APPLICATION,
        bom_ref=f"condaops:{build.environment}",
        description=f"conda environment {build.environment} ({build.platform})",
    )
    bom = Bom(
        serial_number=uuid.uuid5(_NAMESPACE, f"{build.environment}/{build.build_id}/{build.spec_hash}"),
        metadata=BomMetaData(
            timestamp=build.created,
            component=root,
            tools=ToolRepository(components=[Component(type=ComponentType.APPLICATION, name="condaops")]),
            properties=_provenance(build),
        ),
        components=sorted([*by_name.values(), *pip], key=lambda c: str(c.bom_ref)),
    )
    bom.register_dependency(root, [*by_name.values(), *pip])
    for record in records:  # the graph as the records' depends name it (virtual packages have no component)
        needed = {spec.split()[0] for spec in getattr(record, "depends", None) or ()}
        bom.register_dependency(by_name[_name(record)], [by_name[n] for n in sorted(needed) if n in by_name])
    return JsonV1Dot6(bom).output_as_string(indent=2) + "\n"


def _name(record: Any) -> str:
    return str(getattr(record.name, "normalized", record.name))


def conda_component(record: Any) -> Component:
    name = _name(record)
    version, build = str(record.version), str(record.build)
    url = redact_url(str(getattr(record, "url", "") or ""))
    channel = str(getattr(record, "channel", "") or "").rstrip("/")
    purl = PackageURL(
        type="conda", name=name, version=version, qualifiers=_conda_qualifiers(record, build, channel, url)
    )
    hashes = [HashType(alg=HashAlgorithm.SHA_256, content=_hex(record.sha256))] if record.sha256 else []
    hashes += [HashType(alg=HashAlgorithm.MD5, content=_hex(record.md5))] if getattr(record, "md5", None) else []
    return Component(
        name=name,
        version=version,
        purl=purl,
        bom_ref=purl.to_string(),
        hashes=hashes,
        licenses=_licenses(getattr(record, "license", None)),
        external_references=[_download(url)] if url else [],
        properties=[Property(name="conda:build", value=build), Property(name="conda:channel", value=channel)],
    )


def pypi_component(package: PypiPackage) -> Component:
    purl = PackageURL(type="pypi", name=package.name, version=package.version)
    return Component(
        name=package.name,
        version=package.version,
        purl=purl,
        bom_ref=purl.to_string(),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=package.sha256)] if package.sha256 else [],
        external_references=[_download(redact_url(package.url))] if package.url else [],
    )


def _conda_qualifiers(record: Any, build: str, channel: str, url: str) -> dict[str, str]:
    parts = urlsplit(channel)
    qualifiers = {
        "build": build,
        "channel": parts.path.strip("/").split("/")[-1] if parts.path.strip("/") else channel,
        "subdir": str(getattr(record, "subdir", "") or ""),
        "type": "conda" if url.endswith(".conda") else "tar.bz2",
    }
    if parts.hostname and parts.hostname not in _ANACONDA_HOSTS:
        qualifiers["repository_url"] = redact_url(channel)
    return {k: v for k, v in qualifiers.items() if v}


def _licenses(text: str | None) -> list[LicenseExpression | DisjunctiveLicense]:
    raw = (text or "").strip()
    if parse_choices(raw) is not None:
        return [LicenseExpression(raw)]
    return [DisjunctiveLicense(name=raw)] if raw and raw.lower() != "none" else []


def _download(url: str) -> ExternalReference:
    return ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(url))


def _provenance(build: BuildFacts) -> list[Property]:
    facts = {
        "condaops:environment": build.environment,
        "condaops:build_id": str(build.build_id),
        "condaops:spec_hash": build.spec_hash,
        "condaops:platform": build.platform,
        "condaops:source": build.source_url or "",
        "condaops:revision": build.revision or "",
    }
    return [Property(name=k, value=v) for k, v in facts.items() if v]


def _hex(value: Any) -> str:
    return value.hex() if isinstance(value, bytes | bytearray) else str(value)


def pypi_packages(pixi_lock: Path | None, platform: str) -> list[PypiPackage]:
    """The pip packages of ``platform`` as the build's pixi.lock holds them (URL with the
    sha256 as its fragment, as condaops writes it)."""
    if pixi_lock is None or not pixi_lock.is_file():
        return []
    from rattler import LockFile

    environment = LockFile.from_path(pixi_lock).environment(PIXI_ENVIRONMENT)
    out = []
    for p in (environment.pypi_packages() if environment else {}).get(platform, []):
        url, _, sha256 = str(p.location).partition("#sha256=")
        out.append(PypiPackage(p.name.lower(), str(p.version), url, sha256 or None))
    return out


def write_sbom(path: Path, text: str) -> Path:
    """Write beside, then rename: a reader never sees half a document."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return path


def newest(records: Sequence[Any]) -> datetime:
    """The newest package timestamp (the epoch when none has one), as the SBOM's time."""
    stamps = [r.timestamp for r in records if getattr(r, "timestamp", None) is not None]
    return max(stamps, default=datetime.fromtimestamp(0, UTC)).astimezone(UTC)


class SbomOutput:
    """``sbom.cdx.json``: the host platform's packages (what the prefix, tarball and image
    hold), attached to the image as a CycloneDX referrer."""

    kind = SBOM_KIND

    def wanted(self, settings: Settings) -> bool:
        return settings.publish.sbom

    def run(self, ctx: OutputContext) -> OutputResult:
        req = ctx.req
        facts = BuildFacts(
            environment=str(req.ref),
            build_id=req.build_id,
            spec_hash=req.spec_hash,
            platform=req.platform,
            created=newest(req.records),
            source_url=req.source_url,
            revision=req.revision,
        )
        pixi = next((p for p in req.lockfiles if p.name == "pixi.lock"), None)
        pypi = pypi_packages(pixi, req.platform)
        path = write_sbom(req.artifacts_dir / SBOM_FILE, sbom_json(facts, req.records, pypi))
        ctx.log.info("sbom_written file=%s conda=%d pypi=%d", path.name, len(req.records), len(pypi))
        return OutputResult(files=[(SBOM_KIND, path)], attachments=[Attachment(SBOM_ARTIFACT, (path,))])
