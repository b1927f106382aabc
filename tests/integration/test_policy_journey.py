"""The supply-chain journey of docs/supply-chain.md, with real conda-forge packages.

An IT team writes a licence rule in a pull request; ``condaops check`` (the PR check)
fails on the environment that breaks it (readline is GPL-3.0-only) and exits 2 on a
broken policy file; the fix is pushed, the check passes, the pull request is merged; the
reconciler builds from the merged branch with the rule checked after solving, publishes a
signed image, and oras pulls its SBOM, which lists every package's licence. Real git
(the CLI makes the repository, condaops reads it with dulwich), the real conda-forge
packages of ../shared/realdata served as the conda-forge mirror, the built-in registry,
oras-py, and the independent cosign verifier of tests/support.

A second test drives the build side: a violation fails the build with ``PolicyViolation``
(the linked build stays), and a namespace policy file that allows the licence makes the
plan rebuild (``PolicyChanged``) without any change to the environment file.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from condaops.config import load_settings
from condaops.reconciler.state.db import make_engine
from condaops.registry.app import create_registry_app
from condaops.web.app import create_app
from tests.integration.conftest import ALIAS, Project
from tests.integration.test_publish import image_record, publish
from tests.integration.test_review import commit, git
from tests.integration.test_supply_chain import PULL_HOST, make_key
from tests.support.cosign_verify import verify_image
from tests.support.registry_clients import oras_client, require_tool, serve_asgi

pytestmark = pytest.mark.integration

TOOLS = "channels: [conda-forge]\ndependencies:\n  - openssl\n  - readline\n"
TOOLS_FIXED = "channels: [conda-forge]\ndependencies:\n  - openssl\n"
POLICY = """\
# IT's rules for every environment of this repository
licenses:
  deny: [GPL-3.0-only, AGPL-*]   # strong copyleft; GCC's runtime (GPL-3.0-only WITH GCC-exception-3.1) is fine
  unknown: warning               # packages without an SPDX licence are shown, not blocked
packages:
  deny:
    - spec: "openssl <3"
      reason: "OpenSSL 1.x is out of support"
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    require_tool("git", "git")
    repo = tmp_path / "envs-repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {"envs/data/tools.yaml": TOOLS_FIXED}, "data/tools: openssl")
    return repo


