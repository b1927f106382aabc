"""The test helpers for registry clients: missing tools and the hand-made OCI layout."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.support.registry_clients import require_tool, write_oci_layout


def test_missing_tool_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install -y no-such-package"):
        require_tool("no-such-tool-condaops", "no-such-package")


def test_missing_tool_fails_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true requires it"):
        require_tool("no-such-tool-condaops", "no-such-package")


def test_oci_layout_is_consistent(tmp_path: Path) -> None:
    image = write_oci_layout(tmp_path, tag="v2")
    blobs = tmp_path / "blobs" / "sha256"

    for blob in blobs.iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.manifest_digest
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "v2"
    manifest = json.loads((blobs / image.manifest_digest.split(":")[1]).read_bytes())
    assert manifest["layers"][0] == {
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": image.layer_digest,
        "size": image.layer_size,
    }
    assert image.oci_ref == f"oci:{tmp_path}:v2"
