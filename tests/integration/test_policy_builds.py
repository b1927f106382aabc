"""Policy at build time, from a watched directory: an invalid file never lets a build through
and never retires anything; site rules (``policy.site_file``) hold whatever the repository says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import ALIAS, Project

pytestmark = pytest.mark.integration

TOOL = "channels: [testchan]\ndependencies: [tool=1.0]\n"


@pytest.fixture
def site(project, tool_channel, tmp_path: Path) -> Project:  # type: ignore[no-untyped-def]
    site_file = tmp_path / "site-policy.yaml"
    site_file.write_text("# nothing yet\n")
    p = project({ALIAS + "testchan": tool_channel}, publish={"enabled": False}, policy={"site_file": str(site_file)})
    p.site_file = site_file  # type: ignore[attr-defined]
    return p


def reconcile(p: Project) -> dict:
    p.cli("reconcile", "--once", "--wait")
    return p.status()["team/Tool"]


def test_an_invalid_policy_file_fails_the_build_and_keeps_the_linked_one(site: Project) -> None:
    site.write_env("team/Tool.yaml", TOOL)
    ready = reconcile(site)
    assert ready["state"] == "ready" and not ready["policy"]["checked"]  # no rule anywhere: not checked
    site.write_env("team/condaops-policy.yaml", "licenses:\n  deny: GPL\n  unknown: sometimes\n")
    item = reconcile(site)
    assert (item["state"], item["reason"]) == ("failed", "PolicyInvalid")
    assert (
        "team/condaops-policy.yaml: key 'licenses.unknown': expected one of error, warning, ignore" in item["message"]
    )
    assert item["build_id"] == ready["build_id"] and site.link("team/Tool").is_dir()  # nothing retired or unlinked
    site.write_env("team/condaops-policy.yaml", "licenses: {deny: [GPL-*], unknown: ignore}\n")
    fixed = reconcile(site)
    assert fixed["state"] == "ready" and fixed["policy"]["checked"] and fixed["build_id"] != ready["build_id"]


def test_site_rules_cannot_be_loosened_by_the_repository(site: Project) -> None:
    site.site_file.write_text("packages:\n  deny:\n    - {spec: 'tool <2', reason: 'tool 1 leaks memory'}\n")  # type: ignore[attr-defined]
    site.write_env("condaops-policy.yaml", "packages: {deny: []}\nlicenses: {unknown: ignore}\n")
    site.write_env("team/condaops-policy.yaml", "packages: {deny: []}\n")
    site.write_env("team/Tool.yaml", TOOL)
    item = reconcile(site)
    assert (item["state"], item["reason"]) == ("failed", "PolicyViolation")
    [violation] = item["policy"]["violations"]
    assert violation["origin"].startswith("site policy ") and "tool 1 leaks memory" in violation["message"]
    code, out, _ = site.cli("plan", "--format", "json")
    [action] = json.loads(out)["actions"]
    assert (action["action"], action["reason"]) == ("hold", "PolicyViolation")  # until the env or a policy changes
    site.site_file.write_text("packages:\n  deny: [{spec: 'tool <2', level: warning}]\n")  # type: ignore[attr-defined]
    item = reconcile(site)
    assert item["state"] == "ready" and [w["rule"] for w in item["policy"]["warnings"]] == ["deny"]
