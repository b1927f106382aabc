"""What ``condaops history`` shows as a revision's subject (the Git context itself is
tested against a real mirror in tests/integration/test_web_git_context.py)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from condaops.config.settings import SourceSettings
from condaops.reconciler.cli.read import SUBJECT_WIDTH, _fit, _history_line, subject
from condaops.reconciler.model import EnvRef
from condaops.reconciler.sources.revisions import RevisionReader
from condaops.reconciler.state.infos import BuildInfo

AT = datetime(2026, 12, 5, 10, 0, tzinfo=timezone.utc)


def build(source: str, revision: str, path: str = "team/app.yaml") -> BuildInfo:
    return BuildInfo(
        1, EnvRef("team", "app"), "ab" * 32, "completed", 1, None, None, False, None,
        source, revision, path, AT, AT, AT, None,
    )  # fmt: skip


def test_a_directory_source_shows_the_file_and_a_git_source_without_its_mirror_shows_none(tmp_path: Path) -> None:
    sources = (
        SourceSettings(name="dir", directory=tmp_path / "envs"),
        SourceSettings(name="git", git="https://example.org/envs.git", mirror_dir=tmp_path / "no-mirror"),
    )
    reader = RevisionReader(sources)
    try:
        assert subject(reader, build("dir", "dir:" + "c" * 64)) == str(tmp_path / "envs" / "team/app.yaml")
        assert subject(reader, build("git", "a" * 40)) is None  # not in a mirror here: the CLI says so
        assert subject(reader, build("dir", "")) is None
    finally:
        reader.close()
    line = _history_line(build("git", "a" * 40), AT, None)
    assert line[6:8] == ("a" * 12, "team/app.yaml")  # the short SHA; the file when no subject is known


def test_long_subjects_are_cut_and_long_paths_keep_their_end() -> None:
    long = "word " * 30
    assert _fit(long, keep_end=False) == long[: SUBJECT_WIDTH - 1] + "…"
    path = "/srv/" + "deep/" * 20 + "app.yaml"
    cut = _fit(path, keep_end=True)
    assert len(cut) == SUBJECT_WIDTH and cut.endswith("/app.yaml") and cut.startswith("…")
    assert _fit("short", keep_end=True) == "short"
