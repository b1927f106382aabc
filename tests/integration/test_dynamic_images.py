"""Dynamic images end to end: the registry (``dynamic.enabled``) builds
``/v2/dynamic/<pkg>/<pkg.eq.1.0>/manifests/latest`` from a channel served on 127.0.0.1
(reached through ``channels.mirrors``), and real clients (skopeo, podman) pull it.

The channel and the registry fixtures are in tests/support/dynamic.py and
tests/integration/conftest.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from condaops.config.settings import AuthSettings, DynamicSettings
from tests.support.dynamic import Served
from tests.support.registry_clients import OCI_MANIFEST, TOKEN, podman_client, require_tool, skopeo

pytestmark = pytest.mark.integration


def inspect(served: Served, name: str, *options: str) -> dict:
    return json.loads(skopeo("inspect", *options, "--tls-verify=false", f"docker://{served.host}/{name}").stdout)


def test_skopeo_inspects_a_dynamic_image_in_any_order_built_once(
    dynamic_registry: Callable[..., Served], builds: Callable[[], list[str]]
) -> None:
    served = dynamic_registry()
    first = inspect(served, "dynamic/tool.eq.1.0/libtool-data:latest")
    fetched = served.channel.request_count()
    assert fetched > 0 and len(builds()) == 1
    other = inspect(served, "dynamic/libtool-data/tool.eq.1.0:latest")
    again = inspect(served, "dynamic/tool.eq.1.0/libtool-data:latest")
    assert first["Digest"] == other["Digest"] == again["Digest"]
    assert served.channel.request_count() == fetched and len(builds()) == 1  # cached: no solve, no fetch
    assert "latest" in other["RepoTags"]
    config = inspect(served, "dynamic/libtool-data/tool.eq.1.0:latest", "--config")
    assert "CONDA_PREFIX=/opt/env" in config["config"]["Env"]
    assert config["history"][0]["created_by"].startswith("condaops: GNU C library")  # the built-in base
    assert [h["created_by"] for h in config["history"][1:]] == [
        "condaops: libtool-data",
        "condaops: tool",
        "condaops: unowned files",
    ]
    assert (served.store / "dynamic").is_dir()


def test_concurrent_requests_for_one_spec_share_one_build(
    dynamic_registry: Callable[..., Served], builds: Callable[[], list[str]]
) -> None:
    served = dynamic_registry()
    paths = ["dynamic/tool/libtool-data", "dynamic/libtool-data/tool", "dynamic/tool/tool/libtool-data"] * 2
    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        answers = list(pool.map(lambda p: served.get(f"{p}/manifests/latest"), paths))
    assert {status for status, _, _ in answers} == {200}
    assert len({headers["Docker-Content-Digest"] for _, headers, _ in answers}) == 1
    assert len(builds()) == 1
    status, headers, body = served.get("dynamic/libtool-data/tool/manifests/latest", method="HEAD")
    assert status == 200 and headers["Content-Type"] == OCI_MANIFEST and body == b""
    tags = json.loads(served.get("dynamic/libtool-data/tool/tags/list", accept="application/json")[2])["tags"]
    assert tags[0] == "latest" and tags[1].startswith("spec-")


def test_podman_runs_a_binary_from_a_dynamic_image(dynamic_registry: Callable[..., Served], tmp_path: Path) -> None:
    require_tool("busybox", "busybox-static")
    runc = require_tool("runc", "runc")
    served = dynamic_registry()
    image = f"{served.host}/dynamic/tool.eq.1.0/busybox:latest"
    with podman_client(tmp_path / "pm") as pm:
        pm("pull", "--tls-verify=false", image)
        hello = pm("--runtime", runc, "run", "--rm", "--network=none", image, "busybox", "echo", "hello").stdout
        tool = pm(
            "--runtime", runc, "run", "--rm", "--network=none", image, "busybox", "sh", "/opt/env/bin/tool"
        ).stdout
    assert hello.strip() == "hello"
    assert tool.strip() == "tool 1.0 /opt/env"  # relocated to the image's prefix


def test_an_unsatisfiable_request_says_why(dynamic_registry: Callable[..., Served]) -> None:
    served = dynamic_registry()
    status, error = served.error("dynamic/lib.ge.2/app/manifests/latest")
    assert status == 404 and error["code"] == "MANIFEST_UNKNOWN"
    assert "app, lib >=2 cannot be solved from https://conda.anaconda.org/testchan for linux-64" in error["message"]
    assert "lib <2" in error["message"] and "\n" not in error["message"]
    status, error = served.error("dynamic/tool.ge.3/manifests/latest")
    assert status == 404 and error["code"] == "MANIFEST_UNKNOWN"
    assert "No candidates were found for tool >=3" in error["message"]


def test_an_unknown_package_is_name_unknown(dynamic_registry: Callable[..., Served]) -> None:
    status, error = dynamic_registry().error("dynamic/tool/nosuch/manifests/latest")
    assert status == 404 and error["code"] == "NAME_UNKNOWN"
    assert "no package named nosuch in https://conda.anaconda.org/testchan" in error["message"]
    assert error["detail"] == {"packages": ["nosuch"]}


def test_a_bad_operator_is_refused_without_touching_the_channel(dynamic_registry: Callable[..., Served]) -> None:
    served = dynamic_registry()
    status, error = served.error("dynamic/tool.gte.1/manifests/latest")
    assert status == 400 and error["code"] == "NAME_INVALID"
    assert "'tool.gte.1'" in error["message"] and ".ge. (>=)" in error["message"]
    assert served.channel.request_count() == 0


def test_too_many_packages_are_refused(dynamic_registry: Callable[..., Served]) -> None:
    served = dynamic_registry(DynamicSettings(enabled=True, max_packages=2))
    status, error = served.error("dynamic/tool/lib/app/manifests/latest")
    assert status == 400 and error["code"] == "NAME_INVALID" and "dynamic.max_packages" in error["message"]


def test_a_default_channel_outside_allowed_is_denied(dynamic_registry: Callable[..., Served]) -> None:
    served = dynamic_registry(allowed=("conda-forge",))
    status, error = served.error("dynamic/tool/manifests/latest")
    assert status == 403 and error["code"] == "DENIED"
    assert "https://conda.anaconda.org/testchan is not in channels.allowed" in error["message"]
    assert served.channel.request_count() == 0


def test_pushing_into_the_dynamic_namespace_is_denied(dynamic_registry: Callable[..., Served]) -> None:
    served = dynamic_registry()
    status, _, body = served.get("dynamic/tool/blobs/uploads/", method="POST", Authorization=f"Bearer {TOKEN}")
    assert status == 403 and json.loads(body)["errors"][0]["code"] == "DENIED"


def test_disabled_the_dynamic_namespace_does_not_exist(dynamic_registry: Callable[..., Served]) -> None:
    served = dynamic_registry(DynamicSettings())
    for path in ("dynamic/tool/manifests/latest", "dynamic/tool/tags/list"):
        status, error = served.error(path)
        assert status == 404 and error["code"] == "NAME_UNKNOWN"
        assert "dynamic.enabled is false" in error["message"]
    assert served.channel.request_count() == 0


# --- bounded: keyed by what a request solves to, limited per client ----------------------

READER = "reader-token-0123456789"


def test_spellings_that_solve_alike_share_one_image(
    dynamic_registry: Callable[..., Served], builds: Callable[[], list[str]]
) -> None:
    served = dynamic_registry()
    paths = ["dynamic/tool.ge.0.1", "dynamic/tool.ge.0.2", "dynamic/tool.lt.5", "dynamic/libtool-data/tool"]
    digests = set()
    for path in paths:
        status, headers, _ = served.get(f"{path}/manifests/latest")
        assert status == 200
        digests.add(headers["Docker-Content-Digest"])
    assert len(digests) == 1 and len(builds()) == 1  # four requests, one solved set, one image
    leftovers = [p.name for p in (served.store / "dynamic").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []  # the prefix goes once the image is stored
    status, headers, _ = served.get("dynamic/tool.ge.0.1/manifests/latest")  # seen before: no solve
    assert status == 200 and headers["Docker-Content-Digest"] in digests


def test_new_requests_are_rate_limited_per_client(dynamic_registry: Callable[..., Served]) -> None:
    served = dynamic_registry(DynamicSettings(enabled=True, rate=2))
    assert served.get("dynamic/tool.ge.0.1/manifests/latest")[0] == 200
    assert served.get("dynamic/tool.ge.0.2/manifests/latest")[0] == 200
    status, headers, body = served.get("dynamic/tool.ge.0.3/manifests/latest")
    error = json.loads(body)["errors"][0]
    assert (status, error["code"]) == (429, "TOOMANYREQUESTS") and "dynamic.rate" in error["message"]
    assert int(headers["Retry-After"]) >= 1
    assert served.get("dynamic/tool.ge.0.1/manifests/latest")[0] == 200  # known requests are not counted
    other = served.get("dynamic/tool.ge.0.3/manifests/latest", Authorization=f"Bearer {TOKEN}")
    assert other[0] == 200  # another client (a token) has its own allowance


def test_new_images_can_be_token_only(dynamic_registry: Callable[..., Served]) -> None:
    served = dynamic_registry(DynamicSettings(enabled=True, require_token=True))
    status, headers, body = served.get("dynamic/tool/manifests/latest")
    assert (status, json.loads(body)["errors"][0]["code"]) == (401, "UNAUTHORIZED")
    assert headers["WWW-Authenticate"] == 'Basic realm="condaops"'
    assert "dynamic.require_token" in json.loads(body)["errors"][0]["message"]
    assert served.get("dynamic/tool/manifests/latest", Authorization=f"Bearer {TOKEN}")[0] == 200
    assert served.get("dynamic/tool/manifests/latest")[0] == 200  # built before: served to anyone


def test_a_hidden_dynamic_namespace_needs_a_read_token(dynamic_registry: Callable[..., Served]) -> None:
    served = dynamic_registry(auth=AuthSettings(tokens=(READER,)))
    status, headers, _ = served.get("dynamic/tool/manifests/latest")
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="condaops"'
    assert served.channel.request_count() == 0  # refused before any solve
    assert served.get("dynamic/tool/manifests/latest", Authorization=f"Bearer {READER}")[0] == 200
    assert served.get("dynamic/tool/tags/list")[0] == 401
