"""Change-request reports: snapshot comparison, package diffs, rendering."""

from __future__ import annotations

import json

import pytest

from condaops.reconciler.changereqs.compare import ChangeReport, EnvReport, compare_snapshots
from condaops.reconciler.changereqs.render import render_report
from condaops.reconciler.model import DesiredEnv, EnvRef, Rejection, SourceSnapshot
from condaops.reconciler.pkgdiff import Pkg, diff_packages, rattler_compare
from condaops.reconciler.spec import Dependency, Spec


def env(name: str, dep: str) -> DesiredEnv:
    return DesiredEnv(
        EnvRef("team", name),
        Spec(channels=("conda-forge",), dependencies=(Dependency(dep),)),
        "src",
        f"team/{name}.yaml",
        "rev",
    )


def snap(*envs: DesiredEnv, rejections=()) -> SourceSnapshot:
    return SourceSnapshot("src", "rev", envs=envs, rejections=tuple(rejections))


def test_compare_snapshots_classifies_every_environment():
    base = snap(env("same", "a"), env("edit", "b"), env("gone", "c"), env("broken", "d"))
    bad = Rejection(EnvRef("team", "broken"), "src", "team/broken.yaml", "SpecYamlInvalid", "line 2")
    head = snap(env("same", "a"), env("edit", "b >=2"), env("new", "e"), rejections=[bad])
    kinds = {str(c.ref): c.kind for c in compare_snapshots(base, head)}
    assert kinds == {
        "team/same": "unchanged",
        "team/edit": "changed",
        "team/gone": "removed",
        "team/new": "added",
        "team/broken": "invalid",
    }


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ([Pkg("numpy", "1.26.4", "py312_0")], [Pkg("numpy", "2.0.1", "py312_0")], [("upgraded", "numpy")]),
        ([Pkg("numpy", "1.10.0")], [Pkg("numpy", "1.9.0")], [("downgraded", "numpy")]),
        ([Pkg("numpy", "1.26.4", "h1")], [Pkg("numpy", "1.26.4", "h2")], [("rebuilt", "numpy")]),
        ([], [Pkg("tk", "8.6")], [("added", "tk")]),
        ([Pkg("tk", "8.6")], [], [("removed", "tk")]),
        ([Pkg("tk", "8.6")], [Pkg("tk", "8.6")], []),
        ([Pkg("req", "1", manager="pypi")], [Pkg("req", "1"), Pkg("req", "1", manager="pypi")], [("added", "req")]),
    ],
    ids=["upgrade", "downgrade-by-version-order-not-text", "rebuild", "added", "removed", "same", "pip-vs-conda"],
)
def test_package_diff(old, new, expected):
    diff = diff_packages(old, new, rattler_compare)
    assert [(c.kind, c.name) for c in diff.changes] == expected


@pytest.mark.parametrize(
    "a, b, sign", [("1.10", "1.9", 1), ("1.0", "1.0.0", 0), ("2.0a1", "2.0", -1), ("1!1.0", "2.0", 1)], ids=str
)
def test_rattler_compare_orders_like_conda(a, b, sign):
    assert rattler_compare(a, b) == sign


def report() -> ChangeReport:
    base = snap(env("edit", "numpy"), env("gone", "c"))
    head = snap(env("edit", "numpy >=2"), env("new", "<script>"))
    changes = {str(c.ref): c for c in compare_snapshots(base, head)}
    diff = diff_packages(
        [Pkg("numpy", "1.26.4", "py312_0")], [Pkg("numpy", "2.0.1", "py312_0"), Pkg("libblas", "3.9")], rattler_compare
    )
    envs = (
        EnvReport(changes["team/edit"], {"linux-64": diff}),
        EnvReport(changes["team/gone"]),
        EnvReport(changes["team/new"], error="cannot be solved: nothing provides <script>"),
    )
    return ChangeReport("src", "refs/pull/7/head", "a" * 40, "b" * 40, envs)


def test_report_markdown_lists_each_change_with_versions():
    md = render_report(report(), "markdown")
    assert md.startswith("### condaops: `refs/pull/7/head` (bbbbbbbbbbbb)")
    assert "Compared with the target at `aaaaaaaaaaaa` (the merge base)." in md
    assert "1 added, 1 changed, 1 removed." in md
    assert "| upgraded | `numpy` | 1.26.4=py312_0 | 2.0.1=py312_0 |" in md
    assert "| added | `libblas` |  | 3.9 |" in md
    assert "linux-64: 1 added, 1 upgraded" in md
    assert "**cannot be built**: cannot be solved" in md


def test_report_json_is_complete():
    data = json.loads(render_report(report(), "json"))
    assert data["changes"] is True
    envs = {e["environment"]: e for e in data["environments"]}
    assert set(envs) == {"team/edit", "team/gone", "team/new"}
    assert envs["team/edit"]["packages"]["linux-64"]["upgraded"] == [
        {
            "name": "numpy",
            "manager": "conda",
            "old": "1.26.4",
            "new": "2.0.1",
            "old_build": "py312_0",
            "new_build": "py312_0",
        }
    ]
    assert envs["team/new"]["error"].startswith("cannot be solved")


def test_no_changes():
    r = ChangeReport(
        "src",
        "refs/pull/1/head",
        "a",
        "a",
        (EnvReport(compare_snapshots(snap(env("x", "a")), snap(env("x", "a")))[0]),),
    )
    assert not r.has_changes
    assert render_report(r).endswith("No environment changes.")