@pytest.fixture
def site(project, realdata_channel, repo: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    key, pub = make_key(tmp_path / "keys")
    p = project(
        {ALIAS + "conda-forge": realdata_channel("conda-forge-py312-deps")},
        sources=[{"git": str(repo), "branch": "main", "path": "envs"}],
        channels={"default": ["conda-forge"]},
        publish={
            "enabled": False,
            "signing": {
                "key_file": str(key),
                "password_env": "SIGNING_PASSWORD",
                "public_key_file": str(pub),
                "registry_host": PULL_HOST,
            },
        },
    )
    return p, pub


def check(p: Project, repo: Path, ref: str) -> tuple[int, str]:
    code, out, err = p.cli("check", "--git", str(repo), "--ref", ref, "--base", "main", "--path", "envs")
    return code, out + err


def test_licence_rule_in_a_pull_request_to_a_signed_image_with_its_sbom(site, repo: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p, pub = site
    # 1. the pull request: a licence rule, and an environment that breaks it
    git(repo, "checkout", "-q", "-b", "it-policy")
    commit(repo, {"envs/condaops-policy.yaml": POLICY, "envs/data/tools.yaml": TOOLS}, "IT policy; readline")
    git(repo, "update-ref", "refs/pull/1/head", "HEAD")
    code, out = check(p, repo, "refs/pull/1/head")
    assert code == 1, out
    assert "❌ `condaops-policy.yaml` **license-deny**: readline 8.2" in out
    assert "licence 'GPL-3.0-only' is denied (linux-64)" in out
    assert "libgcc" not in out.split("license-deny")[1].split("\n")[0]  # GCC's exception is fine

    # 2. a broken policy file is its own failure (exit 2), naming file and key
    git(repo, "checkout", "-q", "-b", "broken", "main")
    commit(repo, {"envs/condaops-policy.yaml": "licenses: {deny: GPL-3.0-only, level: fatal}\n"}, "broken")
    git(repo, "update-ref", "refs/pull/2/head", "HEAD")
    code, out = check(p, repo, "refs/pull/2/head")
    assert code == 2, out
    assert "condaops-policy.yaml: key 'licenses.level': expected one of error, warning" in out

    # 3. the fix is pushed to the pull request: the check passes
    git(repo, "checkout", "-q", "it-policy")
    commit(repo, {"envs/data/tools.yaml": TOOLS_FIXED}, "drop readline")
    git(repo, "update-ref", "refs/pull/1/head", "HEAD")
    code, out = check(p, repo, "refs/pull/1/head")
    assert code == 0, out
    assert "❌" not in out

    # 4. merged: the reconciler builds the merged branch, checked against the merged policy
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge pull request #1", "it-policy")
    code, _, err = p.cli("reconcile", "--once", "--wait")
    assert code == 0, err
    item = p.status()["data/tools"]
    assert item["state"] == "ready" and item["policy"]["checked"] and not item["policy"]["violations"]
    assert {w["rule"] for w in item["policy"]["warnings"]} == {"license-unknown"}  # _libgcc_mutex: no licence

    # 5. published and signed; the image's SBOM lists the licences
    publish(p, item["build_id"], {"SIGNING_PASSWORD": "s3cret"})
    item = p.status()["data/tools"]
    assert item["signed"] and item["sbom"]
    record = image_record(item)
    settings = load_settings(p.config_file, environ={})
    with serve_asgi(create_registry_app(settings)) as host:
        verify_image(host, "data/tools", "latest", pub.read_bytes(), identity=f"{PULL_HOST}/data/tools")
        index = json.loads(
            _get(
                host, f"/v2/data/tools/referrers/{record['manifest_digest']}", "application/vnd.oci.image.index.v1+json"
            )
        )
        [sbom_ref] = [m for m in index["manifests"] if m["artifactType"] == "application/vnd.cyclonedx+json"]
        verify_image(host, "data/tools", sbom_ref["digest"], pub.read_bytes(), identity=f"{PULL_HOST}/data/tools")
        [path] = oras_client(host, token=None).pull(
            target=f"{host}/data/tools@{sbom_ref['digest']}", outdir=str(tmp_path / "sbom")
        )
    sbom = json.loads(Path(path).read_text())
    licences = {c["name"]: _licence(c) for c in sbom["components"]}
    assert licences["openssl"] == "Apache-2.0"
    assert licences["libgcc"] == "GPL-3.0-only WITH GCC-exception-3.1"
    assert licences["ca-certificates"] == "ISC"
    assert "readline" not in licences
    purl = next(c["purl"] for c in sbom["components"] if c["name"] == "openssl")
    assert purl.startswith("pkg:conda/openssl@3.3.1?build=") and "channel=conda-forge" in purl

    # 6. the site serves the public key users verify with, and shows all of it
    engine = make_engine(settings.database_url)
    try:
        with serve_asgi(create_app(settings, engine, cache_seconds=0)) as web:
            assert _get(web, "/.well-known/condaops/signing-key.pub") == pub.read_bytes()
            page = _get(web, "/environments/data/tools").decode()
            api = json.loads(_get(web, "/api/v1/environments/data/tools"))
            metrics = _get(web, "/metrics").decode()
    finally:
        engine.dispose()
    assert "Supply chain" in page and "/artifacts/sbom" in page and "signature-signed" in page
    assert api["supply_chain"]["signature"] == "signed" and api["supply_chain"]["sbom_url"]
    assert 'condaops_policy_violations{rule="license-unknown",level="warning"} 1' in metrics


def test_a_violation_fails_the_build_and_a_namespace_override_rebuilds_it(site, repo: Path) -> None:  # type: ignore[no-untyped-def]
    p, _ = site
    code, _, err = p.cli("reconcile", "--once", "--wait")  # openssl only, no policy yet
    assert code == 0, err
    linked = p.status()["data/tools"]
    commit(repo, {"envs/condaops-policy.yaml": POLICY, "envs/data/tools.yaml": TOOLS}, "policy and readline")
    code, _, err = p.cli("reconcile", "--once", "--wait")
    assert code == 1
    item = p.status()["data/tools"]
    assert (item["state"], item["reason"]) == ("failed", "PolicyViolation")
    assert item["message"].startswith("data/tools.yaml: condaops-policy.yaml: license-deny: readline 8.2")
    assert item["build_id"] == linked["build_id"]  # the linked build stays
    assert [v["package"].split()[0] for v in item["policy"]["violations"]] == ["readline"]

    commit(
        repo, {"envs/data/condaops-policy.yaml": "licenses: {deny: [AGPL-*], unknown: ignore}\n"}, "data may use GPL"
    )
    code, out, _ = p.cli("plan")
    assert code == 1 and "PolicyChanged" in out
    code, _, err = p.cli("reconcile", "--once", "--wait")
    assert code == 0, err
    item = p.status()["data/tools"]
    assert item["state"] == "ready" and item["build_id"] != linked["build_id"]
    assert item["policy"]["checked"] and item["policy"]["violations"] == [] and item["policy"]["warnings"] == []


def _licence(component: dict) -> str | None:
    for entry in component.get("licenses", []):
        return entry.get("expression") or entry.get("license", {}).get("id") or entry.get("license", {}).get("name")
    return None


def _get(host: str, path: str, accept: str = "*/*") -> bytes:
    request = urllib.request.Request(f"http://{host}{path}", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()
