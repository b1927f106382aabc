"""The status site in a real browser: pages, links, forms, a live build log, phone and
wide screens. Screenshots are saved in each test's tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Site

PHONE = {"width": 390, "height": 844}
WIDE = {"width": 1440, "height": 900}


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect  # only once Chromium is known to be there

    return playwright_expect(locator)


def open_page(chromium: Any, viewport: dict[str, int]) -> tuple[Any, list[str]]:
    """A page in a fresh context, and the list its console errors and failed requests go to."""
    context = chromium.new_context(viewport=viewport)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    # Event streams (live log, live pages) are cut when the page closes them or navigates away: aborted.
    page.on(
        "requestfailed",
        lambda r: problems.append(f"request failed: {r.url} {r.failure}") if "/events" not in r.url else None,
    )
    page.on(
        "request",
        lambda r: (
            problems.append(f"external request: {r.url}")
            if not r.url.startswith(("http://127.0.0.1", "data:"))
            else None
        ),
    )
    return page, problems


def fits_the_screen(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


@pytest.fixture
def ready_site(site: Site) -> Site:
    site.channel.gate.set()
    site.write_env("team/web.yaml", "app ==1.0")
    site.write_env("team/tools/environment.yaml", "zlib")
    site.write_env("data/analysis.yaml", "openssl")
    site.start()
    site.wait_for(lambda: set(site.states().values()) == {"ready"} and len(site.states()) == 3, "three ready envs")
    # The page offers `docker pull` once the image is in the registry (its own job after the build).
    site.wait_for(lambda: site.get("/api/v1/environments/team/web")["image"], "team/web published")
    return site


def test_browse_the_site(chromium: Any, ready_site: Site, tmp_path: Path) -> None:
    site = ready_site
    page, problems = open_page(chromium, WIDE)

    page.goto(site.base + "/")
    assert page.title() == "Overview · condaops"
    assert page.locator(".card .n").first.inner_text() == "3"
    page.screenshot(path=tmp_path / "overview-wide.png", full_page=True)

    page.get_by_role("link", name="team", exact=True).click()
    page.wait_for_url("**/namespaces/team")
    page.get_by_role("link", name="team/web").click()
    page.wait_for_url("**/environments/team/web")
    assert page.locator("h1").inner_text().startswith("web")
    assert page.locator("table", has_text="openssl").locator("td", has_text="3.3.1").count() == 1
    assert page.locator("button.copy").first.is_visible()  # JavaScript ran: copy buttons shown
    assert "docker pull 127.0.0.1:" in page.locator(".commands").inner_text()
    page.screenshot(path=tmp_path / "environment-wide.png", full_page=True)

    page.locator("dd a[href^='/builds/']").first.click()
    page.wait_for_url("**/builds/*")
    assert "build_finished env=team/web" in page.locator("#log").inner_text()
    assert page.locator("#live-status").count() == 0
    page.screenshot(path=tmp_path / "build-wide.png", full_page=True)

    page.locator("header input[name=q]").fill("openssl 3.3")
    page.locator("header input[name=q]").press("Enter")
    page.wait_for_url("**/search?q=openssl*")
    hits = page.locator("table").first.inner_text()
    assert "team/web" in hits and "data/analysis" in hits and "team/tools" not in hits

    assert problems == []
    response = page.goto(site.base + "/environments/team/nope")
    assert response is not None and response.status == 404
    assert problems == ["console error: Failed to load resource: the server responded with a status of 404 (Not Found)"]
    page.get_by_role("link", name="← Namespace team").click()
    page.wait_for_url("**/namespaces/team")


def test_phone_layout(chromium: Any, ready_site: Site, tmp_path: Path) -> None:
    page, problems = open_page(chromium, PHONE)

    for name, path in [
        ("overview", "/"),
        ("namespace", "/namespaces/team"),
        ("environment", "/environments/team/web"),
        ("search", "/search?q=zlib"),
        ("change-requests", "/change-requests"),
    ]:
        page.goto(ready_site.base + path)
        page.screenshot(path=tmp_path / f"{name}-phone.png", full_page=True)
        assert fits_the_screen(page), f"{path} is wider than a phone screen"
    assert problems == []


def test_diff_form_after_a_rebuild(chromium: Any, ready_site: Site, tmp_path: Path) -> None:
    site = ready_site
    site.write_env("team/web.yaml", "app ==2.0")
    site.wait_for(
        lambda: (
            len(site.get("/api/v1/environments/team/web/builds")["items"]) == 2
            and site.states()["team/web"] == "ready"
            and site.get("/api/v1/environments/team/web")["current_build"]["spec_hash"]
            == site.get("/api/v1/environments/team/web")["environment"]["spec_hash"]
        ),
        "the rebuild",
    )
    page, problems = open_page(chromium, WIDE)

    page.goto(site.base + "/environments/team/web")
    page.get_by_role("button", name="Show differences").click()
    page.wait_for_url("**/diff?from=*")
    assert "Added (1)" in page.inner_text("main") and "zlib" in page.locator("table").nth(1).inner_text()
    assert "Changed (1)" in page.inner_text("main")
    page.screenshot(path=tmp_path / "diff-wide.png", full_page=True)
    assert problems == []


def test_live_log(chromium: Any, site: Site, tmp_path: Path) -> None:
    site.write_env("team/slow.yaml", "app ==1.0")  # its package downloads wait for the gate
    site.start()
    build = site.wait_for(lambda: _installing(site), "the build to reach its install step")
    page, problems = open_page(chromium, WIDE)

    page.goto(f"{site.base}/builds/{build['id']}")
    expect(page.locator("#live-status")).to_contain_text("Following")
    log = page.locator("#log")
    assert "solved platform=linux-64" in log.inner_text() and "build_finished" not in log.inner_text()
    page.evaluate("window.notReloaded = true")
    page.screenshot(path=tmp_path / "build-running.png", full_page=True)

    site.channel.gate.set()
    expect(log).to_contain_text("build_finished", timeout=60_000)
    expect(page.locator("#live-status")).to_contain_text("finished (completed)")
    expect(page.locator("h1 .state")).to_have_text("completed")
    assert page.evaluate("window.notReloaded === true")  # the lines came by the stream, not a reload
    text = log.inner_text()
    assert text.count("build_started") == 1
    assert text.index("solved") < text.index("installed") < text.index("locked")  # the step order
    page.screenshot(path=tmp_path / "build-finished.png", full_page=True)
    assert problems == []


def _installing(site: Site) -> dict[str, Any] | None:
    """The running build, once it has solved (and waits for its packages to install)."""
    running = [b for b in site.get("/api/v1/builds")["items"] if b["state"] == "building"]
    return next((b for b in running if "solved platform" in _log(site, b["id"])), None)


def _log(site: Site, build_id: int) -> str:
    import httpx

    response = httpx.get(f"{site.base}/builds/{build_id}/log", timeout=5)
    return response.text if response.status_code == 200 else ""
