"""Git context on the status site: a Git source (a repository made with the git CLI),
real builds from an HTTP channel on 127.0.0.1, two reconcile passes; the pages show each
revision with its commit subject, author, time and forge links, sync and health per
environment with what is broken first, and the build diff shows the environment file's
unified diff read from the mirror at both commits."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from litestar.testing import TestClient

from condaops.config.settings import BuildSettings, Settings, SourceSettings
from condaops.reconciler.model import EnvRef
from condaops.reconciler.runtime import Runtime
from condaops.reconciler.sources.revisions import RevisionReader
from condaops.reconciler.state.queries import env_builds
from condaops.web.app import create_app
from tests.support.channels import PackageSpec, make_channel, serve_directory
from tests.support.gitserver import GitRepo

pytestmark = pytest.mark.integration

WEB_URL = "https://git.example.org/acme/envs"
SUBJECT = "Bump app to 2.0 <script>alert(1)</script>"


def env_file(channel: str, *deps: str) -> str:
    return f"channels:\n  - {channel}\ndependencies:\n" + "".join(f"  - {d}\n" for d in deps)


@dataclass
class GitSite:
    client: TestClient
    settings: Settings
    first: str
    second: str
    web_builds: list[int]


@pytest.fixture(scope="module")
def git_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitSite]:
    root = tmp_path_factory.mktemp("gitsite")
    channel = make_channel(
        root / "channel",
        [PackageSpec("app", "1.0"), PackageSpec("app", "2.0"), PackageSpec("zlib", "1.3")],
    )
    repo = GitRepo(root / "repo")
    with serve_directory(channel) as url:
        first = repo.commit({"team/web.yaml": env_file(url, "app ==1.0")}, "Add the web environment")
        settings = Settings(
            store=root / "store",
            sources=(SourceSettings(name="envs", git=str(repo.path), web_url=WEB_URL, mirror_dir=root / "mirrors"),),
            platforms=("linux-64",),
            build=BuildSettings(retries=0, concurrency=2),
        )
        runtime = Runtime(settings)
        anyio.run(runtime.run_once)
        second = repo.commit(
            {"team/web.yaml": env_file(url, "app ==2.0", "zlib"), "team/broken.yaml": env_file(url, "doesnotexist")},
            SUBJECT,
        )
        anyio.run(runtime.run_once)
    builds = sorted(b.build_id for b in env_builds(runtime.engine, EnvRef("team", "web")))
    with TestClient(create_app(settings, runtime.engine, cache_seconds=0)) as client:
        yield GitSite(client, settings, first, second, builds)


def test_reader_describes_commits_and_links_to_the_forge(git_site: GitSite) -> None:
    reader = RevisionReader(git_site.settings.sources)
    try:
        rev = reader.describe("envs", git_site.second, "team/web.yaml")
        assert rev is not None and rev.kind == "git"
        assert (rev.subject, rev.author) == (SUBJECT, "Test")
        assert rev.time is not None and rev.time.year == 2023  # the fixed commit dates of GitRepo
        assert rev.commit_url == f"{WEB_URL}/commit/{git_site.second}"
        assert rev.file_url == f"{WEB_URL}/blob/{git_site.second}/team/web.yaml"
        assert "app ==1.0" in (reader.file_text("envs", git_site.first, "team/web.yaml") or "")
        unknown = reader.describe("envs", "0" * 40)
        assert unknown is not None and unknown.subject is None and unknown.commit_url  # no commit: SHA and link only
        assert reader.describe("nosuchsource", git_site.second).kind == "unknown"  # type: ignore[union-attr]
    finally:
        reader.close()


def test_overview_says_what_is_broken_since_when_from_which_commit_by_whom(git_site: GitSite) -> None:
    page = git_site.client.get("/")
    assert page.status_code == 200
    body = page.text
    assert "1 needs attention" in body
    rows = re.findall(r'<tr data-env="([^"]+)">(.*?)</tr>', body, re.S)
    assert [name for name, _ in rows] == ["team/broken", "team/web"]  # broken first
    broken = rows[0][1]
    assert "health-Degraded" in broken and "sync-OutOfSync" in broken
    assert re.search(r'<a href="/builds/\d+" title="[^"]*">SolveFailed</a>', broken)  # one click to the log
    assert f'href="{WEB_URL}/commit/{git_site.second}"' in broken
    assert html.escape(SUBJECT, quote=False) in broken and SUBJECT not in body  # escaped, never raw
    assert '<span class="author">Test</span>' in broken
    assert re.search(r'<time datetime="2\d{3}-[^"]+" title="[^"]+ UTC" data-ago>', broken)  # since when
    assert "health-Healthy" in rows[1][1] and "sync-Synced" in rows[1][1]

    degraded = git_site.client.get("/", params={"health": "Degraded"}).text
    assert re.findall(r'<tr data-env="([^"]+)">', degraded) == ["team/broken"]
    assert git_site.client.get("/", params={"namespace": "nope"}).text.count("<tr data-env") == 0


def test_environment_and_build_pages_show_the_commit(git_site: GitSite) -> None:
    body = git_site.client.get("/environments/team/web").text
    assert "sync-Synced" in body and "health-Healthy" in body
    assert f'href="{WEB_URL}/blob/{git_site.second}/team/web.yaml"' in body
    assert html.escape(SUBJECT, quote=False) in body
    build = git_site.client.get(f"/builds/{git_site.web_builds[0]}").text
    assert "Add the web environment" in build and f"{WEB_URL}/commit/{git_site.first}" in build


def test_build_diff_shows_the_environment_file_beside_the_packages(git_site: GitSite) -> None:
    old, new = git_site.web_builds
    body = git_site.client.get("/environments/team/web/diff", params={"from": old, "to": new}).text
    assert "the environment file at each build" in body
    assert '<span class="d-del">-  - app ==1.0</span>' in body
    assert '<span class="d-add">+  - app ==2.0</span>' in body
    assert '<span class="d-add">+  - zlib</span>' in body
    assert "Packages" in body and "upgraded" in body


def test_charts_are_drawn_on_the_server(git_site: GitSite) -> None:
    overview = git_site.client.get("/").text
    assert re.findall(r'<img class="chart" src="([^"]+)"', overview) == [
        "/charts/disk.svg",
        "/charts/queue.svg",
        "/charts/outcomes.svg",
    ]
    titles = []
    for name in ("disk", "queue", "outcomes"):
        answer = git_site.client.get(f"/charts/{name}.svg")
        assert answer.headers["content-type"] == "image/svg+xml"
        titles += re.findall(r'<title id="[^"]+">([^<]+)</title>', answer.text)
    assert titles == ["Disk use", "Queue depth, last 24 hours", "Build outcomes, last 24 hours"]
    assert git_site.client.get("/charts/nope.svg").status_code == 404
    assert "<script" not in overview.split("<main", 1)[1].split("</main>")[0]  # no script in the page body
    env = git_site.client.get("/environments/team/web").text
    assert re.findall(r'<svg class="chart".*?<title id="[^"]+">([^<]+)</title>', env) == [
        "Build durations",
        "Environment size over builds",
    ]
    assert f"build #{git_site.web_builds[0]}: completed after" in env  # each bar says what it is on hover


def test_history_shows_each_commit_subject(git_site: GitSite, tmp_path: Path) -> None:
    """``condaops history`` (the console script) reads subjects from the same mirror with
    the same lookup as the site (``sources.revisions``)."""
    s = git_site.settings
    (src,) = s.sources
    config = tmp_path / "condaops.yaml"
    config.write_text(
        f"store: {s.store}\nplatforms: [linux-64]\n"
        f"sources:\n  - name: envs\n    git: {src.git}\n    mirror_dir: {src.mirror_dir}\n"
    )
    exe = Path(sys.executable).with_name("condaops")
    run = [str(exe), "history", "team/web", "--config", str(config)]
    table = subprocess.run(run, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    header, newest, oldest = table.stdout.splitlines()
    assert header.split()[6:8] == ["REVISION", "SUBJECT"]
    assert git_site.second[:12] in newest and SUBJECT[:40] in newest
    assert git_site.first[:12] in oldest and "Add the web environment" in oldest
    builds = json.loads(subprocess.run([*run, "--json"], capture_output=True, text=True, timeout=120).stdout)
    assert [(b["revision"], b["subject"]) for b in builds] == [
        (git_site.second, SUBJECT),
        (git_site.first, "Add the web environment"),
    ]
