"""A directory source read again from the watcher's report gives what a full read gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from condaops.config.settings import SourceSettings
from condaops.reconciler.sources.dirchanges import apply_changes
from condaops.reconciler.sources.directory import RevisionEntries, SpecCache, digest, read_directory


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "envs"
    for ns in ("data", "web"):
        for name in ("a", "b", "c"):
            (root / ns).mkdir(parents=True, exist_ok=True)
            (root / ns / f"{name}.yaml").write_text(f"dependencies:\n  - python=3.1{len(name)}\n  - {name}pkg\n")
    (root / "web" / "d").mkdir()
    (root / "web" / "d" / "environment.yaml").write_text("dependencies:\n  - flask\n")
    (root / "broken.yml").write_text("dependencies: [unclosed\n")
    return root


REPORTED = {"data/a.yaml", "data/e.yaml", "web/b.yaml", "data/c.yaml", "web/d/environment.yaml"}


def first_read(root: Path):  # type: ignore[no-untyped-def]
    """A full read, with what ``apply_changes`` starts from."""
    settings = SourceSettings(name="envs", directory=root)
    cache, entries = SpecCache(racy_window=0), RevisionEntries()
    last = read_directory(settings, cache=cache, entries=entries)
    return last, settings, cache, entries


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda r: (r / "data" / "a.yaml").write_text("dependencies:\n  - numpy\n"), id="modified"),
        pytest.param(lambda r: (r / "data" / "e.yaml").write_text("dependencies:\n  - scipy\n"), id="added"),
        pytest.param(lambda r: (r / "web" / "b.yaml").unlink(), id="removed"),
        pytest.param(lambda r: (r / "data" / "c.yaml").write_text("dependencies: {bad\n"), id="now-invalid"),
        pytest.param(lambda r: (r / "web" / "d" / "environment.yaml").write_text("name: x\n"), id="folder-form"),
    ],
)
def test_a_reported_file_is_read_alone_and_gives_the_full_snapshot(tree: Path, change) -> None:  # type: ignore[no-untyped-def]
    last, settings, cache, entries = first_read(tree)
    change(tree)
    got = apply_changes(settings, last, entries, REPORTED, cache)  # unchanged files may be reported too
    full = read_directory(settings, cache=SpecCache(racy_window=0))
    assert got is not None
    assert got == full
    assert got.revision != last.revision
    assert got.revision == full.revision == digest(entries.as_dict())  # the kept entries hash as the full read
    # An environment whose file did not change is handed back as the very object read
    # before (no work per environment for the new revision); a changed one is at it.
    before = {e.ref: e for e in last.envs}
    for env in got.envs:
        if env.path in REPORTED:
            assert env.revision == got.revision
        else:
            assert env is before[env.ref] and env.revision == last.revision


@pytest.mark.parametrize(
    ("setup", "reported"),
    [
        pytest.param(lambda r: (r / "data" / "a").mkdir(), {"data/a"}, id="a-folder"),
        pytest.param(lambda r: None, {"."}, id="the-root"),
        pytest.param(lambda r: (r / "condaops-policy.yaml").write_text("{}\n"), {"condaops-policy.yaml"}, id="policy"),
        pytest.param(
            lambda r: (r / "data" / "a.conda-lock.yml").write_text("x\n"), {"data/a.conda-lock.yml"}, id="lock"
        ),
        pytest.param(
            lambda r: (
                (r / "data" / "b").mkdir(),
                (r / "data" / "b" / "environment.yaml").write_text("dependencies: []\n"),
            ),
            {"data/b/environment.yaml"},
            id="a-second-file-for-one-environment",
        ),
    ],
)
def test_reports_it_cannot_apply_ask_for_a_full_read(tree: Path, setup, reported: set[str]) -> None:  # type: ignore[no-untyped-def]
    last, settings, cache, entries = first_read(tree)
    setup(tree)
    assert apply_changes(settings, last, entries, reported, cache) is None
