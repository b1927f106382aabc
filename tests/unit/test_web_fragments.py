"""Rendered fragments: what is reused, what is rendered again, and that all of it is escaped."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from condaops.reconciler.model import EnvRef
from condaops.reconciler.state.packages import LockedPackage
from condaops.reconciler.state.queries import ArtifactInfo, BuildInfo
from condaops.web.fragments import Fragments
from condaops.web.render import Renderer

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
SCRIPT = "<script>alert(1)</script>"


def build(build_id: int = 7, state: str = "completed", reason: str | None = "BuildSucceeded") -> BuildInfo:
    finished = T0 + timedelta(seconds=90) if state in ("completed", "failed") else None
    return BuildInfo(
        build_id,
        EnvRef("team", "web"),
        "s1",
        state,
        1,
        reason,
        None,
        False,
        None,
        "src",
        "a" * 40,
        None,
        T0,
        T0 + timedelta(seconds=5),
        finished,
        None,
    )


def artifact(kind: str, name: str, build_id: int = 7) -> ArtifactInfo:
    return ArtifactInfo(build_id, kind, f"artifacts/team/web/{build_id}/{name}", 1234, "f" * 64)


@pytest.fixture
def fragments() -> Fragments:
    return Fragments(Renderer())


def test_a_finished_build_row_is_rendered_once(fragments: Fragments) -> None:
    first = fragments.build_rows([build()])[0]

    assert fragments.build_rows([build()])[0] is first
    assert "#7" in first and "BuildSucceeded" in first and "1 min 25 s" in first


def test_a_running_build_row_is_rendered_every_time(fragments: Fragments) -> None:
    running = fragments.build_rows([build(state="building", reason="SpecChanged")])[0]
    finished = fragments.build_rows([build()])[0]

    assert "building" in running and "SpecChanged" in running
    assert "completed" in finished and "BuildSucceeded" in finished


@pytest.mark.parametrize("show_env", [False, True], ids=["environment-page", "overview"])
def test_rows_escape_what_they_show(fragments: Fragments, show_env: bool) -> None:
    row = fragments.build_rows([build(state="failed", reason=SCRIPT)], show_env=show_env)[0]

    assert SCRIPT not in row and "&lt;script&gt;" in row
    assert ("/environments/team/web" in row) is show_env


def test_options_mark_the_chosen_build(fragments: Fragments) -> None:
    builds = [build(9), build(8), build(7)]

    html = fragments.build_options(builds, selected=1)

    assert html == (
        '<option value="9">#9 completed</option><option value="8" selected>#8 completed</option>'
        '<option value="7">#7 completed</option>'
    )
    assert fragments.build_options(builds, selected=0).count(" selected") == 1


def test_downloads_follow_the_files(fragments: Fragments) -> None:
    files = [artifact("conda-lock", "conda-lock.yml"), artifact("pixi-lock", "pixi.lock")]
    before = fragments.downloads(files)

    published = fragments.downloads([*files, artifact("pack", "web.tar.zst")])

    assert "web.tar.zst" not in before and "web.tar.zst" in published
    assert fragments.downloads(files) is before
    assert '/builds/7/artifacts/pixi-lock" download>pixi.lock<' in before


def test_downloads_escape_file_names(fragments: Fragments) -> None:
    html = fragments.downloads([artifact("log", "<img src=x onerror=alert(1)>.log")])  # no "/": a file name

    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;.log" in html


def test_package_tables_per_platform(fragments: Fragments) -> None:
    packages = [
        LockedPackage("linux-64", "zlib", "1.3", "h0", channel="https://conda.anaconda.org/conda-forge", size=2048),
        LockedPackage("osx-arm64", SCRIPT, "1.0"),
    ]

    html = fragments.packages(7, packages)

    assert html.index("linux-64") < html.index("osx-arm64")
    assert "conda-forge" in html and "2.0 KiB" in html
    assert SCRIPT not in html and "&lt;script&gt;" in html
    assert fragments.packages(7, []) is html  # a build's lock never changes


def test_a_build_row_keeps_its_duration(fragments: Fragments) -> None:
    b = build()
    later = replace(b, collected_at=T0 + timedelta(days=30))  # gc removed the prefix: not shown

    assert fragments.build_rows([later])[0] == fragments.build_rows([b])[0]
