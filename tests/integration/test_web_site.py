"""The status site and JSON API against a state DB filled by real builds.

One module-scoped site: a channel written with ``write_package`` and served over HTTP on
127.0.0.1, environment files in a directory source, two real reconcile passes
(``Runtime.run_once``); the recorder indexes every successful build's packages, and one
build is taken out of the index again (so both the index and the pixi.lock fallback are used).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import anyio
import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from condaops.config.settings import AuthSettings, BuildSettings, Settings, SourceSettings, WebSettings
from condaops.reconciler.model import EnvRef
from condaops.reconciler.runtime import Runtime
from condaops.reconciler.state.packages import (
    build_packages,
    indexed_packages,
    read_locked_packages,
)
from condaops.reconciler.state.queries import env_builds, list_deliveries, list_environments
from condaops.reconciler.status import status_item
from condaops.web.app import create_app
from tests.support.channels import PackageSpec, make_channel, serve_directory

pytestmark = pytest.mark.integration

PACKAGES = [
    PackageSpec("openssl", "3.3.1", files={"lib/libssl.txt": "3.3.1\n"}),
    PackageSpec("openssl", "3.0.9", files={"lib/libssl.txt": "3.0.9\n"}),
    PackageSpec("zlib", "1.3", fmt="conda", files={"lib/libz.txt": "1.3\n"}),
    PackageSpec("app", "1.0", depends=("openssl >=3.3",), executables=("app",)),
    PackageSpec("app", "2.0", depends=("openssl >=3.3", "zlib"), executables=("app",)),
    PackageSpec("legacy", "1.0", depends=("openssl 3.0.*",)),
]
SCRIPT = "<script>alert(1)</script>"
GLOBAL_TOKEN = "global-token-0123456789abcdef"
TEAM_TOKEN = "team-token-0123456789abcdef"


def env_file(channel: str, *deps: str, variables: dict[str, str] | None = None) -> str:
    text = f"channels:\n  - {channel}\ndependencies:\n" + "".join(f"  - {d}\n" for d in deps)
    if variables:
        text += "variables:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in variables.items())
    return text


@dataclass
class Site:
    settings: Settings
    engine: Engine
    web_builds: list[int]  # builds of team/web, oldest first
    unindexed: int  # a successful build left out of the package index

    def client(self, **web: object) -> TestClient:
        settings = replace(self.settings, web=WebSettings(**web)) if web else self.settings  # type: ignore[arg-type]
        return TestClient(create_app(settings, self.engine, cache_seconds=0))


def _index_builds(engine: Engine, store: Path, skip: EnvRef) -> int:
    """The recorder indexes every successful build's packages; check that, then take the
    current build of ``skip`` out of the index again, as a build recorded before the index
    existed, so the pixi.lock fallback is exercised too."""
    left_out = 0
    for env in list_environments(engine):
        for build in env_builds(engine, env.ref):
            if "pixi-lock" not in build.artifacts:
                continue
            with Session(engine) as s:
                indexed = s.scalar(
                    select(func.count()).select_from(build_packages).where(build_packages.c.build_id == build.build_id)
                )
            assert indexed, f"build {build.build_id} was not indexed by the recorder"
            if env.ref == skip and env.current and build.build_id == env.current.build_id:
                left_out = build.build_id
                with Session(engine) as s, s.begin():
                    s.execute(delete(build_packages).where(build_packages.c.build_id == build.build_id))
    return left_out


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("site")
    channel_dir = make_channel(root / "channel", PACKAGES)
    with serve_directory(channel_dir) as url:
        envs = root / "envs"
        files = {
            "team/web.yaml": env_file(url, "app ==1.0", variables={"GREETING": SCRIPT}),
            "team/tools/environment.yaml": env_file(url, "zlib"),
            "team/broken.yaml": env_file(url, "doesnotexist"),
            "data/analysis.yaml": env_file(url, "legacy"),
            "secret/vault.yaml": env_file(url, "zlib"),
        }
        for rel, text in files.items():
            (envs / rel).parent.mkdir(parents=True, exist_ok=True)
            (envs / rel).write_text(text)
        settings = Settings(
            store=root / "store",
            sources=(SourceSettings(name="envs", directory=envs),),
            platforms=("linux-64",),
            build=BuildSettings(retries=0, concurrency=2),
        )
        runtime = Runtime(settings)
        anyio.run(runtime.run_once)
        (envs / "team/web.yaml").write_text(env_file(url, "app ==2.0", variables={"GREETING": SCRIPT}))
        anyio.run(runtime.run_once)
    engine = runtime.engine
    web_builds = sorted(b.build_id for b in env_builds(engine, EnvRef("team", "web")))
    unindexed = _index_builds(engine, settings.store, skip=EnvRef("data", "analysis"))
    yield Site(settings, engine, web_builds, unindexed)
    engine.dispose()


@pytest.fixture(scope="module")
def client(site: Site) -> Iterator[TestClient]:
    with site.client() as c:
        yield c


# --- JSON API -------------------------------------------------------------------------------


def test_status_is_what_the_cli_prints(site: Site, client: TestClient) -> None:
    delivered = list_deliveries(site.engine)
    expected = [
        status_item(e, retries=0, store=site.settings.store, deliveries=delivered.get(e.ref, ()))
        for e in list_environments(site.engine)
    ]

    response = client.get("/api/v1/status")

    assert response.status_code == 200
    assert response.json() == json.loads(json.dumps(expected, default=str))
    states = {f"{i['namespace']}/{i['name']}": i["state"] for i in response.json()}
    assert states == {
        "data/analysis": "ready",
        "secret/vault": "ready",
        "team/broken": "failed",
        "team/tools": "ready",
        "team/web": "ready",
    }


def test_namespaces_count_environments_by_state(client: TestClient) -> None:
    page = client.get("/api/v1/namespaces").json()

    by_name = {n["name"]: n for n in page["items"]}
    assert page["total"] == 3 and list(by_name) == ["data", "secret", "team"]
    assert by_name["team"]["environments"] == 3
    assert by_name["team"]["states"] == {"pending": 0, "building": 0, "ready": 2, "failed": 1, "removed": 0}
    assert client.get("/api/v1/namespaces/team").json()["environments"] == 3


def test_environment_detail(site: Site, client: TestClient) -> None:
    detail = client.get("/api/v1/environments/team/web").json()

    assert detail["environment"]["state"] == "ready"
    assert detail["current_build"]["id"] == site.web_builds[-1]
    assert detail["specification"]["variables"] == {"GREETING": SCRIPT}
    assert detail["specification"]["dependencies"] == ["app ==2.0"]
    assert detail["prefix"] == str(site.settings.store / "team" / "envs" / "web")
    commands = detail["commands"]
    assert commands["On this host"] == f"conda activate {detail['prefix']}"
    assert commands["Container image"] == "docker pull testserver.local/team/web:latest"
    assert commands["Elsewhere, from conda-lock.yml"] == "conda-lock install --name web conda-lock.yml"
    kinds = {a["kind"]: a for a in detail["artifacts"]}
    assert {"conda-lock", "pixi-lock", "environment", "explicit-linux-64", "log"} <= set(kinds)
    assert kinds["conda-lock"]["url"] == f"/builds/{site.web_builds[-1]}/artifacts/conda-lock"


def test_environment_list_filters_and_clamps(client: TestClient) -> None:
    assert client.get("/api/v1/environments").json()["total"] == 5
    failed = client.get("/api/v1/environments", params={"state": "failed"}).json()
    assert [(e["namespace"], e["name"]) for e in failed["items"]] == [("team", "broken")]
    assert client.get("/api/v1/environments", params={"namespace": "data"}).json()["total"] == 1
    assert client.get("/api/v1/environments", params={"q": "TOOL"}).json()["items"][0]["name"] == "tools"

    one = client.get("/api/v1/environments", params={"limit": 0}).json()
    assert (one["limit"], len(one["items"]), one["next_offset"]) == (1, 1, 1)
    assert client.get("/api/v1/environments", params={"limit": 10**9}).json()["limit"] == 500
    negative = client.get("/api/v1/environments", params={"offset": -7, "limit": 2}).json()
    assert (negative["offset"], negative["next_offset"]) == (0, 2)
    last = client.get("/api/v1/environments", params={"offset": 4, "limit": 2}).json()
    assert (len(last["items"]), last["next_offset"]) == (1, None)
    assert client.get("/api/v1/environments", params={"limit": "many"}).status_code == 400


def test_builds_are_listed_newest_first_with_history(site: Site, client: TestClient) -> None:
    history = client.get("/api/v1/environments/team/web/builds").json()
    assert [b["id"] for b in history["items"]] == site.web_builds[::-1]
    newest = history["items"][0]
    assert newest["state"] == "completed" and newest["reason"] == "BuildSucceeded"
    assert newest["duration_seconds"] > 0 and "solve" in newest["timings"]
    assert newest["source_revision"].startswith("dir:")

    everything = client.get("/api/v1/builds", params={"limit": 3}).json()
    assert everything["total"] >= 6 and len(everything["items"]) == 3
    assert client.get(f"/api/v1/builds/{site.web_builds[0]}").json()["environment"] == "web"


def test_locked_packages_from_the_index_and_from_pixi_lock_agree(site: Site, client: TestClient) -> None:
    indexed = client.get("/api/v1/environments/team/web/packages").json()
    assert indexed["source"] == "index"
    assert {(p["name"], p["version"]) for p in indexed["items"]} == {
        ("app", "2.0"),
        ("openssl", "3.3.1"),
        ("zlib", "1.3"),
    }
    fallback = client.get("/api/v1/environments/data/analysis/packages").json()
    assert fallback["source"] == "pixi.lock" and fallback["build_id"] == site.unindexed
    assert {(p["name"], p["version"]) for p in fallback["items"]} == {("legacy", "1.0"), ("openssl", "3.0.9")}

    build = site.web_builds[-1]
    pixi = site.settings.store / "artifacts" / "team" / "web" / str(build) / "pixi.lock"
    assert indexed_packages(site.engine, build) == read_locked_packages(pixi)
    first = client.get(f"/api/v1/builds/{build}/packages", params={"limit": 1}).json()
    assert (first["total"], len(first["items"]), first["next_offset"]) == (3, 1, 1)


@pytest.mark.parametrize(
    ("params", "found"),
    [
        ({"name": "openssl", "version": "3.3"}, {"team/web"}),
        ({"name": "openssl", "version": "3"}, {"team/web", "data/analysis"}),
        ({"name": "openssl", "version": "3.0.9"}, {"data/analysis"}),
        ({"name": "openssl", "version": "3.30"}, set()),
        ({"name": "OpenSSL"}, {"team/web", "data/analysis"}),
        ({"name": "z*"}, {"team/web", "team/tools", "secret/vault"}),
        ({"name": "legacy", "version": "1.0.*"}, {"data/analysis"}),
    ],
    ids=["minor-prefix", "major-prefix", "exact", "no-partial-segment", "any-case", "glob", "star-suffix"],
)
def test_package_search(client: TestClient, params: dict[str, str], found: set[str]) -> None:
    page = client.get("/api/v1/packages", params=params).json()

    assert {f"{h['namespace']}/{h['environment']}" for h in page["items"]} == found
    assert page["total"] == len(page["items"])


def test_diff_between_builds(site: Site, client: TestClient) -> None:
    old, new = site.web_builds[0], site.web_builds[-1]
    diff = client.get("/api/v1/environments/team/web/diff").json()

    assert (diff["from_build"], diff["to_build"]) == (old, new)
    assert [p["name"] for p in diff["added"]] == ["zlib"] and diff["removed"] == []
    changed = [(c["kind"], c["old"]["version"], c["new"]["version"]) for c in diff["changed"]]
    assert changed == [("upgraded", "1.0", "2.0")]
    reverse = client.get("/api/v1/environments/team/web/diff", params={"from": new, "to": old}).json()
    assert [p["name"] for p in reverse["removed"]] == ["zlib"]
    assert [c["kind"] for c in reverse["changed"]] == ["downgraded"]
    other = client.get("/api/v1/environments/team/tools").json()["current_build"]["id"]
    assert client.get("/api/v1/environments/team/web/diff", params={"from": other}).status_code == 404

    page = client.get(f"/environments/team/web/diff?from={old}&to={new}")
    assert page.status_code == 200
    assert "Added (1)" in page.text and "Changed (1)" in page.text and "Removed (0)" in page.text


def test_change_requests_are_empty(client: TestClient) -> None:
    assert client.get("/api/v1/change-requests").json()["items"] == []
    page = client.get("/change-requests")
    assert page.status_code == 200
    assert "refs/pull/*/head" in page.text and "No change requests" in page.text


def test_openapi_schema_is_served(client: TestClient) -> None:
    schema = client.get("/schema").json()

    assert schema["openapi"].startswith("3.")
    for path in (
        "/api/v1/environments",
        "/api/v1/environments/{namespace}/{name}",
        "/api/v1/packages",
        "/api/v1/builds/{build_id}/artifacts",
        "/builds/{build_id}/artifacts/{kind}",
    ):
        assert path in schema["paths"], path
    assert "get" in schema["paths"]["/api/v1/status"]
    assert client.get("/schema/openapi.yaml").status_code == 200


def test_nothing_changes_state(client: TestClient) -> None:
    for path in ("/api/v1/environments", "/api/v1/environments/team/web", "/api/v1/builds/1", "/builds/1"):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            assert client.request(method, path).status_code == 405, (method, path)


# --- files ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "file_name", "media_type"),
    [
        ("conda-lock", "conda-lock.yml", "application/yaml"),
        ("pixi-lock", "pixi.lock", "application/yaml"),
        ("environment", "environment.yaml", "application/yaml"),
        ("explicit-linux-64", "conda-linux-64.lock", "text/plain; charset=utf-8"),
        ("log", "build.log", "text/plain; charset=utf-8"),
    ],
)
def test_artifacts_download_with_their_type(
    site: Site, client: TestClient, kind: str, file_name: str, media_type: str
) -> None:
    build = site.web_builds[-1]
    response = client.get(f"/builds/{build}/artifacts/{kind}")

    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.headers["content-disposition"] == f'attachment; filename="{file_name}"'
    assert response.headers["x-content-type-options"] == "nosniff"
    path = site.settings.store / "artifacts" / "team" / "web" / str(build) / file_name
    assert response.content == path.read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/builds/{b}/artifacts/nonsense",
        "/builds/{b}/artifacts/..%2F..%2Fcondaops.db",
        "/builds/{b}/artifacts/../1",
        "/builds/999999/artifacts/log",
        "/builds/0/artifacts/log",
        "/builds/-1/log",
        "/builds/{b}/artifacts/",
    ],
    ids=["unknown-kind", "encoded-traversal", "dot-segments", "unknown-build", "build-zero", "negative", "no-kind"],
)
def test_artifacts_are_only_served_by_build_and_kind(site: Site, client: TestClient, path: str) -> None:
    response = client.get(path.format(b=site.web_builds[-1]))

    assert response.status_code == 404
    assert b"SQLite format" not in response.content


def test_logs_of_a_finished_build(site: Site, client: TestClient) -> None:
    build = site.web_builds[-1]
    plain = client.get(f"/builds/{build}/log")
    assert plain.headers["content-type"] == "text/plain; charset=utf-8"
    assert "build_finished env=team/web reason=BuildSucceeded" in plain.text

    events = client.get(f"/builds/{build}/log/events")
    assert events.headers["content-type"].startswith("text/event-stream")
    assert events.text.index("event: log") < events.text.index("event: end")
    assert "data: completed" in events.text and "build_started env=team/web" in events.text
    resumed = client.get(f"/builds/{build}/log/events", headers={"Last-Event-ID": str(len(plain.content))})
    assert "event: log" not in resumed.text and "event: end" in resumed.text


# --- pages ----------------------------------------------------------------------------------


def test_every_page_renders_and_links_resolve(site: Site, client: TestClient) -> None:
    """Crawl from the overview: every local link answers (no 404, no 500)."""
    seen: set[str] = set()
    queue = ["/"]
    while queue and len(seen) < 200:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        response = client.get(path)
        assert response.status_code == 200, path
        if response.headers["content-type"].startswith("text/html"):
            for link in re.findall(r'href="(/[^"#]*)"', response.text):
                link = link.replace("&amp;", "&")
                skipped = link.startswith(("/static/", "/api/", "/schema", "/metrics", "/login", "/builds/"))
                if not skipped or (link.startswith("/builds/") and link.count("/") == 2):
                    queue.append(link)
    assert {"/namespaces/team", "/environments/team/web", f"/builds/{site.web_builds[-1]}"} <= seen


def test_environment_page_shows_what_to_use(site: Site, client: TestClient) -> None:
    html = client.get("/environments/team/web").text

    assert "docker pull testserver.local/team/web:latest" in html
    assert f"conda activate {site.settings.store / 'team' / 'envs' / 'web'}" in html
    assert "conda-lock install --name web conda-lock.yml" in html
    assert re.search(r"<td class=\"mono\">3\.3\.1</td>", html)
    assert f'href="/builds/{site.web_builds[-1]}/artifacts/conda-lock"' in html
    assert "Read from the index" in html
    assert "Read from the pixi.lock" in client.get("/environments/data/analysis").text


def test_spec_content_is_escaped(client: TestClient) -> None:
    html = client.get("/environments/team/web").text

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert SCRIPT not in html
    assert "<script" not in html.replace('<script src="/static/live.js" defer></script>', "")


def test_failed_environment_shows_its_reason(client: TestClient) -> None:
    html = client.get("/environments/team/broken").text

    assert "state-failed" in html and "SolveFailed" in html
    assert "doesnotexist" in html


def test_pages_load_nothing_from_other_hosts(client: TestClient) -> None:
    for path in ("/", "/namespaces/team", "/environments/team/web", "/search?q=openssl", "/login", "/change-requests"):
        response = client.get(path)
        assert "default-src 'self'" in response.headers["content-security-policy"]
        for url in re.findall(r'(?:src|href)="([^"]*)"', response.text):
            assert not re.match(r"^(https?:)?//", url), (path, url)
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")


def test_search_page(client: TestClient) -> None:
    html = client.get("/search", params={"q": "openssl 3.3"}).text
    assert 'href="/environments/team/web"' in html
    assert 'href="/environments/data/analysis"' not in html

    by_name = client.get("/search", params={"q": "analy"}).text
    assert 'href="/environments/data/analysis"' in by_name
    by_state = client.get("/search", params={"state": "failed"}).text
    assert 'href="/environments/team/broken"' in by_state
    assert "not in the package index yet" in client.get("/search", params={"q": "legacy"}).text


@pytest.mark.parametrize(
    ("path", "back"),
    [
        ("/environments/team/nope", "/namespaces/team"),
        ("/environments/nope/web", None),
        ("/namespaces/nope", None),
        ("/namespaces/.hidden", None),
        ("/environments/team/bad%20name", "/namespaces/team"),
        ("/builds/424242", None),
        ("/no/such/page", None),
    ],
)
def test_unknown_names_get_a_404_page_with_a_way_back(client: TestClient, path: str, back: str | None) -> None:
    response = client.get(path)

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert 'href="/">Back to the overview' in response.text
    if back:
        assert f'href="{back}"' in response.text


def test_api_404_is_json(client: TestClient) -> None:
    for path in (
        "/api/v1/environments/team/nope",
        "/api/v1/builds/424242",
        "/api/v1/namespaces/nope",
        "/api/v1/nothing",
    ):
        response = client.get(path)
        assert response.status_code == 404 and response.json()["status_code"] == 404


# --- access ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def locked(site: Site) -> Iterator[TestClient]:
    auth = AuthSettings(tokens=(GLOBAL_TOKEN,), namespaces={"data": None, "team": (TEAM_TOKEN,)})
    with site.client(auth=auth) as c:
        yield c


def _names(client: TestClient, **headers: str) -> set[str]:
    items = client.get("/api/v1/environments", headers=headers).json()["items"]
    return {f"{e['namespace']}/{e['name']}" for e in items}


def test_visibility_by_token(locked: TestClient) -> None:
    assert _names(locked) == {"data/analysis"}
    assert _names(locked, authorization=f"Bearer {TEAM_TOKEN}") == {
        "data/analysis",
        "team/broken",
        "team/tools",
        "team/web",
    }
    assert len(_names(locked, authorization=f"Bearer {GLOBAL_TOKEN}")) == 5


def test_hidden_things_are_not_found(site: Site, locked: TestClient) -> None:
    build = site.web_builds[-1]
    for path in (
        "/environments/team/web",
        "/api/v1/environments/team/web",
        f"/builds/{build}",
        f"/builds/{build}/artifacts/conda-lock",
        f"/builds/{build}/log",
        "/namespaces/secret",
    ):
        assert locked.get(path).status_code == 404, path
    assert locked.get("/api/v1/packages", params={"name": "zlib"}).json()["total"] == 0
    assert {b["namespace"] for b in locked.get("/api/v1/builds").json()["items"]} == {"data"}
    assert locked.get("/api/v1/sources").json()["items"] == []
    overview = locked.get("/").text
    assert "/namespaces/data" in overview and "/namespaces/team" not in overview and "Log in" in overview


def test_wrong_bearer_token_is_refused(locked: TestClient) -> None:
    response = locked.get("/api/v1/environments", headers={"authorization": "Bearer not-a-known-token-at-all"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "not-a-known-token" not in response.text


def test_login_form_sets_a_cookie(site: Site) -> None:
    auth = AuthSettings(tokens=(GLOBAL_TOKEN,), namespaces={"data": None})
    with site.client(auth=auth) as browser:
        assert browser.get("/login").status_code == 200
        refused = browser.post("/login", data={"token": "wrong-wrong-wrong-wrong", "next": "/"})
        assert refused.status_code == 401 and "not known" in refused.text

        ok = browser.post(
            "/login", data={"token": GLOBAL_TOKEN, "next": "/environments/team/web"}, follow_redirects=False
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/environments/team/web"
        assert "httponly" in ok.headers["set-cookie"].lower()
        assert browser.get("/environments/team/web").status_code == 200
        assert "Log out" in browser.get("/").text

        browser.post("/logout", follow_redirects=False)
        browser.cookies.clear()
        assert browser.get("/environments/team/web").status_code == 404


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil", "javascript:alert(1)"])
def test_login_never_redirects_elsewhere(site: Site, target: str) -> None:
    with site.client(auth=AuthSettings(tokens=(GLOBAL_TOKEN,))) as browser:
        ok = browser.post("/login", data={"token": GLOBAL_TOKEN, "next": target}, follow_redirects=False)

    assert ok.headers["location"] == "/"


def test_operations_stay_open(locked: TestClient) -> None:
    assert locked.get("/healthz").status_code == 200
    assert locked.get("/metrics").status_code == 200
    assert locked.get("/static/style.css").status_code == 200


def test_directory_revisions_show_the_file_and_when_it_changed(site: Site, client: TestClient) -> None:
    html = client.get("/environments/team/web").text
    source = site.settings.sources[0]
    assert source.directory is not None
    path = source.directory / "team" / "web.yaml"
    changed = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
    assert f'<span class="mono">{path}</span>' in html
    assert f'file changed <time datetime="{changed.isoformat(timespec="seconds")}"' in html
