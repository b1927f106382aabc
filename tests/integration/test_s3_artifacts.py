"""Artifacts in object storage: with the registry on S3 (moto's server on 127.0.0.1), the
publish job pushes the tarball and lockfiles there, and the site answers their downloads
with presigned redirects, so the bytes come from the bucket, not through condaops."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from condaops.config import load_settings
from condaops.reconciler.state.db import make_engine
from condaops.web.app import create_app
from tests.integration.conftest import ALIAS
from tests.support.registry_clients import fake_aws_credentials, moto_s3

pytestmark = pytest.mark.integration


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    with fake_aws_credentials(), moto_s3("artifacts") as url:
        yield url


def test_published_artifacts_download_from_the_bucket(project, tool_channel, s3_endpoint):  # type: ignore[no-untyped-def]
    p = project(
        {ALIAS + "testchan": tool_channel},
        storage={
            "backend": "s3",
            "s3_bucket": "artifacts",
            "s3_endpoint": s3_endpoint,
            "s3_region": "us-east-1",
            "s3_prefix": "condaops",
        },
    )
    p.write_env("team/tool.yaml", "channels: [testchan]\ndependencies:\n  - tool=1.0\n")
    code, _, err = p.cli("reconcile", "--once", "--wait")  # builds, then publishes (its own job)
    assert code == 0, err
    item = p.status()["team/tool"]
    assert {"conda-pack", "conda-lock", "image"} <= set(item["artifacts"])

    settings = load_settings(p.config_file, environ={})
    engine = make_engine(settings.database_url)
    try:
        with TestClient(create_app(settings, engine, clock=lambda: datetime.now(UTC))) as client:
            for kind in ("conda-pack", "conda-lock"):
                local = Path(item["artifacts"][kind]).read_bytes()
                resp = client.get(f"/builds/{item['build_id']}/artifacts/{kind}", follow_redirects=False)
                assert resp.status_code == 307, resp.text
                location = resp.headers["location"]
                assert location.startswith(s3_endpoint) and "Signature" in location
                fetched = httpx.get(location, timeout=30)
                assert fetched.status_code == 200
                assert hashlib.sha256(fetched.content).digest() == hashlib.sha256(local).digest()
            # Files that were never pushed (the build log) still come from the store.
            resp = client.get(f"/builds/{item['build_id']}/artifacts/log", follow_redirects=False)
            assert resp.status_code == 200 and "build_started" in resp.text
    finally:
        engine.dispose()
