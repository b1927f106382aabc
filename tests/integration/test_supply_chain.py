"""SBOMs and signatures of published builds, checked with real clients.

The SBOM is validated against the CycloneDX 1.6 JSON schema (the validator shipped by
cyclonedx-python-lib) and pulled with oras-py through the referrers API; signatures are
checked by ``tests/support/cosign_verify.py``, a verifier written from the cosign
specification that shares no code with condaops' signer. Keys are made with the openssl
commands docs/supply-chain.md gives.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from condaops.config import load_settings
from condaops.config.settings import RegistrySettings, Settings
from condaops.reconciler.publish.image import OCI_MANIFEST, canonical_json
from condaops.reconciler.state.db import make_engine
from condaops.registry.app import create_registry_app
from condaops.web.app import create_app
from tests.integration.conftest import ALIAS, Project
from tests.integration.test_publish import build, image_record, publish
from tests.support.cosign_verify import VerificationError, verify_image
from tests.support.registry_clients import docker_registry, oras_client, require_tool, serve_asgi

pytestmark = pytest.mark.integration

CYCLONEDX = "application/vnd.cyclonedx+json"
PULL_HOST = "registry.example.org:5000"  # what users pull through (publish.signing.registry_host)


def make_key(folder: Path, password: str = "s3cret") -> tuple[Path, Path]:
    """An encrypted ECDSA P-256 key and its public key, with the documented openssl commands."""
    require_tool("openssl", "openssl")
    key, pub = folder / "cosign.key", folder / "cosign.pub"
    folder.mkdir(parents=True, exist_ok=True)
    raw = subprocess.run(
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout"], check=True, capture_output=True
    ).stdout
    subprocess.run(
        ["openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-passout", f"pass:{password}", "-out", str(key)],
        input=raw,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["openssl", "ec", "-in", str(key), "-passin", f"pass:{password}", "-pubout", "-out", str(pub)],
        check=True,
        capture_output=True,
    )
    return key, pub


@pytest.fixture
def signed(project, tool_channel, tmp_path: Path) -> tuple[Project, Path]:  # type: ignore[no-untyped-def]
    key, pub = make_key(tmp_path / "keys")
    p = project(
        {ALIAS + "testchan": tool_channel},
        publish={
            "enabled": False,
            "signing": {"key_file": str(key), "password_env": "SIGNING_PASSWORD", "registry_host": PULL_HOST},
        },
    )
    return p, pub


def get(host: str, path: str, accept: str = "*/*") -> bytes:
    request = urllib.request.Request(f"http://{host}{path}", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def test_sbom_is_valid_cyclonedx_and_pulled_by_oras(project, tool_channel, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = project({ALIAS + "testchan": tool_channel}, publish={"enabled": False})
    item = build(p, "tool=1.0")
    path = Path(item["artifacts"]["sbom"])
    text = path.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    sbom = json.loads(text)
    assert sbom["specVersion"] == "1.6"
    purls = sorted(c["purl"] for c in sbom["components"])
    assert purls[1].startswith("pkg:conda/tool@1.0?build=")
    assert "channel=testchan" in purls[1] and "subdir=linux-64" in purls[1]
    graph = {d["ref"].split("@")[0]: [x.split("@")[0] for x in d.get("dependsOn", [])] for d in sbom["dependencies"]}
    assert graph["pkg:conda/tool"] == ["pkg:conda/libtool-data"]
    props = {x["name"]: x["value"] for x in sbom["metadata"]["properties"]}
    assert props["condaops:spec_hash"] == item["spec_hash"] and props["condaops:environment"] == "team/Tool"
    publish(p, item["build_id"])  # publishing again gives the same bytes
    assert path.read_text() == text
    record = image_record(item)
    with serve_asgi(create_registry_app(Settings(store=p.store))) as host:
        index = json.loads(
            get(host, f"/v2/team/tool/referrers/{record['manifest_digest']}", "application/vnd.oci.image.index.v1+json")
        )
        [artifact] = [m for m in index["manifests"] if m.get("artifactType") == CYCLONEDX]
        pulled = oras_client(host, token=None).pull(
            target=f"{host}/team/tool@{artifact['digest']}", outdir=str(tmp_path / "pulled")
        )
    assert [Path(f).read_text() for f in pulled] == [text]


def test_signed_image_and_artifacts_verify_and_tampering_is_refused(signed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p, pub = signed
    item = build(p, "tool=1.0")
    publish(p, item["build_id"], {"SIGNING_PASSWORD": "s3cret"})
    item = p.status()["team/Tool"]
    record = image_record(item)
    signatures = json.loads(Path(item["artifacts"]["signatures"]).read_text())
    assert {s["digest"] for s in signatures} == {record["manifest_digest"], *record["artifacts"]}
    key = pub.read_bytes()
    _, other = make_key(tmp_path / "other")
    with serve_asgi(create_registry_app(Settings(store=p.store, registry=_push_token()))) as host:
        for digest in (record["manifest_digest"], *record["artifacts"]):
            [found] = verify_image(host, "team/tool", digest, key, identity=f"{PULL_HOST}/team/tool")
            assert found.payload["critical"]["image"]["docker-manifest-digest"] == digest
        verify_image(host, "team/tool", "latest", key, identity=f"{PULL_HOST}/team/tool")
        with pytest.raises(VerificationError, match="invalid signature"):
            verify_image(host, "team/tool", "latest", other.read_bytes(), identity=f"{PULL_HOST}/team/tool")
        with pytest.raises(VerificationError, match="names"):  # signed for the host users pull from
            verify_image(host, "team/tool", "latest", key)
        tampered = _tamper(host, record["manifest_digest"])
        with pytest.raises(VerificationError, match="no signatures found"):
            verify_image(host, "team/tool", tampered, key, identity=f"{PULL_HOST}/team/tool")
        _copy_signature(host, record["manifest_digest"], tampered)  # a genuine signature of another manifest
        with pytest.raises(VerificationError, match="the payload signs"):
            verify_image(host, "team/tool", tampered, key, identity=f"{PULL_HOST}/team/tool")
    publish(p, item["build_id"], {"SIGNING_PASSWORD": "s3cret"})  # again: the signature is kept, not added
    sig = json.loads(Path(item["artifacts"]["signatures"]).read_text())
    assert [s["signature_manifest"] for s in sig] == [s["signature_manifest"] for s in signatures]


def test_unsigned_without_a_key(project, tool_channel, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = project({ALIAS + "testchan": tool_channel}, publish={"enabled": False})
    item = build(p, "tool=1.0")
    assert "signatures" not in item["artifacts"] and not item["signed"]
    _, pub = make_key(tmp_path / "keys")
    with serve_asgi(create_registry_app(Settings(store=p.store))) as host:
        with pytest.raises(VerificationError, match="no signatures found"):
            verify_image(host, "team/tool", "latest", pub.read_bytes())
    with web_app(p) as web:
        with pytest.raises(urllib.error.HTTPError) as missing:
            get(web, "/.well-known/condaops/signing-key.pub")
        api = json.loads(get(web, "/api/v1/environments/team/Tool"))
        page = get(web, f"/builds/{item['build_id']}").decode()
    assert missing.value.code == 404
    assert api["supply_chain"]["signature"] == "no-key"
    assert "this site has no signing key" in page


def test_public_key_derived_from_the_signing_key(signed, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    p, pub = signed
    monkeypatch.setenv("SIGNING_PASSWORD", "s3cret")
    with web_app(p) as web:
        assert get(web, "/.well-known/condaops/signing-key.pub") == pub.read_bytes()
        assert get(web, "/.well-known/condaops/signing-keys.pem") == pub.read_bytes()


@contextlib.contextmanager
def web_app(p: Project) -> Iterator[str]:
    settings = load_settings(p.config_file, environ={})
    engine = make_engine(settings.database_url)
    try:
        with serve_asgi(create_app(settings, engine, cache_seconds=0)) as host:
            yield host
    finally:
        engine.dispose()


TOKEN = "push-token-for-tests-0123456789"


def _push_token() -> RegistrySettings:
    return RegistrySettings(push_tokens=(TOKEN,))


def _put(host: str, path: str, body: bytes, media_type: str) -> None:
    auth = base64.b64encode(f"condaops:{TOKEN}".encode()).decode()
    request = urllib.request.Request(
        f"http://{host}{path}",
        data=body,
        method="PUT",
        headers={"Content-Type": media_type, "Authorization": f"Basic {auth}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status in (200, 201)


def _tamper(host: str, digest: str) -> str:
    """Push the image's manifest with one annotation changed under a new tag; its digest."""
    manifest = json.loads(get(host, f"/v2/team/tool/manifests/{digest}", OCI_MANIFEST))
    manifest.setdefault("annotations", {})["org.opencontainers.image.title"] = "tampered"
    body = canonical_json(manifest)
    _put(host, "/v2/team/tool/manifests/tampered", body, OCI_MANIFEST)
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _copy_signature(host: str, signed_digest: str, target_digest: str) -> None:
    sig = get(host, f"/v2/team/tool/manifests/sha256-{signed_digest[7:]}.sig", OCI_MANIFEST)
    _put(host, f"/v2/team/tool/manifests/sha256-{target_digest[7:]}.sig", sig, OCI_MANIFEST)


def test_signatures_in_an_external_registry(project, tool_channel, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """docker-registry (distribution 2.8: no referrers API) gets the image, its artifacts
    under the referrers tag and a .sig tag for each, signed for its own host."""
    key, pub = make_key(tmp_path / "keys")
    with docker_registry(tmp_path / "registry") as external:
        p = project(
            {ALIAS + "testchan": tool_channel},
            publish={"enabled": False, "signing": {"key_file": str(key), "password_file": str(_password(tmp_path))}},
            registry={"push": [{"name": "external", "url": external.host, "repository": "mirror", "insecure": True}]},
        )
        item = build(p, "tool=1.0")
        signatures = json.loads(Path(item["artifacts"]["signatures"]).read_text())
        record = image_record(item)
        assert {s["target"] for s in signatures} == {"external"}
        for digest in (record["manifest_digest"], *record["targets"]["external"]["artifacts"]):
            verify_image(external.host, "mirror/team/tool", digest, pub.read_bytes())


def _password(folder: Path) -> Path:
    path = folder / "signing-password"
    path.write_text("s3cret\n")
    return path
