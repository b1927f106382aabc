"""Registry reads follow the site's visibility (``web.auth``): a hidden namespace needs a
read token to pull — tags, manifests, blobs, referrers, the catalog — and real clients
(podman, skopeo, oras-py) log in with one and pull; anonymous clients get 401 with a
challenge they understand. Public namespaces stay anonymous. Names outside the
distribution grammar are refused as sent, never rewritten."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from condaops.config.settings import AuthSettings, RegistrySettings, Settings, WebSettings
from condaops.registry.app import create_registry_app
from tests.support.registry_clients import (
    TOKEN,
    OciImage,
    oras_client,
    podman_client,
    serve_asgi,
    skopeo,
    write_oci_layout,
)

pytestmark = pytest.mark.integration

GLOBAL = "global-read-token-0123456789"
TEAM = "team-read-token-0123456789"
CHALLENGE = 'Basic realm="condaops"'
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class Served:
    host: str
    images: dict[str, OciImage]  # repository -> the image pushed there (tag v1)

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"http://{self.host}", headers=headers, timeout=30)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """``public/env`` (anyone), ``team/env`` (TEAM or GLOBAL), ``private/env`` (GLOBAL
    only), each with its own one-layer image pushed by skopeo with the push token."""
    auth = AuthSettings(tokens=(GLOBAL,), namespaces={"public": None, "team": (TEAM,)})
    settings = Settings(
        store=tmp_path / "store", web=WebSettings(auth=auth), registry=RegistrySettings(push_tokens=(TOKEN,))
    )
    with serve_asgi(create_registry_app(settings)) as host:
        images = {}
        for name in ("public/env", "team/env", "private/env"):
            image = write_oci_layout(tmp_path / name.replace("/", "-"), files={"who": name.encode()})
            skopeo(
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                f"ci:{TOKEN}",
                image.oci_ref,
                f"docker://{host}/{name}:v1",
            )
            images[name] = image
        yield Served(host, images)


def test_anonymous_pulls_of_a_hidden_namespace_get_401_with_a_challenge(served: Served) -> None:
    private = served.images["private/env"]
    with served.client() as anonymous:
        for path in (
            "private/env/tags/list",
            "private/env/manifests/v1",
            f"private/env/manifests/{private.manifest_digest}",
            f"private/env/blobs/{private.layer_digest}",
            f"private/env/referrers/{private.manifest_digest}",
            "private/nothing-here/tags/list",  # existence does not leak: the same answer
        ):
            answer = anonymous.get(f"/v2/{path}", headers={"Accept": OCI_MANIFEST})
            assert answer.status_code == 401, path
            assert answer.headers["WWW-Authenticate"] == CHALLENGE
            assert answer.json()["errors"][0]["code"] == "UNAUTHORIZED"
            assert "needs a token" in answer.json()["errors"][0]["message"]
        public = served.images["public/env"]
        assert anonymous.get("/v2/public/env/tags/list").json()["tags"] == ["v1"]
        assert anonymous.get(f"/v2/public/env/blobs/{public.layer_digest}").status_code == 200
        assert anonymous.get("/v2/").status_code == 200  # public pulls keep working


def test_a_private_blob_cannot_be_fetched_through_a_public_repository(served: Served) -> None:
    private = served.images["private/env"]
    with served.client() as anonymous, served.client(TEAM) as team, served.client(GLOBAL) as everything:
        for client in (anonymous, team):
            answer = client.get(f"/v2/public/env/blobs/{private.layer_digest}")
            assert (answer.status_code, answer.json()["errors"][0]["code"]) == (404, "BLOB_UNKNOWN")
        assert team.get(f"/v2/team/env/blobs/{private.layer_digest}").status_code == 404
        assert everything.get(f"/v2/public/env/blobs/{private.layer_digest}").status_code == 200


def test_each_token_reads_what_the_site_shows_it(served: Served) -> None:
    with served.client(TEAM) as team, served.client(GLOBAL) as everything, served.client() as anonymous:
        assert team.get("/v2/team/env/tags/list").status_code == 200
        hidden = team.get("/v2/private/env/tags/list")  # a token that does not open it: as if missing
        assert (hidden.status_code, hidden.json()["errors"][0]["code"]) == (404, "NAME_UNKNOWN")
        assert everything.get("/v2/private/env/tags/list").status_code == 200
        assert anonymous.get("/v2/_catalog").json() == {"repositories": ["public/env"]}
        assert team.get("/v2/_catalog").json() == {"repositories": ["public/env", "team/env"]}
        assert everything.get("/v2/_catalog").json() == {"repositories": ["private/env", "public/env", "team/env"]}
        paged = everything.get("/v2/_catalog", params={"n": 2})
        assert paged.json() == {"repositories": ["private/env", "public/env"]}
        assert paged.headers["Link"] == '</v2/_catalog?n=2&last=public%2Fenv>; rel="next"'
        with served.client("not-a-token-0123456789") as wrong:
            assert wrong.get("/v2/").status_code == 401  # so `podman login` with it fails
            assert wrong.get("/v2/public/env/tags/list").status_code == 401


def test_podman_logs_in_with_a_read_token_and_pulls(served: Served, tmp_path: Path) -> None:
    image = f"{served.host}/team/env:v1"
    auth = str(tmp_path / "auth.json")
    Path(auth).write_text("{}")  # podman wants the file to exist; it never reads ~/.docker here
    with podman_client(tmp_path / "podman") as podman:
        refused = podman("pull", "--tls-verify=false", "--authfile", auth, image, check=False)
        assert refused.returncode != 0 and "unauthorized" in refused.stderr.lower()
        login = ("login", "--tls-verify=false", "--authfile", auth, "-u", "me", "-p")
        wrong = podman(*login, "wrong-token-0123456789", served.host, check=False)
        assert wrong.returncode != 0
        podman(*login, TEAM, served.host)
        podman("pull", "--tls-verify=false", "--authfile", auth, image)
        inspected = json.loads(podman("image", "inspect", image).stdout)[0]
        assert inspected["Digest"] == served.images["team/env"].manifest_digest
        denied = podman("pull", "--tls-verify=false", "--authfile", auth, f"{served.host}/private/env:v1", check=False)
        assert denied.returncode != 0


def test_skopeo_logs_in_and_inspects(served: Served, tmp_path: Path) -> None:
    auth = str(tmp_path / "auth.json")
    Path(auth).write_text("{}")
    reference = f"docker://{served.host}/private/env:v1"
    refused = skopeo("inspect", "--tls-verify=false", "--authfile", auth, reference, check=False)
    assert refused.returncode != 0 and "unauthorized" in refused.stderr.lower()
    skopeo("login", "--tls-verify=false", "--authfile", auth, "-u", "me", "-p", GLOBAL, served.host)
    inspected = json.loads(skopeo("inspect", "--tls-verify=false", "--authfile", auth, reference).stdout)
    assert inspected["Digest"] == served.images["private/env"].manifest_digest
    public = skopeo("inspect", "--tls-verify=false", f"docker://{served.host}/public/env:v1")  # anonymous
    assert json.loads(public.stdout)["Digest"] == served.images["public/env"].manifest_digest


def test_oras_pulls_with_basic_auth(served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    image = served.images["team/env"]
    team = oras_client(served.host, token=TEAM)
    manifest = team.get_manifest(f"{served.host}/team/env:v1")
    assert manifest["layers"][0]["digest"] == image.layer_digest
    pulled = team.pull(target=f"{served.host}/team/env:v1", outdir=str(tmp_path / "out"))
    assert pulled  # the layer is a tarball without a title: oras-py saves it under its digest
    assert team.get_tags(f"{served.host}/team/env") == ["v1"]
    anonymous = oras_client(served.host, token=None)
    anonymous.auth.set_basic_auth("anonymous", "")  # no token: read as anonymous
    with pytest.raises(ValueError, match="Unauthorized"):
        anonymous.get_manifest(f"{served.host}/team/env:v1")


@pytest.mark.parametrize("path", ["a//b", "a/b/", "/abs/x", "//abs/x", "a/b%2fc", "a/b%2Fc", "a/./b"], ids=repr)
def test_names_outside_the_grammar_are_refused_as_sent(served: Served, path: str) -> None:
    connection = http.client.HTTPConnection(served.host, timeout=30)
    connection.request("GET", f"/v2/{path}/tags/list", headers={"Authorization": f"Bearer {GLOBAL}"})
    answer = connection.getresponse()
    body = json.loads(answer.read())
    assert (answer.status, body["errors"][0]["code"]) == (400, "NAME_INVALID")
