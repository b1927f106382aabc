"""The status site in Chromium in every state an operator meets, against a real ``condaops
serve`` reading a Git repository made with the git CLI: synced, failed, held by a
rollback, removed but kept, and a build running while the overview and the environment
page update without a reload. Checked with JavaScript off (whole pages, filters by URL),
for escaping (a commit subject and a variable carrying markup stay text), and with
axe-core (no serious or critical violations on the main pages).

Screenshots go to ``$SCREENSHOTS_DIR`` when set (``docs/screenshots/take.py`` sets it
to ``docs/screenshots``), else to the test's tmp_path.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Site
from tests.browser.test_site_browser import PHONE, WIDE, expect, fits_the_screen, open_page
from tests.support.ci import skip_or_fail
from tests.support.gitserver import GitRepo, require_git

EVIL = '<img src=x onerror="window.pwned=1">'
AXE = Path(__file__).with_name("node_modules") / "axe-core" / "axe.min.js"
WEB_URL = "https://git.example.org/acme/envs"


def spec(channel: str, *deps: str, variables: dict[str, str] | None = None) -> str:
    text = f"channels:\n  - {channel}\ndependencies:\n" + "".join(f"  - '{d}'\n" for d in deps)
    if variables:
        text += "variables:\n" + "".join(f"  {k}: '{v}'\n" for k, v in variables.items())
    return text


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("SCREENSHOTS_DIR")
    folder = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class States:
    """A served site whose environments are in every state; ``repo`` is its Git source."""

    def __init__(self, site: Site, repo: GitRepo) -> None:
        self.site, self.repo = site, repo
        self.url = site.channel.url

    def env(self, name: str) -> dict[str, Any]:
        return next(i for i in self.site.get("/api/v1/status") if f"{i['namespace']}/{i['name']}" == name)

    def cli(self, *args: str) -> str:
        command = [sys.executable, "-c", "import sys; from condaops.reconciler.cli import main; sys.exit(main())"]
        done = subprocess.run(
            [*command, "--config", str(self.site.root / "condaops.yaml"), *args],
            cwd=self.site.root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture
def states(site: Site, tmp_path: Path) -> Iterator[States]:
    require_git()
    site.channel.gate.set()
    repo = GitRepo(tmp_path / "envs-repo")
    url = site.channel.url
    repo.commit(
        {
            "team/web.yaml": spec(url, "app ==1.0", variables={"GREETING": EVIL}),
            "team/broken.yaml": spec(url, "doesnotexist"),
            "data/analysis.yaml": spec(url, "openssl"),
            "team/gone.yaml": spec(url, "openssl"),
        },
        f"Add the team and data environments {EVIL}",
    )
    site.sources = [{"git": str(repo.path), "interval": "1s", "web_url": WEB_URL}]
    site.start()
    s = States(site, repo)
    site.wait_for(lambda: len(site.states()) == 4 and site.states()["team/broken"] == "failed", "the first builds")
    site.wait_for(lambda: site.states()["data/analysis"] == "ready", "data/analysis ready")
    first = s.env("data/analysis")["build_id"]
    repo.commit({"data/analysis.yaml": spec(url, "openssl", "zlib")}, "analysis: add zlib")
    site.wait_for(lambda: s.env("data/analysis")["build_id"] not in (None, first), "data/analysis rebuilt")
    site.stop()  # on SQLite the CLI writes only while the service is stopped
    s.cli("rollback", "data/analysis", str(first))  # held by the rollback from now on
    site.start()
    repo.commit({"team/gone.yaml": None}, "Remove the gone environment")
    site.wait_for(lambda: site.states()["team/gone"] == "removed", "team/gone removed (kept)")
    site.wait_for(lambda: site.states()["team/web"] == "ready", "team/web ready")
    yield s


def test_every_state_with_javascript(chromium: Any, states: States, shots: Path) -> None:
    site = states.site
    page, problems = open_page(chromium, WIDE)
    page.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))

    page.goto(site.base + "/")
    rows = page.locator("tr[data-env]")
    assert [rows.nth(i).get_attribute("data-env") for i in range(rows.count())] == [
        "team/broken",  # Degraded first
        "data/analysis",  # held: OutOfSync, Healthy
        "team/gone",  # removed, kept: OutOfSync, Healthy
        "team/web",  # Synced, Healthy
    ]
    broken = page.locator('tr[data-env="team/broken"]')
    expect(broken.locator(".health")).to_have_text("Degraded")
    assert EVIL in broken.inner_text()  # the commit subject, as text
    assert re.search(r"\bago\b|just now", broken.locator("time").first.inner_text())  # relative, exact on hover
    assert broken.locator("time").first.get_attribute("title").endswith("UTC")  # type: ignore[union-attr]
    expect(page.locator('tr[data-env="data/analysis"] .badge-held')).to_have_text("held")
    expect(page.locator('tr[data-env="team/gone"] .badge-removed-kept')).to_have_text("removed-kept")
    charts = page.locator("img.chart")
    assert charts.count() == 3
    assert all(charts.nth(i).evaluate("i => i.complete && i.naturalWidth > 0") for i in range(3))  # drawn, loaded
    page.screenshot(path=shots / "overview.png", full_page=True)

    broken.get_by_role("link", name="SolveFailed").click()  # one click: the failing build and its log
    page.wait_for_url("**/builds/*")
    assert "doesnotexist" in page.locator("#log").inner_text()
    assert "Add the team and data environments" in page.locator("dl.facts").first.inner_text()
    page.screenshot(path=shots / "build-failed.png", full_page=True)

    for name, shot in [
        ("team/web", "environment-synced"),
        ("team/broken", "environment-failed"),
        ("data/analysis", "environment-held"),
        ("team/gone", "environment-removed"),
    ]:
        page.goto(f"{site.base}/environments/{name}")
        page.screenshot(path=shots / f"{shot}.png", full_page=True)
    page.goto(site.base + "/environments/team/web")
    assert EVIL in page.locator("pre").first.inner_text()  # the variable, as text

    first, second = sorted(b["id"] for b in site.get("/api/v1/environments/data/analysis/builds")["items"])
    page.goto(f"{site.base}/environments/data/analysis/diff?from={first}&to={second}")
    expect(page.locator("pre.diff .d-add")).to_contain_text("zlib")
    page.screenshot(path=shots / "diff.png", full_page=True)

    page.goto(site.base + "/?health=Degraded")
    assert page.locator("tr[data-env]").count() == 1
    page.screenshot(path=shots / "overview-degraded.png", full_page=True)
    assert page.evaluate("window.pwned === undefined")
    assert problems == []

    phone, phone_problems = open_page(chromium, PHONE)
    for path, shot in [("/", "overview-phone"), ("/environments/team/broken", "environment-failed-phone")]:
        phone.goto(site.base + path)
        assert fits_the_screen(phone), f"{path} is wider than a phone screen"
        phone.screenshot(path=shots / f"{shot}.png", full_page=True)
    assert phone_problems == []


def test_live_updates_arrive_without_reload(chromium: Any, states: States, shots: Path) -> None:
    site = states.site
    overview, problems = open_page(chromium, WIDE)
    overview.goto(site.base + "/")
    overview.evaluate("window.notReloaded = true")
    expect(overview.locator("main[data-live-ready='1']")).to_have_count(1)

    site.channel.gate.clear()  # app 2.0 is not in the package cache: its download waits
    states.repo.commit({"team/slow.yaml": spec(states.url, "app ==2.0")}, "Add the slow environment")
    committed = time.monotonic()
    slow = overview.locator('tr[data-env="team/slow"]')
    expect(slow.locator(".health")).to_have_text("Progressing", timeout=30_000)
    print(f"overview showed the new build {time.monotonic() - committed:.1f} s after the commit (source interval 1 s)")
    assert overview.evaluate("window.notReloaded === true")
    overview.screenshot(path=shots / "overview-running.png", full_page=True)

    env, env_problems = open_page(chromium, WIDE)
    env.goto(site.base + "/environments/team/slow")
    env.evaluate("window.notReloaded = true")
    expect(env.locator("#latest-build .step")).to_have_text("install", timeout=30_000)
    expect(env.locator("#latest-build [data-elapsed]")).to_contain_text(" s")
    env.screenshot(path=shots / "environment-running.png", full_page=True)

    site.channel.gate.set()
    expect(env.locator("h1 .sync")).to_have_text("Synced", timeout=60_000)
    expect(slow.locator(".health")).to_have_text("Healthy", timeout=30_000)
    assert env.evaluate("window.notReloaded === true") and overview.evaluate("window.notReloaded === true")
    env.screenshot(path=shots / "environment-running-done.png", full_page=True)
    build = env.locator("dd a[href^='/builds/']").first.get_attribute("href")
    log = site.base + str(build) + "/log"
    import httpx

    text = httpx.get(log, timeout=5).text
    assert "download_started package=app" in text and "step_started step=install" in text
    assert problems == [] and env_problems == []


def test_without_javascript(chromium: Any, states: States, shots: Path) -> None:
    site = states.site
    context = chromium.new_context(viewport=WIDE, java_script_enabled=False)
    page = context.new_page()

    page.goto(site.base + "/")
    assert page.locator("html.js").count() == 0
    assert page.locator('tr[data-env="team/broken"] time').first.inner_text().endswith("UTC")  # exact time
    page.select_option("select[name=health]", "Degraded")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/?*health=Degraded*")
    assert [r.get_attribute("data-env") for r in page.locator("tr[data-env]").all()] == ["team/broken"]
    page.screenshot(path=shots / "overview-no-javascript.png", full_page=True)
    first, second = sorted(b["id"] for b in site.get("/api/v1/environments/data/analysis/builds")["items"])
    page.goto(f"{site.base}/environments/data/analysis/diff?from={first}&to={second}")
    assert "+  - 'zlib'" in page.locator("pre.diff").inner_text()
    context.close()


def test_accessibility(chromium: Any, states: States) -> None:
    if not AXE.is_file():
        skip_or_fail("axe-core is not installed: run `npm ci --prefix tests/browser`")
    context = chromium.new_context(viewport=WIDE, bypass_csp=True)  # axe is injected as an inline script
    page = context.new_page()
    serious: dict[str, list[str]] = {}
    for path in [
        "/",
        "/?health=Degraded",
        "/environments/team/web",
        "/environments/team/broken",
        "/environments/data/analysis/diff",
        "/namespaces/team",
        "/builds/1",
    ]:
        page.goto(states.site.base + path)
        page.add_script_tag(content=AXE.read_text())
        found = page.evaluate("async () => (await axe.run(document)).violations")
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
            for v in found
            if v["impact"] in ("serious", "critical")
        ]
        if bad:
            serious[path] = bad
    context.close()
    assert serious == {}
