"""The change-request review page in Chromium, against a real ``condaops serve`` reading a
Git repository made with the git CLI: package table with badges, the environment file's
diff, preview states with their log, the head commit, the Markdown copy; anything from
the repository (commit messages, spec errors) is shown as text, never as HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.conftest import Site
from tests.browser.test_site_browser import PHONE, WIDE, expect, fits_the_screen, open_page
from tests.support.gitserver import GitRepo, require_git

EVIL = '<img src=x onerror="window.pwned=1">'


def spec(channel: str, *deps: str) -> str:
    return f"channels:\n  - {channel}\ndependencies:\n" + "".join(f"  - '{d}'\n" for d in deps)


def test_review_page(chromium: Any, site: Site, tmp_path: Path) -> None:
    require_git()
    site.channel.gate.set()
    repo = GitRepo(tmp_path / "envs-repo")
    url = site.channel.url
    repo.commit({"envs/team/web.yaml": spec(url, "app ==1.0"), "envs/ds/base.yaml": spec(url, "zlib")}, "base")
    repo.git("checkout", "-q", "-b", "feature")
    head = repo.commit(
        {"envs/team/web.yaml": spec(url, "app ==2.0"), "envs/team/bad.yaml": spec(url, "app <b>1")},
        f"Upgrade app {EVIL}\n\nSecond line of the message.",
    )
    repo.update_ref("refs/pull/12/head", head)
    repo.git("checkout", "-q", "main")
    repo.commit({"envs/ds/base.yaml": spec(url, "zlib", "openssl")}, "main moves on")  # not the PR's change
    site.sources = [{"git": str(repo.path), "path": "envs", "change_requests": True, "interval": "1s"}]
    site.start()
    site.wait_for(
        lambda: (
            (items := site.get("/api/v1/change-requests")["items"])
            and items[0]["verdict"] != "pending"
            and all(p["state"] == "completed" for p in site.get("/api/v1/change-requests/envs-repo/12")["previews"])
        ),
        "the review and its preview",
    )
    data = site.get("/api/v1/change-requests/envs-repo/12")
    assert {e["environment"]: e["change"] for e in data["report"]["environments"]} == {
        "team/bad": "invalid",
        "team/web": "changed",
    }
    page, problems = open_page(chromium, WIDE)

    page.goto(site.base + "/change-requests")
    row = page.locator("table.reviews tbody tr").first
    assert "envs-repo #12" in row.inner_text() and "1 invalid" in row.inner_text() and "1 changed" in row.inner_text()
    expect(row.locator(".verdict")).to_have_text("failure")  # team/bad cannot be built
    page.screenshot(path=tmp_path / "change-requests-wide.png", full_page=True)
    row.get_by_role("link", name="envs-repo #12").click()
    page.wait_for_url("**/change-requests/envs-repo/12")

    web = page.locator("#env-team-web")
    assert web.locator("h3 .kind").inner_text() == "changed" and "team/web.yaml" in web.inner_text()
    upgraded = web.locator("table.pkgdiff tr", has_text="app")
    expect(upgraded.locator(".badge")).to_have_text("upgraded")
    assert "1.0" in upgraded.inner_text() and "2.0" in upgraded.inner_text()
    expect(web.locator("table.pkgdiff tr", has_text="zlib").locator(".badge")).to_have_text("added")
    expect(web.locator("pre.diff .d-add")).to_contain_text("app ==2.0")
    expect(web.locator("pre.diff .d-del")).to_contain_text("app ==1.0")
    expect(web.locator(".preview-line .state")).to_have_text("completed")
    assert page.locator("#env-ds-base").count() == 0  # main's change is not the PR's

    bad = page.locator("#env-team-bad")
    assert "app <b>1" in bad.locator(".error").inner_text()  # the spec's text, as text
    assert page.locator("main b").count() == 0 and page.locator("main img").count() == 0
    subject = page.locator(".commit-subject")
    assert subject.inner_text() == f"Upgrade app {EVIL}"
    assert page.evaluate("window.pwned === undefined")
    assert "Test" in page.locator("dl.facts").inner_text()  # the commit's author

    copy = page.get_by_role("button", name="Copy Markdown")
    assert "| upgraded | `app` | 1.0" in (copy.get_attribute("data-copy") or "")
    page.screenshot(path=tmp_path / "change-request-wide.png", full_page=True)

    web.locator(".preview-line a", has_text="log").click()
    page.wait_for_url("**/change-requests/envs-repo/12/previews/*")
    expect(page.locator("h1 .state")).to_have_text("completed")
    assert "build_finished env=team/web" in page.locator("#log").inner_text()
    assert problems == []

    phone, phone_problems = open_page(chromium, PHONE)
    phone.goto(site.base + "/change-requests/envs-repo/12")
    phone.screenshot(path=tmp_path / "change-request-phone.png", full_page=True)
    assert fits_the_screen(phone) and phone_problems == []


def test_review_page_policy_findings(chromium: Any, site: Site, tmp_path: Path) -> None:
    """A pull request that breaks IT's rule: the environment's section lists the findings
    (the rule's reason shown as text), the verdict names the rule, no preview is built."""
    require_git()
    site.channel.gate.set()
    repo = GitRepo(tmp_path / "envs-repo")
    url = site.channel.url
    repo.commit({"envs/team/web.yaml": spec(url, "app ==1.0")}, "base")
    repo.git("checkout", "-q", "-b", "feature")
    policy = f"packages:\n  deny:\n    - spec: 'app >=2'\n      reason: 'app 2 is not approved {EVIL}'\n"
    head = repo.commit(
        {"envs/team/web.yaml": spec(url, "app ==2.0"), "envs/team/condaops-policy.yaml": policy}, "Upgrade app"
    )
    repo.update_ref("refs/pull/13/head", head)
    repo.git("checkout", "-q", "main")
    site.sources = [{"git": str(repo.path), "path": "envs", "change_requests": True, "interval": "1s"}]
    site.start()
    site.wait_for(lambda: site.get("/api/v1/change-requests")["items"], "the review")
    data = site.get("/api/v1/change-requests/envs-repo/13")
    assert data["verdict"] == "failure" and data["policy_violations"] and data["previews"] == []
    assert data["verdict_description"].startswith("team/web breaks policy rule deny (team/condaops-policy.yaml)")
    page, problems = open_page(chromium, WIDE)

    page.goto(site.base + "/change-requests/envs-repo/13")
    web = page.locator("#env-team-web")
    expect(web.locator(".policy-review h4")).to_contain_text("1 violation: blocks the merge")
    finding = web.locator("table.policy tr.finding-error")
    expect(finding).to_have_count(1)
    assert finding.locator("td").nth(1).inner_text() == "deny"
    assert finding.locator("td").nth(4).inner_text() == "team/condaops-policy.yaml"
    assert f"app 2 is not approved {EVIL}" in finding.inner_text()  # the reason, as text
    assert page.locator("main img").count() == 0 and page.evaluate("window.pwned === undefined")
    expect(page.locator(".verdict-line .verdict")).to_have_text("failure")
    assert web.locator(".preview-line").count() == 0  # a blocked environment is not built
    page.screenshot(path=tmp_path / "change-request-policy-wide.png", full_page=True)
    assert problems == []

    phone, phone_problems = open_page(chromium, PHONE)
    phone.goto(site.base + "/change-requests/envs-repo/13")
    phone.screenshot(path=tmp_path / "change-request-policy-phone.png", full_page=True)
    assert fits_the_screen(phone) and phone_problems == []
